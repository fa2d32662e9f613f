package push

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twofactor/twofactor/notify/egress"
	"github.com/twofactor/twofactor/storage"
)

// Method is the factor's stored, audited and policy name; each device has a
// factors row of this method.
const Method = "push"

// Number-matching modes.
const (
	// NumberDigits: the login screen shows a number of Digits digits that the user
	// types on the device (default, 2 digits).
	NumberDigits = "digits"
	// NumberChoice: the device offers three numbers and the user picks the one the
	// login screen shows.
	NumberChoice = "choice"
	// NumberNone: tap only. Weaker: a tap does not prove that the person at the
	// device sees the login screen (NIST SP 800-63B-4 §3.1.3), so a user worn down
	// by repeated pushes may approve an attacker's login (push fatigue).
	NumberNone = "none"
)

// Decisions a device can send.
const (
	DecisionApprove = "approve"
	DecisionDeny    = "deny"
	DecisionNotMe   = "not_me"
	// decisionWrongNumber is recorded when an approval carried a wrong number.
	decisionWrongNumber = "wrong_number"
)

// Events a response records, for the caller's audit trail.
const (
	EventApproved    = "push.approved"
	EventDenied      = "push.denied"
	EventNotMe       = "push.not_me"
	EventWrongNumber = "push.wrong_number"
)

// Errors. A caller maps them to its own statuses.
var (
	// ErrUnauthenticated: a device request's signature, timestamp, nonce or device
	// does not check out. Deliberately one error for all of these.
	ErrUnauthenticated = errors.New("push: device request not authenticated")
	// ErrEnrollment: the enrollment token is unknown, used or expired.
	ErrEnrollment = errors.New("push: enrollment token unknown, used or expired")
	// ErrNoDevice: the user has no active device.
	ErrNoDevice = errors.New("push: no active device")
	// ErrTooManyDevices: the user has MaxDevices active devices.
	ErrTooManyDevices = errors.New("push: too many devices")
	// ErrTooManyEnrollments: the user has MaxPendingEnrollments tokens waiting
	// (an *EnrollmentCapError says how many).
	ErrTooManyEnrollments = errors.New("push: too many enrollments waiting")
	// ErrNotFound: no such challenge or device for this user or device.
	ErrNotFound = errors.New("push: not found")
	// ErrAnswered: the challenge was already answered.
	ErrAnswered = errors.New("push: challenge already answered")
	// ErrExpired: the challenge expired.
	ErrExpired = errors.New("push: challenge expired")
)

// InputError reports a bad argument; Field names it.
type InputError struct {
	Field, Reason string
}

func (e *InputError) Error() string { return e.Field + ": " + e.Reason }

func inputErr(field, format string, a ...any) error {
	return &InputError{Field: field, Reason: fmt.Sprintf(format, a...)}
}

// Config tunes the push factor. Zero values take the defaults.
type Config struct {
	// NumberMode is NumberDigits (default), NumberChoice or NumberNone.
	NumberMode string
	// Digits of the number, 2 (default) to 6.
	Digits int
	// ChallengeTTL is how long a push can be answered (default 2 minutes).
	ChallengeTTL time.Duration
	// EnrollmentTTL is how long an enrollment token lives (default and at most 5 minutes).
	EnrollmentTTL time.Duration
	// Window is how far a device request's timestamp may be from now (default 60 s).
	Window time.Duration
	// BackoffBase and BackoffMax: after a denied or unanswered push the next one
	// waits BackoffBase (default 10 s), doubling per further one, up to BackoffMax
	// (default 1 h).
	BackoffBase, BackoffMax time.Duration
	// DailyCap bounds the pushes begun per user and UTC day (default 20).
	DailyCap int
	// LockOnNotMe locks the push method for a user who answered "this was not me",
	// until Unlock (the caller calls it when the user signs in with another factor).
	LockOnNotMe bool
	// MaxDevices bounds a user's active devices (default 10).
	MaxDevices int
	// MaxPendingEnrollments bounds a user's enrollment tokens unused and
	// unexpired (default 5): BeginEnrollment refuses more (*EnrollmentCapError).
	MaxPendingEnrollments int
	// AllowHTTP accepts http:// endpoints on any host (tests only).
	AllowHTTP bool
	// EndpointHosts, when set, lists the hosts (or ".suffix" domains) a device's
	// https endpoint may name, so that notifyd only ever posts to known push
	// services; empty: any https host.
	EndpointHosts []string
	// HTTPEndpointHosts lists the hosts (or ".suffix" domains) a device's
	// endpoint may name over plain http: push services on the deployment's own
	// network, such as the compose file's ntfy (http://ntfy/<topic>), that
	// notifyd reaches without leaving it. Every other endpoint must be https.
	HTTPEndpointHosts []string
	// AllowInternal is what a device's endpoint may name although not a public
	// address: the networks and hosts notifyd's -push-allow-internal allows (authd's
	// -push-allow-internal, plus its push-http-endpoint-hosts). An endpoint whose
	// host is an IP literal in a refused range (loopback, RFC 1918, link-local,
	// ULA, …: notify/egress's policy) or localhost, and not allowed here, is
	// refused at enrollment and UpdatePushEndpoint, since notifyd would never wake
	// it. Other host names are not resolved then (notifyd checks the addresses at
	// each dial).
	AllowInternal egress.Allow
	// VAPIDPublicKey is the server's Web Push key (base64url, an uncompressed
	// P-256 point), given to enrolling devices (Enrollment.VAPIDPublicKey and the
	// URI's "vapid") for their PushManager.subscribe; empty: no Web Push.
	VAPIDPublicKey string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// OnWait, if set, is called when a Wait starts waiting for a device (after
	// its read found the challenge pending): for metrics and tests.
	OnWait func(challengeID string)
}

