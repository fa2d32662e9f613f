package storage

import (
	"context"
	"database/sql"
	"strings"
	"time"
)

// The statements a push login runs (BeginChallenge, the device's
// ListPendingPushes and RespondPush, VerifyChallenge), on the prepared hot path
// of hot.go rather than gorm's builder, which was 40 % of a push login's CPU
// (docs/PERFORMANCE.md, "push-login on the hot path"). Each names its columns
// from the lists below; hotsql_test.go compares them with the GORM models.

// pushDeviceCols are all of PushDevice's columns, in model order.
var pushDeviceCols = []string{"id", "user_id", "name", "platform", "public_key", "state", "endpoint_kind",
	"sealed_endpoint", "endpoint_key_id", "created_at", "last_seen_at", "revoked_at", "endpoint_retired_at"}

// pushChallengeCols are all of PushChallenge's columns, in model order.
var pushChallengeCols = []string{"id", "user_id", "state", "number_mode", "number_hash", "sealed_context",
	"context_key_id", "expires_at", "decision", "device_id", "answered_at", "redeemed_at", "created_at"}

// pushLimitCols are all of PushLimit's columns, in model order.
var pushLimitCols = []string{"user_id", "version", "pending_id", "pending_until", "level", "next_allowed_at",
	"day", "day_count", "locked"}

// pushNonceCols are all of PushNonce's columns.
var pushNonceCols = []string{"device_id", "nonce", "expires_at"}

// pendingPushCols are what ListPendingPushHeads reads: a device is told which
// pushes wait and until when, nothing of their context.
var (
	pendingPushCols    = []string{"id", "expires_at"}
	pendingPushOmitted = []string{"user_id", "state", "number_mode", "number_hash", "sealed_context",
		"context_key_id", "decision", "device_id", "answered_at", "redeemed_at", "created_at"}
)

func placeholders(n int) string { return "?" + strings.Repeat(", ?", n-1) }

// activeDeviceSQL is activeDevice (push.go) for the hot statements.
const activeDeviceSQL = `push_devices.state = ? AND EXISTS (SELECT 1 FROM factors WHERE factors.id = push_devices.id AND factors.state = ?)`

var (
	activePushDeviceSQL  = `SELECT ` + prefixed("", pushDeviceCols) + ` FROM push_devices WHERE id = ? AND ` + activeDeviceSQL
	activePushDevicesSQL = `SELECT ` + prefixed("", pushDeviceCols) + ` FROM push_devices WHERE user_id = ? AND ` + activeDeviceSQL +
		` ORDER BY created_at, id`
	rememberPushNonceSQL = `INSERT INTO push_nonces (` + prefixed("", pushNonceCols) + `) VALUES (` +
		placeholders(len(pushNonceCols)) + `) ON CONFLICT DO NOTHING`
	createPushChallengeSQL = `INSERT INTO push_challenges (` + prefixed("", pushChallengeCols) + `) VALUES (` +
		placeholders(len(pushChallengeCols)) + `)`
	getPushChallengeSQL    = `SELECT ` + prefixed("", pushChallengeCols) + ` FROM push_challenges WHERE id = ?`
	pendingPushHeadsSQL    = `SELECT ` + prefixed("", pendingPushCols) + ` FROM push_challenges WHERE user_id = ? AND state = ? AND expires_at > ? ORDER BY created_at DESC, id LIMIT ?`
	getPushLimitSQL        = `SELECT ` + prefixed("", pushLimitCols) + ` FROM push_limits WHERE user_id = ?`
	createPushLimitSQL     = `INSERT INTO push_limits (` + prefixed("", pushLimitCols) + `) VALUES (` + placeholders(len(pushLimitCols)) + `) ON CONFLICT DO NOTHING`
	createChallengeSQL     = `INSERT INTO challenges (` + prefixed("", challengeCols) + `) VALUES (` + placeholders(len(challengeCols)) + `)`
	answerPushChallengeSQL = `UPDATE push_challenges SET state = ?, decision = ?, device_id = ?, answered_at = ? WHERE id = ? AND user_id = ? AND state = ? AND expires_at > ?`
	closeApprovedPushSQL   = `UPDATE push_challenges SET state = ?, redeemed_at = ? WHERE id = ? AND state = ? AND expires_at > ?`
	closePushSQL           = `UPDATE push_challenges SET state = ?, redeemed_at = ? WHERE id = ? AND state = ?`
	withdrawPushSQL        = `UPDATE push_challenges SET state = ?, redeemed_at = ? WHERE id = ? AND user_id = ? AND state = ?`
	redeemUsersPushSQL     = `UPDATE push_challenges SET state = ?, redeemed_at = ? WHERE id = ? AND user_id = ? AND state = ? AND expires_at > ?`
	casPushLimitSQL        = `UPDATE push_limits SET version = ?, pending_id = ?, pending_until = ?, level = ?, next_allowed_at = ?, day = ?, day_count = ?, locked = ? WHERE user_id = ? AND version = ?`
)

