package trusteddevice

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/twofactor/twofactor/providers/internal/userid"
	"github.com/twofactor/twofactor/storage"
)

// Keyed-hash purposes: the lookup hash of a token, and the derivation of the
// token that replaces it.
const (
	macPurpose  = "trusted-device"
	nextPurpose = "trusted-device-next"
)

// Defaults and bounds of Config and IssueInput.
const (
	DefaultMaxAge     = 30 * 24 * time.Hour
	MaxMaxAge         = 400 * 24 * time.Hour
	DefaultGrace      = 30 * time.Second
	MaxGrace          = 5 * time.Minute
	DefaultMaxPerUser = 20
	MaxLabelLen       = 128 // characters
	MaxUserAgentLen   = 512 // bytes; longer ones are cut
)

var (
	// ErrInvalidArgument wraps a message that names the argument that was wrong.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrNotFound: the user has no remembered device with that id.
	ErrNotFound = storage.ErrNotFound
)

// Reason tells why a token did not satisfy the second factor; the caller of the
// RPC learns only "not remembered", the audit trail and throttling the reason.
type Reason string

const (
	ReasonNone      Reason = ""
	ReasonMalformed Reason = "malformed"  // not a device token at all
	ReasonUnknown   Reason = "unknown"    // well formed, no such token (or revoked)
	ReasonOtherUser Reason = "other_user" // a token of another user
	ReasonExpired   Reason = "expired"    // past the series' absolute expiry
	ReasonEpoch     Reason = "epoch"      // the user's credentials changed since issue
	ReasonTheft     Reason = "theft"      // a rotated-away token replayed: series revoked
)

// Device describes a remembered device (never its token).
type Device struct {
	ID, UserID, Label    string
	IssuedIP, UserAgent  string
	CreatedAt, ExpiresAt time.Time
	// LastUsedAt is zero until first use.
	LastUsedAt time.Time
	LastIP     string
	Rotations  int64
}

// Result is the answer to Check.
type Result struct {
	// Remembered: the token was valid; Token is the one to keep from now on.
	Remembered bool
	Token      string
	// Grace: the token was the one just rotated away, accepted once more within
	// the grace; Token is the same successor the first request got.
	Grace  bool
	Device Device
	Reason Reason
	// SeriesID names the series the token belonged to, when known (also for
	// ReasonTheft, ReasonExpired and ReasonEpoch, whose series is then gone).
	SeriesID string
}

// Store is what the provider needs of storage.Store.
type Store interface {
	CreateTrustedDevice(ctx context.Context, d *storage.TrustedDevice, maxPerUser int) ([]string, error)
	GetTrustedDeviceByHash(ctx context.Context, hash []byte) (*storage.TrustedDevice, error)
	GetRetiredDeviceToken(ctx context.Context, hash []byte) (*storage.RetiredDeviceToken, error)
	GetTrustedDevice(ctx context.Context, userID, id string) (*storage.TrustedDevice, error)
	ListTrustedDevices(ctx context.Context, userID string) ([]storage.TrustedDevice, error)
	RotateTrustedDevice(ctx context.Context, id string, oldHash, newHash []byte, now time.Time, clientIP string) (bool, error)
	UseTrustedDeviceGrace(ctx context.Context, id string, prevHash []byte, notBefore, now time.Time, clientIP string) (bool, error)
	DeleteTrustedDevice(ctx context.Context, userID, id string) error
	DeleteTrustedDevicesOfUser(ctx context.Context, userID string) (int64, error)
	GetCredentialsEpoch(ctx context.Context, userID string) (int64, error)
	BumpCredentialsEpoch(ctx context.Context, userID string, now time.Time) (int64, int64, error)
}

// Hasher computes keyed hashes (storage.KeyRing).
type Hasher interface {
	MAC(purpose string, data ...[]byte) []byte
}

// Config wires a Service. Store and Hasher are required.
type Config struct {
	Store  Store
	Hasher Hasher
	// Now is the clock (default time.Now); Rand the source of new tokens
	// (default crypto/rand).
	Now  func() time.Time
	Rand io.Reader
	// Grace is how long after a rotation the replaced token is accepted once
	// more (default DefaultGrace, at most MaxGrace).
	Grace time.Duration
	// MaxPerUser bounds a user's remembered devices; issuing one more evicts
	// the oldest (default DefaultMaxPerUser).
	MaxPerUser int
}

