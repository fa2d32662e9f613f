package storage

import (
	"context"
	"strings"
	"time"
)

// Throttle subject kinds.
const (
	ThrottleUser = "user"
	ThrottleIP   = "ip"
)

// ThrottleState counts the recent failures of one subject (a user, or a client
// network) for every replica at once. Rows are keyed by Kind and Key.
type ThrottleState struct {
	Kind         string    `gorm:"primaryKey;size:8"`
	Key          string    `gorm:"column:subject_key;primaryKey;size:255"`
	Failures     int       `gorm:"not null;default:0"`
	FirstFailure time.Time `gorm:"not null"`
	LastFailure  time.Time `gorm:"not null;index"`
	// BlockedUntil is when the current delay or lock ends.
	BlockedUntil time.Time `gorm:"not null"`
	// Locked is set by a hard lock, which only BlockedUntil passing or an admin ends.
	Locked bool `gorm:"not null;default:false"`
}

// TableName keeps the table name plain.
func (ThrottleState) TableName() string { return "throttle_states" }

// GetThrottle loads a subject's state, or ErrNotFound when it has no failures.
func (s *Store) GetThrottle(ctx context.Context, kind, key string) (*ThrottleState, error) {
	var t ThrottleState
	if err := s.DB(ctx).Where("kind = ? AND subject_key = ?", kind, key).Take(&t).Error; err != nil {
		return nil, notFound(err)
	}
	return &t, nil
}

// ThrottleSubject names one throttled subject for GetThrottles.
type ThrottleSubject struct{ Kind, Key string }

// GetThrottles loads the states of several subjects in one query; subjects
// without failures are absent from the result.
func (s *Store) GetThrottles(ctx context.Context, subjects []ThrottleSubject) ([]ThrottleState, error) {
	if len(subjects) == 0 {
		return nil, nil
	}
	// Raw SQL scanned by hand: every attempt that is not cached runs this.
	var q strings.Builder
	q.WriteString("SELECT kind, subject_key, failures, first_failure, last_failure, blocked_until, locked FROM throttle_states WHERE ")
	args := make([]any, 0, 2*len(subjects))
	for i, sub := range subjects {
		if i > 0 {
			q.WriteString(" OR ")
		}
		q.WriteString("(kind = ? AND subject_key = ?)")
		args = append(args, sub.Kind, sub.Key)
	}
	rows, err := s.hotQuery(ctx, q.String(), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ThrottleState
	for rows.Next() {
		var t ThrottleState
		if err := rows.Scan(&t.Kind, &t.Key, &t.Failures, &t.FirstFailure, &t.LastFailure, &t.BlockedUntil, &t.Locked); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// ThrottleBlock decides, from a subject's failure count after one more failure,
// when it may try again and whether it is now hard-locked.
type ThrottleBlock func(failures int, now time.Time) (until time.Time, locked bool)

// RecordThrottleFailure counts one failure of a subject and applies block to the new
// count, in one transaction. The count is one atomic upsert, so replicas counting
// the same subject at once never lose a failure; the upsert also holds the row until
// the transaction ends, so the delay is computed from the count it produced. A count
// whose last failure is older than window (and not blocked any more) starts again at
// one. A delay never shortens one already in force. It returns the state written,
// and whether this failure started a hard lock (none was in force before).
func (s *Store) RecordThrottleFailure(ctx context.Context, kind, key string, now time.Time, window time.Duration, block ThrottleBlock) (_ *ThrottleState, newlyLocked bool, _ error) {
	now = now.UTC()
	cutoff := now.Add(-window)
	var out *ThrottleState
	err := s.InTx(ctx, func(ctx context.Context) error {
		t, err := queryOne(ctx, s, scanThrottleState, recordThrottleFailureSQL,
			kind, key, now, now, time.Time{}.UTC(), false, // a new subject's row
			cutoff, now, // failures
			cutoff, now, now, // first_failure
			cutoff, now, false, // locked
			now) // last_failure
		if err != nil {
			return err
		}
		until, locked := block(t.Failures, now)
		newlyLocked = locked && !(t.Locked && t.BlockedUntil.After(now))
		if locked || until.After(t.BlockedUntil) {
			if until.After(t.BlockedUntil) {
				t.BlockedUntil = until.UTC()
			}
			t.Locked = t.Locked || locked
			if _, err := s.hotExec(ctx, blockThrottleSQL, t.BlockedUntil, t.Locked, kind, key); err != nil {
				return err
			}
		}
		out = t
		return nil
	})
	return out, newlyLocked, err
}

// ResetThrottle forgets a subject's failures and lock (a success, or an admin
// clearing it). It reports whether there was anything to forget.
func (s *Store) ResetThrottle(ctx context.Context, kind, key string) (bool, error) {
	// Prepared (hot.go): every accepted login with a count, and every login by a
	// high-entropy factor (backup and admin codes), runs it.
	n, err := s.hotExec(ctx, "DELETE FROM throttle_states WHERE kind = ? AND subject_key = ?", kind, key)
	return n > 0, err
}

// DeleteThrottlesBefore removes the states whose last failure is before t and
// whose delay or lock has ended by then.
func (s *Store) DeleteThrottlesBefore(ctx context.Context, t time.Time) (int64, error) {
	t = t.UTC()
	res := s.DB(ctx).Where("last_failure < ? AND blocked_until < ?", t, t).Delete(&ThrottleState{})
	return res.RowsAffected, res.Error
}

// scanThrottleState reads a row of throttleStateCols (queryOne's scan).
func scanThrottleState(r hotRow) (ThrottleState, error) {
	var t ThrottleState
	err := r.Scan(&t.Kind, &t.Key, &t.Failures, &t.FirstFailure, &t.LastFailure, &t.BlockedUntil, &t.Locked)
	return t, err
}
