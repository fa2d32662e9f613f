package storage

import (
	"context"
	"time"

	"gorm.io/gorm"
)

// Push device states.
const (
	PushDeviceActive  = "active"
	PushDeviceRevoked = "revoked"
)

// Push endpoint kinds: where notifyd sends a device's opaque wake-up.
const (
	PushEndpointWebPush = "webpush"
	PushEndpointNtfy    = "ntfy"
	PushEndpointPoll    = "poll"
)

// Push challenge states. A challenge is pending until a device answers it or it
// expires; approved until VerifyChallenge redeems it once; withdrawn when its
// push request could not be published (no device was told of it).
const (
	PushPending   = "pending"
	PushApproved  = "approved"
	PushDenied    = "denied"
	PushRedeemed  = "redeemed"
	PushWithdrawn = "withdrawn"
)

// Table names of the push factor, also the first part of their seals' associated data.
const (
	pushDevicesTable    = "push_devices"
	pushChallengesTable = "push_challenges"
)

// pushModels are the push factor's tables, migrated with the others.
func pushModels() []any {
	return []any{&PushEnrollment{}, &PushDevice{}, &PushChallenge{}, &PushNonce{}, &PushLimit{}}
}

// PushEnrollment is a one-time device enrollment token. Only its keyed hash
// MAC("push-enroll", token) is stored; UsedAt is set once, by a conditional UPDATE.
type PushEnrollment struct {
	ID        string    `gorm:"primaryKey;size:36"`
	UserID    string    `gorm:"size:255;not null;index"`
	TokenHash []byte    `gorm:"not null;uniqueIndex"`
	ExpiresAt time.Time `gorm:"not null;index"`
	UsedAt    *time.Time
	CreatedAt time.Time
}

// PushDevice is an enrolled device: its ECDSA P-256 public key (PKIX DER) and its
// delivery endpoint, sealed (a Web Push subscription's auth secret and an ntfy
// topic URL let anyone who knows them push to the device). Each device has a
// factors row of the same id and method "push", which is what ListFactors,
// policy and RemoveFactor see; the device is usable only while that row is active.
type PushDevice struct {
	ID        string `gorm:"primaryKey;size:36"`
	UserID    string `gorm:"size:255;not null;index"`
	Name      string `gorm:"size:255;not null"`
	Platform  string `gorm:"size:32;not null"`
	PublicKey []byte `gorm:"not null"`
	State     string `gorm:"size:16;not null"`
	// EndpointKind is one of the PushEndpoint* kinds; poll has no SealedEndpoint.
	EndpointKind string `gorm:"size:16;not null"`
	// SealedEndpoint is the endpoint's JSON sealed under EndpointKeyID with
	// associated data SealAAD("push_devices", UserID, ID).
	SealedEndpoint []byte
	EndpointKeyID  string `gorm:"size:32"`
	CreatedAt      time.Time
	LastSeenAt     *time.Time
	RevokedAt      *time.Time
	// EndpointRetiredAt is when a push service answered 404/410 for the endpoint.
	EndpointRetiredAt *time.Time
}

// AAD is the associated data a device's endpoint is sealed with.
func (d *PushDevice) AAD() []byte { return SealAAD(pushDevicesTable, d.UserID, d.ID) }

// PushChallenge is one push login in progress. The number for number matching is
// kept only as a keyed hash; the login context (client, IP, user agent, choices)
// is sealed, since it is personal data that only the user's devices may read.
type PushChallenge struct {
	ID     string `gorm:"primaryKey;size:36"`
	UserID string `gorm:"size:255;not null;index"`
	State  string `gorm:"size:16;not null"`
	// NumberMode is the provider's number-matching mode; NumberHash the keyed hash
	// of the number (empty in tap-only mode).
	NumberMode string `gorm:"size:16;not null"`
	NumberHash []byte
	// SealedContext is the context's JSON sealed under ContextKeyID with
	// associated data SealAAD("push_challenges", UserID, ID).
	SealedContext []byte
	ContextKeyID  string    `gorm:"size:32"`
	ExpiresAt     time.Time `gorm:"not null;index"`
	// Decision and DeviceID record the answer (Decision also "wrong_number").
	Decision   string `gorm:"size:16"`
	DeviceID   string `gorm:"size:36"`
	AnsweredAt *time.Time
	RedeemedAt *time.Time
	CreatedAt  time.Time
}