func timePtr(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	v := t.Time
	return &v
}

// nullTimeArg is p as a statement argument (NULL for nil).
func nullTimeArg(p *time.Time) any {
	if p == nil {
		return nil
	}
	return *p
}

func scanPushDevice(r hotRow) (PushDevice, error) {
	var d PushDevice
	var keyID sql.NullString
	var created, seen, revoked, retired sql.NullTime
	err := r.Scan(&d.ID, &d.UserID, &d.Name, &d.Platform, &d.PublicKey, &d.State, &d.EndpointKind,
		&d.SealedEndpoint, &keyID, &created, &seen, &revoked, &retired)
	d.EndpointKeyID, d.CreatedAt = keyID.String, created.Time
	d.LastSeenAt, d.RevokedAt, d.EndpointRetiredAt = timePtr(seen), timePtr(revoked), timePtr(retired)
	return d, err
}

func scanPushChallenge(r hotRow) (PushChallenge, error) {
	var c PushChallenge
	var keyID, decision, device sql.NullString
	var answered, redeemed, created sql.NullTime
	err := r.Scan(&c.ID, &c.UserID, &c.State, &c.NumberMode, &c.NumberHash, &c.SealedContext, &keyID,
		&c.ExpiresAt, &decision, &device, &answered, &redeemed, &created)
	c.ContextKeyID, c.Decision, c.DeviceID = keyID.String, decision.String, device.String
	c.AnsweredAt, c.RedeemedAt, c.CreatedAt = timePtr(answered), timePtr(redeemed), created.Time
	return c, err
}

func scanPushLimit(r hotRow) (PushLimit, error) {
	var l PushLimit
	var pendingUntil, nextAllowed sql.NullTime
	err := r.Scan(&l.UserID, &l.Version, &l.PendingID, &pendingUntil, &l.Level, &nextAllowed, &l.Day, &l.DayCount, &l.Locked)
	l.PendingUntil, l.NextAllowedAt = pendingUntil.Time, nextAllowed.Time
	return l, err
}

// GetActivePushDevice loads a usable device by id; ErrNotFound otherwise. Every
// device request runs it.
func (s *Store) GetActivePushDevice(ctx context.Context, id string) (*PushDevice, error) {
	return queryOne(ctx, s, scanPushDevice, activePushDeviceSQL, id, PushDeviceActive, FactorActive)
}