// Service issues, checks, rotates and revokes device tokens. It is safe for
// concurrent use, on any number of replicas sharing the store.
type Service struct{ cfg Config }

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Hasher == nil {
		return nil, errors.New("trusteddevice: Config.Store and Config.Hasher are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.Grace > MaxGrace {
		return nil, fmt.Errorf("trusteddevice: Config.Grace %v is above %v", cfg.Grace, MaxGrace)
	}
	if cfg.MaxPerUser <= 0 {
		cfg.MaxPerUser = DefaultMaxPerUser
	}
	return &Service{cfg: cfg}, nil
}

// now is the clock at the database's precision, in UTC.
func (s *Service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Microsecond) }

func (s *Service) hash(token string) []byte { return s.cfg.Hasher.MAC(macPurpose, []byte(token)) }

// successor derives the token that replaces token: 52 symbols from
// HMAC-SHA-256 under the MAC key (purpose "trusted-device-next"). It is a
// function of the token, so every request that rotates the same token, on any
// replica, derives the same successor, and the grace can return it again
// without storing it.
func (s *Service) successor(token string) string {
	var stream []byte
	for i := byte(0); len(stream) < randomLen; i++ {
		stream = append(stream, s.cfg.Hasher.MAC(nextPurpose, []byte(token), []byte{i})...)
	}
	next, _ := generate(bytes.NewReader(stream)) // cannot fail: stream is long enough
	clear(stream)
	return next
}

// IssueInput describes the device to remember.
type IssueInput struct {
	UserID string
	// Label names the device for the user ("Firefox on Linux"); optional.
	Label string
	// ClientIP and UserAgent are those of the request that asked; optional.
	ClientIP, UserAgent string
	// MaxAge is the series' absolute lifetime (policy): DefaultMaxAge when
	// zero, at most MaxMaxAge.
	MaxAge time.Duration
}

// Issue remembers a device for in.UserID and returns its description and its
// first token, shown this once; only its keyed hash is kept. It also returns
// the ids of the oldest series it evicted to keep the user within MaxPerUser.
func (s *Service) Issue(ctx context.Context, in IssueInput) (Device, string, []string, error) {
	row, err := s.issueRow(in)
	if err != nil {
		return Device{}, "", nil, err
	}
	token, err := generate(s.cfg.Rand)
	if err != nil {
		return Device{}, "", nil, err
	}
	row.Epoch, err = s.cfg.Store.GetCredentialsEpoch(ctx, in.UserID)
	if err != nil {
		return Device{}, "", nil, fmt.Errorf("credentials epoch: %w", err)
	}
	row.TokenHash = s.hash(token)
	evicted, err := s.cfg.Store.CreateTrustedDevice(ctx, row, s.cfg.MaxPerUser)
	if err != nil {
		return Device{}, "", nil, fmt.Errorf("store trusted device: %w", err)
	}
	return fromRow(row), token, evicted, nil
}

// issueRow checks in and builds the row to store (without epoch and hash).
func (s *Service) issueRow(in IssueInput) (*storage.TrustedDevice, error) {
	if err := checkUserID("user_id", in.UserID); err != nil {
		return nil, err
	}
	label, err := checkLabel(in.Label)
	if err != nil {
		return nil, err
	}
	if err := checkIP(in.ClientIP); err != nil {
		return nil, err
	}
	switch {
	case in.MaxAge == 0:
		in.MaxAge = DefaultMaxAge
	case in.MaxAge < time.Minute || in.MaxAge > MaxMaxAge:
		return nil, fmt.Errorf("%w: max_age: %v is not within 1m..%v", ErrInvalidArgument, in.MaxAge, MaxMaxAge)
	}
	now := s.now()
	return &storage.TrustedDevice{
		ID: uuid.NewString(), UserID: in.UserID, Label: label, IssuedIP: in.ClientIP,
		UserAgent: cutUserAgent(in.UserAgent), CreatedAt: now, ExpiresAt: now.Add(in.MaxAge),
	}, nil
}

