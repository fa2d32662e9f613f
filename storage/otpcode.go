package storage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// One-time code states (OTPCode.State).
const (
	OTPOpen   = "open"
	OTPUsed   = "used"
	OTPFailed = "failed"
)

// One-time code purposes (OTPCode.Purpose).
const (
	OTPLogin  = "login"
	OTPEnroll = "enroll"
)

// Delivery states of a one-time code (OTPCode.Delivery).
const (
	DeliveryQueued    = "queued"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// OTPCode is one code sent out of band (email, SMS, Telegram, Signal) for one
// login challenge or one enrollment: its keyed hash to verify it, the code sealed
// so that a resend can send the same one again, and the counts that bound it.
// Any replica can verify or resend it; every count is one conditional UPDATE.
type OTPCode struct {
	// ID is the login challenge's id, or the pending factor's id for an enrollment.
	ID       string `gorm:"primaryKey;size:36"`
	UserID   string `gorm:"size:255;not null;index"`
	FactorID string `gorm:"size:36;not null"`
	Channel  string `gorm:"size:16;not null"`
	Purpose  string `gorm:"size:16;not null"`
	State    string `gorm:"size:16;not null"`
	// CodeHash is KeyRing.MAC over the row id and the code: bound to this row.
	CodeHash []byte `gorm:"not null"`
	// SealedCode is the code sealed with OTPCodeAAD, for a resend.
	SealedCode  []byte `gorm:"not null"`
	CodeKeyID   string `gorm:"size:32;not null"`
	Attempts    int    `gorm:"not null;default:0"`
	MaxAttempts int    `gorm:"not null"`
	// Sends counts the sends of the code (the first one included).
	Sends      int       `gorm:"not null;default:0"`
	LastSentAt time.Time `gorm:"not null"`
	// NextSendAt is when a resend is allowed (the cooldown's end).
	NextSendAt     time.Time `gorm:"not null"`
	Delivery       string    `gorm:"size:16;not null"`
	DeliveryReason string    `gorm:"size:255"`
	DeliveryAt     time.Time `gorm:"not null"`
	ExpiresAt      time.Time `gorm:"not null;index"`
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// TableName keeps the table name plain.
func (OTPCode) TableName() string { return "otp_codes" }

const otpCodesTable = "otp_codes"

// OTPCodeAAD is the associated data a code is sealed with: its table, user and row.
func OTPCodeAAD(userID, id string) []byte { return SealAAD(otpCodesTable, userID, id) }

// OTPSendCounter counts the sends of one subject (a user, or a destination named
// by its keyed hash) in one UTC day, shared by every replica.
type OTPSendCounter struct {
	Scope string `gorm:"primaryKey;size:8"`
	Key   string `gorm:"column:subject_key;primaryKey;size:255"`
	// Day is the UTC date, 2006-01-02.
	Day       string `gorm:"primaryKey;size:10"`
	Sends     int    `gorm:"not null"`
	UpdatedAt time.Time
}

// TableName keeps the table name plain.
func (OTPSendCounter) TableName() string { return "otp_send_counters" }

// OTPLinkToken is a one-time token that binds a chat to a pending factor (the
// Telegram deep link's start parameter). Only its keyed hash is stored.
type OTPLinkToken struct {
	TokenHash string    `gorm:"primaryKey;size:64"`
	UserID    string    `gorm:"size:255;not null"`
	FactorID  string    `gorm:"size:36;not null"`
	ExpiresAt time.Time `gorm:"not null;index"`
	UsedAt    *time.Time
	CreatedAt time.Time
}

// TableName keeps the table name plain.
func (OTPLinkToken) TableName() string { return "otp_link_tokens" }

// OTPSendCap is one daily cap a send counts toward.
type OTPSendCap struct {
	Scope string // e.g. "user", "dest"
	Key   string
	Limit int
}

// SendCapError reports a send refused because a daily cap was reached.
type SendCapError struct{ Scope string }

func (e *SendCapError) Error() string {
	return fmt.Sprintf("daily send cap of the %s reached", e.Scope)
}

// ErrOTPNotWon is returned when a conditional update of a code found it in
// another state than the caller saw (used, expired, resent concurrently).
var ErrOTPNotWon = errors.New("one-time code changed concurrently")

// OTPDay is the counter day of t.
func OTPDay(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// countSends adds one send to each cap's counter for now's day; a counter at its
// limit refuses with a *SendCapError. Each count is one upsert, so replicas
// sending at once never pass a cap. Run it in a transaction: a refused cap
// rolls back the counts already made.
func (s *Store) countSends(ctx context.Context, caps []OTPSendCap, now time.Time) error {
	day := OTPDay(now)
	for _, c := range caps {
		if c.Limit < 1 {
			return &SendCapError{Scope: c.Scope}
		}
		rows, err := s.hotQuery(ctx, countSendSQL, c.Scope, c.Key, day, now.UTC(), c.Limit) // hototp.go
		if err != nil {
			return err
		}
		counted := rows.Next()
		if err := rows.Close(); err != nil {
			return err
		}
		if !counted {
			if err := rows.Err(); err != nil {
				return err
			}
			return &SendCapError{Scope: c.Scope}
		}
	}
	return nil
}

// CreateOTPCode counts the first send toward caps and inserts c, in one
// transaction: a refused cap (*SendCapError) leaves nothing written.
func (s *Store) CreateOTPCode(ctx context.Context, c *OTPCode, caps []OTPSendCap, now time.Time) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		if err := s.countSends(ctx, caps, now); err != nil {
			return err
		}
		return s.insertOTPCode(ctx, c) // hototp.go
	})
}