// ListPushDevices lists a user's devices, oldest first; only usable ones when
// activeOnly (a push login's begin: on the hot path).
func (s *Store) ListPushDevices(ctx context.Context, userID string, activeOnly bool) ([]PushDevice, error) {
	if !activeOnly {
		var out []PushDevice
		err := s.DB(ctx).Where("user_id = ?", userID).Order("created_at, id").Find(&out).Error
		return out, err
	}
	rows, err := s.hotQuery(ctx, activePushDevicesSQL, userID, PushDeviceActive, FactorActive)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []PushDevice
	for rows.Next() {
		d, err := scanPushDevice(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// RememberPushNonce records a device's nonce until expiresAt. It reports false
// when the device already used it: of concurrent callers with one nonce exactly
// one sees true (the primary key decides).
func (s *Store) RememberPushNonce(ctx context.Context, deviceID string, nonce []byte, expiresAt time.Time) (bool, error) {
	n, err := s.hotExec(ctx, rememberPushNonceSQL, deviceID, nonce, expiresAt)
	return n == 1, err
}

// CreatePushChallenge inserts a push challenge (CreatedAt now if unset, as gorm's Create).
func (s *Store) CreatePushChallenge(ctx context.Context, c *PushChallenge) error {
	if c.CreatedAt.IsZero() {
		c.CreatedAt = s.wallNow()
	}
	_, err := s.hotExec(ctx, createPushChallengeSQL, c.ID, c.UserID, c.State, c.NumberMode, c.NumberHash,
		c.SealedContext, c.ContextKeyID, c.ExpiresAt, c.Decision, c.DeviceID, nullTimeArg(c.AnsweredAt),
		nullTimeArg(c.RedeemedAt), c.CreatedAt)
	return err
}

// GetPushChallenge loads a push challenge by id.
func (s *Store) GetPushChallenge(ctx context.Context, id string) (*PushChallenge, error) {
	return queryOne(ctx, s, scanPushChallenge, getPushChallengeSQL, id)
}

// PushHead is a pending push as a device's listing names it.
type PushHead struct {
	ID        string
	ExpiresAt time.Time
}

// ListPendingPushHeads lists a user's pending, unexpired challenges, newest
// first, at most limit: their ids and expiries only.
func (s *Store) ListPendingPushHeads(ctx context.Context, userID string, now time.Time, limit int) ([]PushHead, error) {
	rows, err := s.hotQuery(ctx, pendingPushHeadsSQL, userID, PushPending, now, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []PushHead
	for rows.Next() {
		var h PushHead
		if err := rows.Scan(&h.ID, &h.ExpiresAt); err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// AnswerPushChallenge moves a pending, unexpired challenge of userID to state
// (approved or denied) with the device's decision. Of concurrent answers exactly
// one sees true.
func (s *Store) AnswerPushChallenge(ctx context.Context, id, userID, state, decision, deviceID string, now time.Time) (bool, error) {
	n, err := s.hotExec(ctx, answerPushChallengeSQL, state, decision, deviceID, now, id, userID, PushPending, now)
	return n == 1, err
}

// RedeemPushChallenge moves an approved, unexpired challenge to redeemed. Of
// concurrent callers exactly one sees true.
func (s *Store) RedeemPushChallenge(ctx context.Context, id string, now time.Time) (bool, error) {
	return s.ClosePushChallenge(ctx, id, PushApproved, now)
}

// RedeemUsersPushChallenge is RedeemPushChallenge only for a challenge of
// userID: one statement where a read of the challenge would otherwise come
// first. Of concurrent callers exactly one sees true; false says nothing of why.
func (s *Store) RedeemUsersPushChallenge(ctx context.Context, id, userID string, now time.Time) (bool, error) {
	n, err := s.hotExec(ctx, redeemUsersPushSQL, PushRedeemed, now, id, userID, PushApproved, now)
	return n == 1, err
}

// ClosePushChallenge moves a challenge from state from (approved, or denied) to
// redeemed, an approval only while unexpired: the answer is reported once. Of
// concurrent callers exactly one sees true.
func (s *Store) ClosePushChallenge(ctx context.Context, id, from string, now time.Time) (bool, error) {
	var n int64
	var err error
	if from == PushApproved {
		n, err = s.hotExec(ctx, closeApprovedPushSQL, PushRedeemed, now, id, from, now)
	} else {
		n, err = s.hotExec(ctx, closePushSQL, PushRedeemed, now, id, from)
	}
	return n == 1, err
}

// WithdrawPushChallenge moves userID's pending challenge id to withdrawn, as
// when its push request was never published. Of concurrent callers (and a
// device's concurrent answer) exactly one wins; true: this caller withdrew it.
func (s *Store) WithdrawPushChallenge(ctx context.Context, id, userID string, now time.Time) (bool, error) {
	n, err := s.hotExec(ctx, withdrawPushSQL, PushWithdrawn, now, id, userID, PushPending)
	return n == 1, err
}

// GetPushLimit loads a user's push limit state, creating its zero row first if
// there is none (concurrent creators agree: the insert does nothing on conflict).
func (s *Store) GetPushLimit(ctx context.Context, userID string) (*PushLimit, error) {
	l, err := queryOne(ctx, s, scanPushLimit, getPushLimitSQL, userID)
	if err != ErrNotFound {
		return l, err
	}
	var zero time.Time
	if _, err := s.hotExec(ctx, createPushLimitSQL, userID, 0, "", zero, 0, zero, "", 0, false); err != nil {
		return nil, err
	}
	return queryOne(ctx, s, scanPushLimit, getPushLimitSQL, userID)
}

// CompareAndSwapPushLimit writes next only if the row is still at next.Version-1
// (the version its caller read, plus one). It reports whether it wrote: of
// concurrent writers from one version exactly one does, on any number of replicas.
func (s *Store) CompareAndSwapPushLimit(ctx context.Context, next *PushLimit) (bool, error) {
	n, err := s.hotExec(ctx, casPushLimitSQL, next.Version, next.PendingID, next.PendingUntil, next.Level,
		next.NextAllowedAt, next.Day, next.DayCount, next.Locked, next.UserID, next.Version-1)
	return n == 1, err
}

// createChallenge inserts a stored login challenge (a push login's, whose
// session names its push challenge); CreatedAt and UpdatedAt now if unset, as
// gorm's Create.
func (s *Store) createChallenge(ctx context.Context, c *Challenge) error {
	now := s.wallNow()
	if c.CreatedAt.IsZero() {
		c.CreatedAt = now
	}
	if c.UpdatedAt.IsZero() {
		c.UpdatedAt = now
	}
	_, err := s.hotExec(ctx, createChallengeSQL, c.ID, c.UserID, c.FactorID, c.Method, c.State, c.Session,
		c.Attempts, c.MaxAttempts, c.ExpiresAt, c.ClientIP, c.CreatedAt, c.UpdatedAt)
	return err
}