func (c Config) withDefaults() (Config, error) {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.ChallengeTTL, 2*time.Minute)
	def(&c.EnrollmentTTL, 5*time.Minute)
	def(&c.Window, 60*time.Second)
	def(&c.BackoffBase, 10*time.Second)
	def(&c.BackoffMax, time.Hour)
	if c.NumberMode == "" {
		c.NumberMode = NumberDigits
	}
	if c.Digits == 0 {
		c.Digits = 2
	}
	if c.DailyCap <= 0 {
		c.DailyCap = 20
	}
	if c.MaxDevices <= 0 {
		c.MaxDevices = 10
	}
	if c.MaxPendingEnrollments <= 0 {
		c.MaxPendingEnrollments = 5
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	switch {
	case c.NumberMode != NumberDigits && c.NumberMode != NumberChoice && c.NumberMode != NumberNone:
		return c, fmt.Errorf("push: number mode %q: want digits, choice or none", c.NumberMode)
	case c.Digits < 2 || c.Digits > 6:
		return c, fmt.Errorf("push: digits %d: want 2 to 6", c.Digits)
	case c.EnrollmentTTL > 5*time.Minute:
		return c, errors.New("push: enrollment TTL: at most 5 minutes")
	case c.VAPIDPublicKey != "" && !validVAPIDKey(c.VAPIDPublicKey):
		return c, errors.New("push: VAPID public key: want an uncompressed P-256 point in base64url")
	}
	return c, nil
}

// Service is the push factor. It is safe for concurrent use, and any number of
// replicas may share one store: every decision is a conditional statement there.
type Service struct {
	store  *storage.Store
	ring   *storage.KeyRing
	cfg    Config
	egress *egress.Dialer // only its CheckHost: the endpoint's address policy
}

// New returns the push factor on store, sealing with ring.
func New(store *storage.Store, ring *storage.KeyRing, cfg Config) (*Service, error) {
	if store == nil || ring == nil {
		return nil, errors.New("push: store and key ring are required")
	}
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Service{store: store, ring: ring, cfg: c, egress: egress.NewDialer(egress.Config{Allow: c.AllowInternal})}, nil
}

// Config returns the configuration in force (defaults filled in).
func (s *Service) Config() Config { return s.cfg }

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

// Cleanup removes expired enrollment tokens, challenges and nonces.
func (s *Service) Cleanup(ctx context.Context) error {
	now := s.now()
	_, e1 := s.store.DeletePushEnrollmentsBefore(ctx, now)
	_, e2 := s.store.DeletePushChallengesBefore(ctx, now.Add(-time.Hour))
	_, e3 := s.store.DeletePushNoncesBefore(ctx, now)
	return errors.Join(e1, e2, e3)
}

// EnrollmentCapError refuses an enrollment token beyond MaxPendingEnrollments;
// it is ErrTooManyEnrollments.
type EnrollmentCapError struct {
	Have  int64
	Limit int
}

func (e *EnrollmentCapError) Error() string {
	return fmt.Sprintf("push: the user has %d enrollments waiting, the most allowed is %d", e.Have, e.Limit)
}

// Unwrap makes the error ErrTooManyEnrollments.
func (e *EnrollmentCapError) Unwrap() error { return ErrTooManyEnrollments }
