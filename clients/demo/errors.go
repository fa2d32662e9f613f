package demo

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
)

// userError is a failure worded for the person at the browser, with the HTTP
// status the page or JSON answer goes out with.
type userError struct {
	status int
	msg    string
}

func (e *userError) Error() string { return e.msg }

func badInput(format string, args ...any) error {
	return &userError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// describe turns an error (mostly a gRPC status from authd) into an HTTP status and
// a message. authd's status messages name the field at fault and never hold a
// secret, so they are shown as they are.
func (h *Handler) describe(op string, err error) (int, string) {
	var ue *userError
	if errors.As(err, &ue) {
		return ue.status, ue.msg
	}
	st, ok := status.FromError(err)
	if !ok {
		h.cfg.Log.Error("demo failure", "op", op, "error", err)
		return http.StatusInternalServerError, op + " failed: " + err.Error()
	}
	h.cfg.Log.Warn("authd refused", "op", op, "code", st.Code().String(), "message", st.Message())
	msg := st.Message()
	switch st.Code() {
	case codes.InvalidArgument:
		return http.StatusBadRequest, op + ": invalid input — " + msg
	case codes.NotFound:
		return http.StatusNotFound, op + ": not found — " + msg
	case codes.FailedPrecondition, codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict, op + ": " + msg
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests, op + ": too many attempts — " + msg
	case codes.PermissionDenied:
		return http.StatusForbidden, op + ": authd refused the demo's API key for this call (it needs the login and selfservice roles) — " + msg
	case codes.Unauthenticated:
		return http.StatusBadGateway, op + ": authd does not accept the demo's API key — is data/admin.key from the authd that is running? (" + msg + ")"
	case codes.Unavailable:
		return http.StatusServiceUnavailable, op + ": authd is not reachable at " + h.cfg.AuthdAddr + " — start it with `go run ./cmd/authd` in another terminal"
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout, op + ": authd did not answer in time"
	}
	return http.StatusBadGateway, op + ": authd error (" + st.Code().String() + "): " + msg
}

// verdict words a VerifyChallenge answer. It is the one place that explains
// accepted / rejected (why, attempts left) / expired / throttled (retry after).
func verdict(v *pb.VerifyChallengeResponse) *result {
	switch v.GetResult() {
	case pb.VerifyResult_VERIFY_RESULT_ACCEPTED:
		return &result{Kind: "accepted", Text: "Accepted: signed in as " + v.GetUserId() + "."}
	case pb.VerifyResult_VERIFY_RESULT_REJECTED:
		text := "Rejected: " + reasonText(v.GetReason()) + "."
		if n := v.GetRemainingAttempts(); n > 0 {
			text += fmt.Sprintf(" %d more %s on this challenge.", n, plural(n, "try", "tries"))
		} else {
			text += " No tries left on this challenge; the next answer starts a new one."
		}
		return &result{Kind: "rejected", Text: text}
	case pb.VerifyResult_VERIFY_RESULT_EXPIRED:
		return &result{Kind: "expired", Text: "Expired: this challenge is too old, already used, or had too many wrong answers. Answer again to start a new one."}
	case pb.VerifyResult_VERIFY_RESULT_THROTTLED:
		return &result{Kind: "throttled", Text: "Throttled: too many failures for this user or address. Try again in " + retryText(v.GetRetryAfter()) + "."}
	}
	return &result{Kind: "rejected", Text: "authd answered an unknown result " + v.GetResult().String() + "."}
}

func reasonText(r pb.RejectReason) string {
	switch r {
	case pb.RejectReason_REJECT_REASON_DENIED:
		return "denied on your device (or the number typed there was wrong)"
	case pb.RejectReason_REJECT_REASON_WRONG_CODE:
		return "wrong code"
	case pb.RejectReason_REJECT_REASON_REPLAYED:
		return "this code was already used (an app code: wait for the next one)"
	case pb.RejectReason_REJECT_REASON_INVALID_ASSERTION:
		return "the security key's answer failed a check (origin, RP ID, signature or challenge)"
	case pb.RejectReason_REJECT_REASON_USER_VERIFICATION_REQUIRED:
		return "the authenticator did not verify you (PIN or biometrics), which policy requires"
	case pb.RejectReason_REJECT_REASON_CLONED_AUTHENTICATOR:
		return "the key's signature counter went backwards; it may be cloned and is refused"
	case pb.RejectReason_REJECT_REASON_UNKNOWN_CREDENTIAL:
		return "this credential is not registered for this user"
	}
	return "refused"
}

func retryText(d *durationpb.Duration) string {
	if d == nil {
		return "a while"
	}
	return d.AsDuration().Round(time.Second).String()
}

func plural(n uint32, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