// Check tells whether token is a live device token of userID. When it is, the
// token is rotated: Result.Token is its successor (same series, same absolute
// expiry), and the token presented is dead from then on, except once within the
// grace, which answers with the same successor. A rotated-away token presented
// again is theft: the whole series is revoked (Result.Reason ReasonTheft). Every
// failure is a Result with a Reason, not an error; errors are for bad arguments
// and a failing database.
func (s *Service) Check(ctx context.Context, userID, token, clientIP string) (Result, error) {
	if err := checkUserID("user_id", userID); err != nil {
		return Result{}, err
	}
	if err := checkIP(clientIP); err != nil {
		return Result{}, err
	}
	canonical, err := Parse(token)
	if err != nil {
		return Result{Reason: ReasonMalformed}, nil
	}
	h := s.hash(canonical)
	row, err := s.cfg.Store.GetTrustedDeviceByHash(ctx, h)
	if errors.Is(err, storage.ErrNotFound) {
		return s.checkRetired(ctx, userID, canonical, h, clientIP)
	}
	if err != nil {
		return Result{}, fmt.Errorf("look up device token: %w", err)
	}
	if res, dead, err := s.checkAlive(ctx, row, userID, h); dead || err != nil {
		return res, err
	}
	next := s.successor(canonical)
	now := s.now()
	won, err := s.cfg.Store.RotateTrustedDevice(ctx, row.ID, h, s.hash(next), now, clientIP)
	if err != nil {
		return Result{}, fmt.Errorf("rotate device token: %w", err)
	}
	if !won { // another request rotated it first: the grace decides
		return s.checkRetired(ctx, userID, canonical, h, clientIP)
	}
	row.LastUsedAt, row.LastIP, row.Rotations = &now, clientIP, row.Rotations+1
	return Result{Remembered: true, Token: next, Device: fromRow(row), SeriesID: row.ID}, nil
}

// checkAlive checks a series found by the hash h of a token presented for
// userID: its user, expiry and epoch. dead reports that res is the answer.
func (s *Service) checkAlive(ctx context.Context, row *storage.TrustedDevice, userID string, h []byte) (res Result, dead bool, err error) {
	if !storage.EqualMAC(row.TokenHash, h) && !storage.EqualMAC(row.PrevHash, h) {
		return Result{Reason: ReasonUnknown}, true, nil // the index matched: belt and braces
	}
	if subtle.ConstantTimeCompare([]byte(row.UserID), []byte(userID)) != 1 {
		return Result{Reason: ReasonOtherUser}, true, nil
	}
	reason := ReasonNone
	if !s.now().Before(row.ExpiresAt) {
		reason = ReasonExpired
	} else {
		epoch, err := s.cfg.Store.GetCredentialsEpoch(ctx, userID)
		if err != nil {
			return Result{}, true, fmt.Errorf("credentials epoch: %w", err)
		}
		if epoch != row.Epoch {
			reason = ReasonEpoch
		}
	}
	if reason == ReasonNone {
		return Result{}, false, nil
	}
	if err := s.cfg.Store.DeleteTrustedDevice(ctx, userID, row.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return Result{}, true, fmt.Errorf("remove dead trusted device: %w", err)
	}
	return Result{Reason: reason, SeriesID: row.ID}, true, nil
}