// AAD is the associated data a challenge's context is sealed with.
func (c *PushChallenge) AAD() []byte { return SealAAD(pushChallengesTable, c.UserID, c.ID) }

// PushNonce remembers a nonce of a device request until the request's timestamp
// leaves the accepted window, so that a request is accepted once.
type PushNonce struct {
	DeviceID  string    `gorm:"primaryKey;size:36"`
	Nonce     []byte    `gorm:"primaryKey"`
	ExpiresAt time.Time `gorm:"not null;index"`
}

// PushLimit is a user's push-bombing state, shared by every replica and changed
// only by compare-and-set on Version (CompareAndSwapPushLimit).
type PushLimit struct {
	UserID string `gorm:"primaryKey;size:255"`
	// Version counts the writes; a write names the version it read.
	Version int64 `gorm:"not null;default:0"`
	// PendingID is the challenge now pending (empty: none), until PendingUntil.
	PendingID    string `gorm:"size:36;not null;default:''"`
	PendingUntil time.Time
	// Level is how many denied or unanswered pushes in a row set NextAllowedAt.
	Level         int `gorm:"not null;default:0"`
	NextAllowedAt time.Time
	// Day (UTC, "2006-01-02") and DayCount count the pushes begun that day.
	Day      string `gorm:"size:10;not null;default:''"`
	DayCount int    `gorm:"not null;default:0"`
	// Locked is set by a "this was not me" answer when the operator asks for it.
	Locked bool `gorm:"not null;default:false"`
}

// CreatePushEnrollment inserts an enrollment token's row.
func (s *Store) CreatePushEnrollment(ctx context.Context, e *PushEnrollment) error {
	return s.DB(ctx).Create(e).Error
}

// CreatePushEnrollmentWithin inserts e unless its user already has limit
// enrollment tokens unused and unexpired at now (*CapError, What "push
// enrollments waiting"). The count and the insert are one transaction that
// holds the user first (LockAttempt), so tokens issued for one user at the same
// instant, on any replica, never pass the cap. Inside a caller's transaction,
// run it before any read the caller's transaction depends on (LockAttempt's
// rule).
func (s *Store) CreatePushEnrollmentWithin(ctx context.Context, e *PushEnrollment, limit int, now time.Time) error {
	return s.insertWithin(ctx, "push-enrollments:"+e.UserID, "push enrollments waiting", limit,
		func(ctx context.Context) (n int64, err error) {
			err = s.DB(ctx).Model(&PushEnrollment{}).Where("user_id = ? AND used_at IS NULL AND expires_at > ?", e.UserID, now).Count(&n).Error
			return n, err
		},
		func(ctx context.Context) error { return s.CreatePushEnrollment(ctx, e) })
}

// GetPushEnrollment finds an unused, unexpired enrollment by its token hash;
// ErrNotFound otherwise.
func (s *Store) GetPushEnrollment(ctx context.Context, tokenHash []byte, now time.Time) (*PushEnrollment, error) {
	var e PushEnrollment
	err := s.DB(ctx).Where("token_hash = ? AND used_at IS NULL AND expires_at > ?", tokenHash, now).Take(&e).Error
	if err != nil {
		return nil, notFound(err)
	}
	return &e, nil
}

// UsePushEnrollment marks an enrollment used; of concurrent callers exactly one
// sees true.
func (s *Store) UsePushEnrollment(ctx context.Context, id string, now time.Time) (bool, error) {
	res := s.DB(ctx).Model(&PushEnrollment{}).
		Where("id = ? AND used_at IS NULL AND expires_at > ?", id, now).Update("used_at", now)
	return res.RowsAffected == 1, res.Error
}

// DeletePushEnrollmentsBefore removes enrollment tokens that expired before t.
func (s *Store) DeletePushEnrollmentsBefore(ctx context.Context, t time.Time) (int64, error) {
	res := s.DB(ctx).Where("expires_at < ?", t).Delete(&PushEnrollment{})
	return res.RowsAffected, res.Error
}

// CreatePushDevice inserts a device.
func (s *Store) CreatePushDevice(ctx context.Context, d *PushDevice) error {
	return s.DB(ctx).Create(d).Error
}