// CountOTPSends counts one send toward caps, for a message that is not a code
// (a notice), in its own transaction.
func (s *Store) CountOTPSends(ctx context.Context, caps []OTPSendCap, now time.Time) error {
	return s.InTx(ctx, func(ctx context.Context) error { return s.countSends(ctx, caps, now) })
}

// GetOTPCode loads a user's code row, or ErrNotFound.
func (s *Store) GetOTPCode(ctx context.Context, userID, id string) (*OTPCode, error) {
	return queryOne(ctx, s, scanOTPCode, getOTPCodeSQL, id, userID) // hototp.go
}

// AttemptOTPCode counts one attempt on an open, unexpired code with attempts
// left, before the caller evaluates the answer, and returns the row as that
// count left it. Of any number of concurrent callers, at most MaxAttempts get a
// row. ErrOTPNotWon means no attempt is left (or the code is used, failed,
// expired); ErrNotFound that the user has no such code.
func (s *Store) AttemptOTPCode(ctx context.Context, userID, id string, now time.Time) (*OTPCode, error) {
	c, err := queryOne(ctx, s, scanOTPCode, attemptOTPCodeSQL, now, id, userID, OTPOpen, now) // hototp.go
	if errors.Is(err, ErrNotFound) {                                                          // no row changed: say why
		if _, err := s.GetOTPCode(ctx, userID, id); err != nil {
			return nil, err
		}
		return nil, ErrOTPNotWon
	}
	return c, err
}

// ConsumeOTPCode marks an open, unexpired code used. Of concurrent callers,
// exactly one wins (true).
func (s *Store) ConsumeOTPCode(ctx context.Context, id string, now time.Time) (bool, error) {
	n, err := s.hotExec(ctx, consumeOTPCodeSQL, OTPUsed, now, id, OTPOpen, now) // hototp.go
	return n == 1, err
}

// FailOTPCodeIfSpent marks an open code failed once its attempts are all used.
func (s *Store) FailOTPCodeIfSpent(ctx context.Context, id string, now time.Time) error {
	_, err := s.hotExec(ctx, failOTPCodeIfSpentSQL, OTPFailed, now, id, OTPOpen) // hototp.go
	return err
}

// ResendOTPCode records one more send of an open, unexpired code whose cooldown
// is over, if it was sent exactly seen times (so that of concurrent resends one
// wins; the others get ErrOTPNotWon), sets the next cooldown's end to next and
// the delivery back to queued, and counts the send toward caps; a refused cap
// (*SendCapError) leaves nothing written.
func (s *Store) ResendOTPCode(ctx context.Context, userID, id string, seen int, next time.Time, caps []OTPSendCap, now time.Time) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		res := s.DB(ctx).Model(&OTPCode{}).
			Where("id = ? AND user_id = ? AND state = ? AND expires_at > ? AND sends = ? AND next_send_at <= ?",
				id, userID, OTPOpen, now, seen, now).
			Updates(map[string]any{"sends": gorm.Expr("sends + 1"), "last_sent_at": now, "next_send_at": next,
				"delivery": DeliveryQueued, "delivery_reason": "", "delivery_at": now, "updated_at": now})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrOTPNotWon
		}
		return s.countSends(ctx, caps, now)
	})
}

