package push

import (
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"rsc.io/qr"

	"github.com/twofactor/twofactor/providers/push/pushsig"
	"github.com/twofactor/twofactor/storage"
)

// tokenBytes is the enrollment token's entropy: 256 bits.
const tokenBytes = 32

// macEnroll and macNumber separate the keyed hashes of this package.
const (
	macEnroll = "push-enroll"
	macNumber = "push-number"
)

// Enrollment is a begun device enrollment.
type Enrollment struct {
	// Token is the one-time token (base64url, 43 characters) the device signs.
	Token string
	// URI carries the token (and the server's address, when given, and the VAPID
	// public key, when configured) for the QR code:
	// twofactor-push:enroll?server=…&token=…&vapid=….
	URI string
	// QRPNG is a PNG of a QR code of URI.
	QRPNG     []byte
	ExpiresAt time.Time
	// VAPIDPublicKey is Config.VAPIDPublicKey: the applicationServerKey of a
	// browser device's Web Push subscription ("" when the server has none).
	VAPIDPublicKey string
}

// BeginEnrollment issues a one-time enrollment token for userID, valid for
// EnrollmentTTL (at most 5 minutes) and usable once. Only its keyed hash is stored.
// server, if not empty, is put in the URI for the device to know where to connect.
func (s *Service) BeginEnrollment(ctx context.Context, userID, server string) (*Enrollment, error) {
	if err := validUser(userID); err != nil {
		return nil, err
	}
	if len(server) > 512 {
		return nil, inputErr("server", "at most 512 characters")
	}
	raw := make([]byte, tokenBytes)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	token := base64.RawURLEncoding.EncodeToString(raw)
	now := s.now()
	e := &storage.PushEnrollment{ID: uuid.NewString(), UserID: userID, CreatedAt: now,
		TokenHash: s.ring.MAC(macEnroll, []byte(token)), ExpiresAt: now.Add(s.cfg.EnrollmentTTL)}
	var full *storage.CapError
	if err := s.store.CreatePushEnrollmentWithin(ctx, e, s.cfg.MaxPendingEnrollments, now); errors.As(err, &full) {
		return nil, &EnrollmentCapError{Have: full.Have, Limit: full.Limit}
	} else if err != nil {
		return nil, err
	}
	q := url.Values{"token": {token}}
	if server != "" {
		q.Set("server", server)
	}
	if s.cfg.VAPIDPublicKey != "" {
		q.Set("vapid", s.cfg.VAPIDPublicKey)
	}
	uri := "twofactor-push:enroll?" + q.Encode()
	code, err := qr.Encode(uri, qr.M)
	if err != nil {
		return nil, err
	}
	return &Enrollment{Token: token, URI: uri, QRPNG: code.PNG(), ExpiresAt: e.ExpiresAt, VAPIDPublicKey: s.cfg.VAPIDPublicKey}, nil
}

// validVAPIDKey tells whether k is an uncompressed P-256 point in base64url
// (what PushManager.subscribe takes as applicationServerKey).
func validVAPIDKey(k string) bool {
	raw, err := base64.RawURLEncoding.DecodeString(k)
	if err != nil {
		return false
	}
	_, err = ecdh.P256().NewPublicKey(raw)
	return err == nil && raw[0] == 4
}

// FinishInput is what a device sends to finish its enrollment.
type FinishInput struct {
	Token string
	// PublicKey is the device's ECDSA P-256 key: PKIX DER or a 65-byte point.
	PublicKey []byte
	Name      string
	Platform  string
	Endpoint  Endpoint
	// TimestampMillis and Nonce as in every device request.
	TimestampMillis int64
	Nonce           []byte
	// Signature by the device's key over EnrollMessage(in).
	Signature []byte
	// Then, when set, runs in the enrollment's transaction once the device is
	// stored, with the device: an error from it undoes the enrollment (the
	// token stays unused) and FinishEnrollment returns it.
	Then func(ctx context.Context, d *storage.PushDevice) error
}

// EnrollMessage is what a device signs to finish enrollment, proving it holds the
// private key of PublicKey: RequestMessage("enroll", "", timestamp, nonce, token,
// public key bytes as sent, name, platform, endpoint kind, URL, p256dh, auth, token).
func EnrollMessage(in FinishInput) []byte {
	fields := append([]string{in.Token, string(in.PublicKey), in.Name, in.Platform}, in.Endpoint.Fields()...)
	return RequestMessage(PurposeEnroll, "", in.TimestampMillis, in.Nonce, fields...)
}

