package push

import "github.com/twofactor/twofactor/providers/push/pushsig"

// The purposes a device signs, from pushsig.
const (
	PurposeEnroll      = pushsig.PurposeEnroll
	PurposeListPending = pushsig.PurposeListPending
	PurposeWatch       = pushsig.PurposeWatch
	PurposeGetContext  = pushsig.PurposeGetContext
	PurposeRespond     = pushsig.PurposeRespond
	PurposeSetEndpoint = pushsig.PurposeSetEndpoint
)

// Bounds of a device request, from pushsig.
const (
	minNonceLen = pushsig.MinNonceLen
	maxNonceLen = pushsig.MaxNonceLen
	maxSigLen   = pushsig.MaxSigLen
)

// RequestMessage is pushsig.RequestMessage: what a device signs for a request.
func RequestMessage(purpose, deviceID string, timestampMillis int64, nonce []byte, fields ...string) []byte {
	return pushsig.RequestMessage(purpose, deviceID, timestampMillis, nonce, fields...)
}