// checkRetired answers a token that is not the current one of any series: the
// previous token within the grace (once), theft after it, or unknown.
func (s *Service) checkRetired(ctx context.Context, userID, canonical string, h []byte, clientIP string) (Result, error) {
	ret, err := s.cfg.Store.GetRetiredDeviceToken(ctx, h)
	if errors.Is(err, storage.ErrNotFound) {
		return Result{Reason: ReasonUnknown}, nil
	}
	if err != nil {
		return Result{}, fmt.Errorf("look up retired device token: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(ret.UserID), []byte(userID)) != 1 {
		return Result{Reason: ReasonOtherUser}, nil
	}
	row, err := s.cfg.Store.GetTrustedDevice(ctx, userID, ret.DeviceID)
	if errors.Is(err, storage.ErrNotFound) {
		return Result{Reason: ReasonUnknown}, nil
	}
	if err != nil {
		return Result{}, fmt.Errorf("load trusted device: %w", err)
	}
	if storage.EqualMAC(row.PrevHash, h) {
		if res, dead, err := s.checkAlive(ctx, row, userID, h); dead || err != nil {
			return res, err
		}
		next := s.successor(canonical)
		now := s.now()
		ok, err := s.cfg.Store.UseTrustedDeviceGrace(ctx, row.ID, h, now.Add(-s.cfg.Grace), now, clientIP)
		if err != nil {
			return Result{}, fmt.Errorf("device token grace: %w", err)
		}
		if ok && storage.EqualMAC(row.TokenHash, s.hash(next)) {
			row.LastUsedAt, row.LastIP = &now, clientIP
			return Result{Remembered: true, Grace: true, Token: next, Device: fromRow(row), SeriesID: row.ID}, nil
		}
	}
	if err := s.cfg.Store.DeleteTrustedDevice(ctx, userID, row.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return Result{}, fmt.Errorf("revoke stolen series: %w", err)
	}
	return Result{Reason: ReasonTheft, SeriesID: row.ID, Device: fromRow(row)}, nil
}

// List returns a user's remembered devices, oldest first.
func (s *Service) List(ctx context.Context, userID string) ([]Device, error) {
	if err := checkUserID("user_id", userID); err != nil {
		return nil, err
	}
	rows, err := s.cfg.Store.ListTrustedDevices(ctx, userID)
	if err != nil {
		return nil, err
	}
	out := make([]Device, 0, len(rows))
	now := s.now()
	for i := range rows {
		if now.Before(rows[i].ExpiresAt) {
			out = append(out, fromRow(&rows[i]))
		}
	}
	return out, nil
}

// Revoke forgets one remembered device of a user; ErrNotFound when the user has
// none with that id.
func (s *Service) Revoke(ctx context.Context, userID, id string) error {
	if err := checkUserID("user_id", userID); err != nil {
		return err
	}
	if _, err := uuid.Parse(id); err != nil || len(id) != 36 {
		return fmt.Errorf("%w: device_id: not a device id", ErrInvalidArgument)
	}
	return s.cfg.Store.DeleteTrustedDevice(ctx, userID, id)
}

// RevokeAll forgets every remembered device of a user and returns how many.
func (s *Service) RevokeAll(ctx context.Context, userID string) (int, error) {
	if err := checkUserID("user_id", userID); err != nil {
		return 0, err
	}
	n, err := s.cfg.Store.DeleteTrustedDevicesOfUser(ctx, userID)
	return int(n), err
}

// CredentialsChanged moves the user's credentials epoch on: every device token
// issued before is dead on every replica. Call it when a factor is added,
// removed or reset, an admin code is issued, or the password changes. It returns
// the new epoch and how many remembered devices died.
func (s *Service) CredentialsChanged(ctx context.Context, userID string) (epoch int64, removed int, err error) {
	if err := checkUserID("user_id", userID); err != nil {
		return 0, 0, err
	}
	e, n, err := s.cfg.Store.BumpCredentialsEpoch(ctx, userID, s.now())
	if err != nil {
		return 0, 0, fmt.Errorf("credentials epoch: %w", err)
	}
	return e, int(n), nil
}

func fromRow(r *storage.TrustedDevice) Device {
	d := Device{
		ID: r.ID, UserID: r.UserID, Label: r.Label, IssuedIP: r.IssuedIP, UserAgent: r.UserAgent,
		CreatedAt: r.CreatedAt.UTC(), ExpiresAt: r.ExpiresAt.UTC(), LastIP: r.LastIP, Rotations: r.Rotations,
	}
	if r.LastUsedAt != nil {
		d.LastUsedAt = r.LastUsedAt.UTC()
	}
	return d
}

func checkUserID(field, v string) error { return userid.Check(ErrInvalidArgument, field, v) }

func checkIP(ip string) error {
	if ip == "" {
		return nil
	}
	if _, err := netip.ParseAddr(ip); err != nil {
		return fmt.Errorf("%w: client_ip: not an IP address", ErrInvalidArgument)
	}
	return nil
}

// checkLabel trims and checks a device's label.
func checkLabel(label string) (string, error) {
	label = strings.TrimSpace(label)
	switch {
	case !utf8.ValidString(label) || strings.IndexFunc(label, unicode.IsControl) >= 0:
		return "", fmt.Errorf("%w: device_label: not printable UTF-8", ErrInvalidArgument)
	case utf8.RuneCountInString(label) > MaxLabelLen:
		return "", fmt.Errorf("%w: device_label: longer than %d characters", ErrInvalidArgument, MaxLabelLen)
	}
	return label, nil
}

// cutUserAgent keeps at most MaxUserAgentLen bytes of valid, printable UTF-8 (a
// user agent is informational: too long or odd ones are cut, not refused).
func cutUserAgent(ua string) string {
	ua = strings.ToValidUTF8(ua, "")
	ua = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, ua)
	for len(ua) > MaxUserAgentLen {
		_, size := utf8.DecodeLastRuneInString(ua)
		ua = ua[:len(ua)-size]
	}
	return ua
}