// FinishEnrollment checks the token (unused, unexpired), the device's signature
// over EnrollMessage and the timestamp window, then uses the token up and stores
// the device, in one transaction: of two devices racing with one token exactly one
// is enrolled. A bad token or signature is ErrEnrollment / ErrUnauthenticated.
func (s *Service) FinishEnrollment(ctx context.Context, in FinishInput) (*storage.PushDevice, error) {
	pub, der, err := s.validFinish(in)
	if err != nil {
		return nil, err
	}
	now := s.now()
	ts := time.UnixMilli(in.TimestampMillis)
	if ts.Before(now.Add(-s.cfg.Window)) || ts.After(now.Add(s.cfg.Window)) {
		return nil, ErrUnauthenticated
	}
	e, err := s.store.GetPushEnrollment(ctx, s.ring.MAC(macEnroll, []byte(in.Token)), now)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrEnrollment
	} else if err != nil {
		return nil, err
	}
	if !pushsig.VerifySignature(pub, EnrollMessage(in), in.Signature) {
		return nil, ErrUnauthenticated
	}
	d := &storage.PushDevice{ID: uuid.NewString(), UserID: e.UserID, Name: in.Name, Platform: in.Platform,
		PublicKey: der, State: storage.PushDeviceActive, CreatedAt: now}
	if err := s.sealEndpoint(d, in.Endpoint); err != nil {
		return nil, err
	}
	err = s.store.InTx(ctx, func(ctx context.Context) error {
		if ok, err := s.store.UsePushEnrollment(ctx, e.ID, now); err != nil || !ok {
			return errors.Join(err, ErrEnrollment)
		}
		// Held before the count (after the token's conditional UPDATE, which
		// reads nothing the count depends on), so that enrollments of one user
		// finishing at the same instant on any replica count one after the other.
		if err := s.store.LockAttempt(ctx, []string{"push-devices:" + e.UserID}); err != nil {
			return err
		}
		if n, err := s.store.CountPushDevices(ctx, e.UserID); err != nil || n >= int64(s.cfg.MaxDevices) {
			return errors.Join(err, ErrTooManyDevices)
		}
		f := &storage.Factor{ID: d.ID, UserID: d.UserID, Method: Method, Name: d.Name, State: storage.FactorActive,
			CreatedAt: now, UpdatedAt: now}
		if err := s.store.CreateFactor(ctx, f); err != nil {
			return err
		}
		if err := s.store.CreatePushDevice(ctx, d); err != nil {
			return err
		}
		if in.Then != nil {
			return in.Then(ctx, d)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

func (s *Service) validFinish(in FinishInput) (*ecdsa.PublicKey, []byte, error) {
	if in.Token == "" || len(in.Token) > 64 {
		return nil, nil, inputErr("token", "want 1 to 64 characters")
	}
	pub, der, err := pushsig.ParsePublicKey(in.PublicKey)
	if err != nil {
		return nil, nil, inputErr("public_key", "%v", strings.TrimPrefix(err.Error(), "public key: "))
	}
	if err := validText("name", in.Name, 64); err != nil {
		return nil, nil, err
	}
	if err := validText("platform", in.Platform, 32); err != nil {
		return nil, nil, err
	}
	if err := s.validEndpoint(in.Endpoint); err != nil {
		return nil, nil, err
	}
	if len(in.Nonce) < minNonceLen || len(in.Nonce) > maxNonceLen {
		return nil, nil, inputErr("nonce", "want 16 to 64 bytes")
	}
	if len(in.Signature) == 0 || len(in.Signature) > maxSigLen {
		return nil, nil, inputErr("signature", "want 1 to 80 bytes")
	}
	return pub, der, nil
}

func validText(field, v string, max int) error {
	if v == "" || len(v) > max*4 || utf8.RuneCountInString(v) > max || !utf8.ValidString(v) {
		return inputErr(field, "want 1 to %d characters of UTF-8", max)
	}
	if strings.IndexFunc(v, unicode.IsControl) >= 0 { // C0, DEL and C1 (U+0080–U+009F)
		return inputErr(field, "no control characters")
	}
	return nil
}

func validUser(userID string) error {
	if userID == "" || len(userID) > 255 {
		return inputErr("user_id", "want 1 to 255 bytes")
	}
	return nil
}