// UnsendOTPCode takes back send number seq of userID's code id, which was
// counted (CreateOTPCode, ResendOTPCode) but never published: if the code was
// sent exactly seq times, one conditional UPDATE counts one send fewer and
// records the delivery as failed with reason, and each cap's counter of day
// (the day the send was counted) is lowered by one, never below zero, in the
// same transaction. A send is taken back at most once, and not at all once a
// later send was counted (counts may then stay above what was sent, never
// below). It reports whether it took the send back.
func (s *Store) UnsendOTPCode(ctx context.Context, userID, id string, seq int, reason string, caps []OTPSendCap, day string, now time.Time) (bool, error) {
	undone := false
	err := s.InTx(ctx, func(ctx context.Context) error {
		n, err := s.hotExec(ctx, unsendOTPCodeSQL, DeliveryFailed, reason, now, now, id, userID, seq) // hototp.go
		if err != nil || n == 0 {
			return err
		}
		for _, c := range caps {
			if _, err := s.hotExec(ctx, uncountSendSQL, now, c.Scope, c.Key, day); err != nil {
				return err
			}
		}
		undone = true
		return nil
	})
	return undone && err == nil, err
}

// RecordOTPDelivery records a delivery outcome of a code while it is queued,
// or over an outcome recorded earlier than at (a stale event does not undo a
// later one). It reports whether it wrote; updated_at is the store's wall clock
// (as gorm's builder stamped it: the event's time is delivery_at).
func (s *Store) RecordOTPDelivery(ctx context.Context, id, state, reason string, at time.Time) (bool, error) {
	n, err := s.hotExec(ctx, recordOTPDeliverySQL, state, reason, at.UTC(), s.wallNow(), id, DeliveryQueued, at.UTC()) // hototp.go
	return n == 1, err
}

// DeleteOTPCodesBefore removes codes that expired before t.
func (s *Store) DeleteOTPCodesBefore(ctx context.Context, t time.Time) (int64, error) {
	res := s.DB(ctx).Where("expires_at < ?", t).Delete(&OTPCode{})
	return res.RowsAffected, res.Error
}

// DeleteOTPSendCountersBefore removes the counters of days before t's.
func (s *Store) DeleteOTPSendCountersBefore(ctx context.Context, t time.Time) (int64, error) {
	res := s.DB(ctx).Where("day < ?", OTPDay(t)).Delete(&OTPSendCounter{})
	return res.RowsAffected, res.Error
}

// CreateOTPLinkToken stores a link token's hash.
func (s *Store) CreateOTPLinkToken(ctx context.Context, t *OTPLinkToken) error {
	return s.DB(ctx).Create(t).Error
}

// UseOTPLinkToken consumes an unused, unexpired link token by its hash and
// returns it; of concurrent callers exactly one gets it, the others ErrNotFound.
func (s *Store) UseOTPLinkToken(ctx context.Context, hash string, now time.Time) (*OTPLinkToken, error) {
	var t OTPLinkToken
	res := s.DB(ctx).Model(&t).Clauses(clause.Returning{}).
		Where("token_hash = ? AND used_at IS NULL AND expires_at > ?", hash, now).
		Update("used_at", now)
	if res.Error != nil {
		return nil, res.Error
	}
	if res.RowsAffected == 0 {
		return nil, ErrNotFound
	}
	return &t, nil
}

// DeleteOTPLinkTokensBefore removes link tokens that expired before t.
func (s *Store) DeleteOTPLinkTokensBefore(ctx context.Context, t time.Time) (int64, error) {
	res := s.DB(ctx).Where("expires_at < ?", t).Delete(&OTPLinkToken{})
	return res.RowsAffected, res.Error
}

// BindPendingFactor gives a pending factor of method its sealed secret and data
// and makes it active, in one conditional UPDATE: it reports false when the
// factor was not pending (already bound, or gone).
func (s *Store) BindPendingFactor(ctx context.Context, userID, id, method, keyID string, sealed, data []byte, now time.Time) (bool, error) {
	res := s.DB(ctx).Model(&Factor{}).
		Where("id = ? AND user_id = ? AND method = ? AND state = ?", id, userID, method, FactorPending).
		Updates(map[string]any{"sealed_secret": sealed, "secret_key_id": keyID, "data": data,
			"state": FactorActive, "expires_at": nil, "attempts": 0, "updated_at": now})
	return res.RowsAffected == 1, res.Error
}