// GetPushDevice loads a device by id, whatever its user or state.
func (s *Store) GetPushDevice(ctx context.Context, id string) (*PushDevice, error) {
	var d PushDevice
	if err := s.DB(ctx).Where("id = ?", id).Take(&d).Error; err != nil {
		return nil, notFound(err)
	}
	return &d, nil
}

// activeDevice is the condition of a usable device: active, and its factor row
// (same id, method push) still there and active, so that removing the factor
// (EnrollmentService.RemoveFactor, an admin's reset) disables the device at once.
const activeDevice = "push_devices.state = ? AND EXISTS (SELECT 1 FROM factors WHERE factors.id = push_devices.id AND factors.state = ?)"

// CountPushDevices counts a user's usable devices.
func (s *Store) CountPushDevices(ctx context.Context, userID string) (int64, error) {
	var n int64
	err := s.DB(ctx).Model(&PushDevice{}).Where("user_id = ?", userID).
		Where(activeDevice, PushDeviceActive, FactorActive).Count(&n).Error
	return n, err
}

// RevokePushDevice revokes a user's active device, drops its endpoint and removes
// its factor row, in one transaction; ErrNotFound when the user has no such active
// device.
func (s *Store) RevokePushDevice(ctx context.Context, userID, id string, now time.Time) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		res := s.DB(ctx).Model(&PushDevice{}).
			Where("id = ? AND user_id = ? AND state = ?", id, userID, PushDeviceActive).
			Updates(map[string]any{"state": PushDeviceRevoked, "revoked_at": now, "sealed_endpoint": nil,
				"endpoint_kind": PushEndpointPoll})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return s.DB(ctx).Where("id = ? AND user_id = ?", id, userID).Delete(&Factor{}).Error
	})
}

// RetirePushEndpoint turns a device to polling, only if its endpoint is still
// sealed (the one a push service refused): a device that registered a new
// endpoint meanwhile keeps it. It reports whether it wrote.
func (s *Store) RetirePushEndpoint(ctx context.Context, id string, sealed []byte, now time.Time) (bool, error) {
	res := s.DB(ctx).Model(&PushDevice{}).Where("id = ? AND sealed_endpoint = ?", id, sealed).
		Updates(map[string]any{"endpoint_kind": PushEndpointPoll, "sealed_endpoint": nil, "endpoint_retired_at": now})
	return res.RowsAffected == 1, res.Error
}

// SetPushEndpoint replaces an active device's endpoint.
func (s *Store) SetPushEndpoint(ctx context.Context, id, kind, keyID string, sealed []byte) error {
	res := s.DB(ctx).Model(&PushDevice{}).Where("id = ? AND state = ?", id, PushDeviceActive).
		Updates(map[string]any{"endpoint_kind": kind, "sealed_endpoint": sealed, "endpoint_key_id": keyID})
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// TouchPushDevice records that a device was seen at now.
func (s *Store) TouchPushDevice(ctx context.Context, id string, now time.Time) error {
	return s.DB(ctx).Model(&PushDevice{}).Where("id = ?", id).Update("last_seen_at", now).Error
}

// DeletePushNoncesBefore forgets nonces whose requests can no longer be accepted.
func (s *Store) DeletePushNoncesBefore(ctx context.Context, t time.Time) (int64, error) {
	res := s.DB(ctx).Where("expires_at < ?", t).Delete(&PushNonce{})
	return res.RowsAffected, res.Error
}

// DeletePushChallengesBefore removes push challenges that expired before t.
func (s *Store) DeletePushChallengesBefore(ctx context.Context, t time.Time) (int64, error) {
	res := s.DB(ctx).Where("expires_at < ?", t).Delete(&PushChallenge{})
	return res.RowsAffected, res.Error
}

// UnlockPushLimit lifts a user's "this was not me" lock, if any, in one statement
// (no row is written for a user without one). It reports whether it wrote.
func (s *Store) UnlockPushLimit(ctx context.Context, userID string) (bool, error) {
	res := s.DB(ctx).Model(&PushLimit{}).Where("user_id = ? AND locked = ?", userID, true).
		Updates(map[string]any{"locked": false, "version": gorm.Expr("version + 1")})
	return res.RowsAffected == 1, res.Error
}
