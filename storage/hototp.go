package storage

import (
	"context"
	"database/sql"
	"strings"
	"time"
)

// The statements one code login (email, SMS, Telegram, Signal) runs, as prepared
// hot-path SQL (hot.go) instead of gorm's builder, which was most of their cost
// (docs/PERFORMANCE.md, fourth round): the send's counts and the code's INSERT
// (CreateOTPCode), its read (GetOTPCode), the counted attempt (AttemptOTPCode),
// the consumption (ConsumeOTPCode), a spent code's failure (FailOTPCodeIfSpent)
// and the delivery outcome (RecordOTPDelivery). Each is the statement gorm built,
// with the same conditions, in the same transaction. hototp_test.go compares
// otpCodeCols with the model and reads the rows back against gorm's.

// otpCodeCols are all of OTPCode's columns, in model order.
var otpCodeCols = []string{"id", "user_id", "factor_id", "channel", "purpose", "state", "code_hash",
	"sealed_code", "code_key_id", "attempts", "max_attempts", "sends", "last_sent_at", "next_send_at",
	"delivery", "delivery_reason", "delivery_at", "expires_at", "created_at", "updated_at"}

// insertOTPCodeSQL writes a whole code row.
var insertOTPCodeSQL = `INSERT INTO otp_codes (` + prefixed("", otpCodeCols) + `) VALUES (?` + strings.Repeat(", ?", len(otpCodeCols)-1) + `)`

// getOTPCodeSQL reads a user's code row.
var getOTPCodeSQL = `SELECT ` + prefixed("", otpCodeCols) + ` FROM otp_codes WHERE id = ? AND user_id = ?`

// attemptOTPCodeSQL counts one attempt on an open, unexpired code with attempts
// left and returns the row as the count left it.
var attemptOTPCodeSQL = `UPDATE otp_codes SET attempts = attempts + 1, updated_at = ?
 WHERE id = ? AND user_id = ? AND state = ? AND expires_at > ? AND attempts < max_attempts
 RETURNING ` + prefixed("", otpCodeCols)

// consumeOTPCodeSQL marks an open, unexpired code used.
const consumeOTPCodeSQL = `UPDATE otp_codes SET state = ?, updated_at = ? WHERE id = ? AND state = ? AND expires_at > ?`

// failOTPCodeIfSpentSQL marks an open code whose attempts are all used failed.
const failOTPCodeIfSpentSQL = `UPDATE otp_codes SET state = ?, updated_at = ? WHERE id = ? AND state = ? AND attempts >= max_attempts`

// recordOTPDeliverySQL records a delivery outcome over a queued delivery or an
// older outcome.
const recordOTPDeliverySQL = `UPDATE otp_codes SET delivery = ?, delivery_reason = ?, delivery_at = ?, updated_at = ?
 WHERE id = ? AND (delivery = ? OR delivery_at <= ?)`

// countSendSQL adds one send to a subject's counter of a day, unless it is at
// its limit (then no row is returned).
const countSendSQL = `INSERT INTO otp_send_counters (scope, subject_key, day, sends, updated_at)
 VALUES (?, ?, ?, 1, ?)
 ON CONFLICT (scope, subject_key, day) DO UPDATE SET sends = otp_send_counters.sends + 1, updated_at = excluded.updated_at
 WHERE otp_send_counters.sends < ?
 RETURNING sends`

// unsendOTPCodeSQL takes back a code's last send, if it is send number seq.
const unsendOTPCodeSQL = `UPDATE otp_codes SET sends = sends - 1, delivery = ?, delivery_reason = ?, delivery_at = ?, updated_at = ?
 WHERE id = ? AND user_id = ? AND sends = ? AND sends > 0`

// uncountSendSQL takes one send back from a subject's counter of a day, never below zero.
const uncountSendSQL = `UPDATE otp_send_counters SET sends = sends - 1, updated_at = ?
 WHERE scope = ? AND subject_key = ? AND day = ? AND sends > 0`

// insertOTPCode writes c as gorm's Create does: a zero CreatedAt or UpdatedAt
// is gorm's now (UTC), set on c.
func (s *Store) insertOTPCode(ctx context.Context, c *OTPCode) error {
	if c.CreatedAt.IsZero() || c.UpdatedAt.IsZero() {
		now := s.db.NowFunc()
		if c.CreatedAt.IsZero() {
			c.CreatedAt = now
		}
		if c.UpdatedAt.IsZero() {
			c.UpdatedAt = now
		}
	}
	_, err := s.hotExec(ctx, insertOTPCodeSQL, c.ID, c.UserID, c.FactorID, c.Channel, c.Purpose, c.State,
		c.CodeHash, c.SealedCode, c.CodeKeyID, c.Attempts, c.MaxAttempts, c.Sends, c.LastSentAt, c.NextSendAt,
		c.Delivery, c.DeliveryReason, c.DeliveryAt, c.ExpiresAt, c.CreatedAt, c.UpdatedAt)
	return err
}

// scanOTPCode reads a row of otpCodeCols (queryOne's scan).
func scanOTPCode(r hotRow) (OTPCode, error) {
	var (
		c                OTPCode
		reason           sql.NullString
		created, updated sql.NullTime
	)
	err := r.Scan(&c.ID, &c.UserID, &c.FactorID, &c.Channel, &c.Purpose, &c.State, &c.CodeHash,
		&c.SealedCode, &c.CodeKeyID, &c.Attempts, &c.MaxAttempts, &c.Sends, &c.LastSentAt, &c.NextSendAt,
		&c.Delivery, &reason, &c.DeliveryAt, &c.ExpiresAt, &created, &updated)
	c.DeliveryReason, c.CreatedAt, c.UpdatedAt = reason.String, created.Time, updated.Time
	return c, err
}

// wallNow is the time gorm's builder stamps an updated_at it is not given
// (store.go's NowFunc).
func (s *Store) wallNow() time.Time { return s.db.NowFunc() }
