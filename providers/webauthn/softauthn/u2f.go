package softauthn

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
)

// ErrAppID is returned when a request's appid extension is not the AppID a [U2FKey]
// was registered under: a U2F key refuses key handles for any other application
// parameter (FIDO U2F Raw Message Formats v1.2 §5.1).
var ErrAppID = errors.New("softauthn: the request's appid is not the U2F key's AppID")

// U2FKey is a legacy FIDO U2F security key registration: a P-256 key pair bound to an
// AppID, with the key handle and the 65-byte public key that U2F-era relying parties
// (for example Nextcloud's twofactor_u2f) stored. It answers WebAuthn assertions
// through the FIDO AppID extension (WebAuthn Level 3 §10.1.1), as a browser does for
// such a key. It is safe for concurrent use.
type U2FKey struct {
	// AppID the key was registered under (a URL such as https://example.com).
	AppID string
	// KeyHandle is the opaque credential id U2F returned at registration.
	KeyHandle []byte
	// PublicKeyRaw is the user public key, 0x04 || X || Y on P-256.
	PublicKeyRaw []byte

	mu      sync.Mutex
	counter uint32
	priv    *ecdsa.PrivateKey
}

// NewU2F makes a U2F registration for appID: a P-256 key pair and a 64-byte key handle
// drawn from r (crypto/rand when nil).
func NewU2F(appID string, r io.Reader) (*U2FKey, error) {
	if appID == "" {
		return nil, fmt.Errorf("%w: appID is empty", ErrConfig)
	}

	if r == nil {
		r = rand.Reader
	}

	priv, err := newP256Key(r)
	if err != nil {
		return nil, err
	}

	raw, err := priv.PublicKey.Bytes()
	if err != nil {
		return nil, fmt.Errorf("softauthn: encode U2F public key: %w", err)
	}

	handle := make([]byte, 64)
	if _, err = io.ReadFull(r, handle); err != nil {
		return nil, fmt.Errorf("softauthn: read key handle: %w", err)
	}

	return &U2FKey{AppID: appID, KeyHandle: handle, PublicKeyRaw: raw, priv: priv}, nil
}

// Counter returns the key's current signature counter.
func (k *U2FKey) Counter() uint32 {
	k.mu.Lock()
	defer k.mu.Unlock()

	return k.counter
}

// AssertAppID answers navigator.credentials.get() the way a browser does with a U2F
// key: the request must carry this key's handle in allowCredentials and its AppID in
// extensions.appid. The authenticator data is SHA-256(AppID) || 0x01 (UP only; U2F has
// no other flags) || counter, the signature is ECDSA P-256 over SHA-256(authData ||
// SHA-256(clientDataJSON)) — byte for byte the U2F authentication signature (U2F Raw
// Message Formats §5.4) — and clientExtensionResults is {"appid": true}.
func (k *U2FKey) AssertAppID(requestOptionsJSON []byte, origin string) ([]byte, error) {
	var o requestOptions
	if err := decodeOptions(requestOptionsJSON, &o); err != nil {
		return nil, err
	}

	if o.Extensions.AppID == "" {
		return nil, ErrNoAppID
	}

	if o.Extensions.AppID != k.AppID {
		return nil, ErrAppID
	}

	allowed := false

	for _, d := range o.AllowCredentials {
		if bytes.Equal(d.ID, k.KeyHandle) {
			allowed = true

			break
		}
	}

	if !allowed {
		return nil, ErrNoCredential
	}

	k.mu.Lock()
	defer k.mu.Unlock()

	clientData, err := marshalClientData("webauthn.get", o.Challenge, origin)
	if err != nil {
		return nil, err
	}

	count := k.counter + 1
	appParam := sha256.Sum256([]byte(k.AppID))

	authData := make([]byte, 0, 37)
	authData = append(authData, appParam[:]...)
	authData = append(authData, flagUP)
	authData = binary.BigEndian.AppendUint32(authData, count)

	resp, err := signedAssertion(k.KeyHandle, k.priv, ES256, authData, clientData, map[string]any{"appid": true}, "cross-platform")
	if err != nil {
		return nil, err
	}

	out, err := json.Marshal(resp)
	if err != nil {
		return nil, fmt.Errorf("softauthn: encode response: %w", err)
	}

	k.counter = count

	return out, nil
}
