package storage

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
)

// An attempt at a guessable secret is counted before it is evaluated: the
// throttle holds its subjects (and, e.g., the challenge it answers) from before
// it reads their counts until its failure is committed, so of any number of
// concurrent attempts on any number of replicas each one reads the counts every
// earlier one left, and a count over the limit refuses the attempt before the
// secret is looked at. Holding is LockAttempt; the counts are read with
// GetAttemptStates in the same transaction.

// maxAttemptKeys bounds the keys one attempt may hold.
const maxAttemptKeys = 8

// ErrNotInTx is returned by LockAttempt outside InTx: a hold ends with its
// transaction, and there is none.
var ErrNotInTx = errors.New("storage: an attempt lock needs a transaction (InTx)")

// LockAttempt holds keys until the transaction of ctx ends: an attempt holding a
// key waits for every other transaction holding it, on every replica.
// PostgreSQL takes transaction-scoped advisory locks (pg_advisory_xact_lock, on
// the first 8 bytes of the key's SHA-256; two keys that collide only serialize
// more than needed), all in one statement and in ascending order, so two
// attempts sharing keys cannot deadlock. SQLite's transactions (BEGIN
// IMMEDIATE, on the one writer connection) already run one at a time, so
// nothing more is taken there. It must run before any read the attempt depends
// on: on PostgreSQL every later statement of the transaction sees what the
// previous holders committed.
func (s *Store) LockAttempt(ctx context.Context, keys []string) error {
	if _, ok := ctx.Value(txKey{}).(*gorm.DB); !ok {
		return ErrNotInTx
	}
	if len(keys) == 0 || s.dialect != Postgres {
		return nil
	}
	if len(keys) > maxAttemptKeys {
		return errors.New("storage: too many attempt keys")
	}
	q, args := lockAttemptSQL(keys)
	_, err := s.hotExec(ctx, q, args...) // one prepared statement per number of keys
	return err
}

// lockAttemptSQL is the one statement that takes keys' advisory locks.
func lockAttemptSQL(keys []string) (string, []any) {
	ids := make([]int64, 0, len(keys))
	for _, k := range keys {
		h := sha256.Sum256([]byte(k))
		ids = append(ids, int64(binary.BigEndian.Uint64(h[:8])))
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	var q strings.Builder
	q.WriteString("SELECT ")
	args := make([]any, len(ids))
	for i, id := range ids {
		if i > 0 {
			q.WriteString(", ")
		}
		// One call per column: PostgreSQL evaluates a target list from left
		// to right, so the locks are taken in ascending order.
		q.WriteString("pg_advisory_xact_lock(?)")
		args[i] = id
	}
	return q.String(), args
}

// GetAttemptStates loads, in one query, the throttle states of subjects (those
// without failures are absent) and when network was last seen as a familiar
// network of user (FamiliarNetwork, unexpired at now; zero when it is not
// familiar, or either is empty).
func (s *Store) GetAttemptStates(ctx context.Context, subjects []ThrottleSubject, user, network string, now time.Time) (_ []ThrottleState, familiarSeen time.Time, _ error) {
	q, args := attemptStatesSQL(subjects, user, network, now)
	if q == "" {
		return nil, time.Time{}, nil
	}
	rows, err := s.hotQuery(ctx, q, args...)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer rows.Close()
	return scanAttemptStates(rows)
}

// attemptStatesSQL is GetAttemptStates' query ("" when there is nothing to read).
func attemptStatesSQL(subjects []ThrottleSubject, user, network string, now time.Time) (string, []any) {
	withFamiliar := user != "" && network != ""
	if len(subjects) == 0 && !withFamiliar {
		return "", nil
	}
	var q strings.Builder
	args := make([]any, 0, 2*len(subjects)+3)
	if len(subjects) > 0 {
		q.WriteString("SELECT kind, subject_key, failures, first_failure, last_failure, blocked_until, locked FROM throttle_states WHERE ")
		for i, sub := range subjects {
			if i > 0 {
				q.WriteString(" OR ")
			}
			q.WriteString("(kind = ? AND subject_key = ?)")
			args = append(args, sub.Kind, sub.Key)
		}
	}
	if withFamiliar {
		if len(subjects) > 0 {
			q.WriteString(" UNION ALL ")
		}
		// The familiar row in the throttle row's shape, told apart by its kind
		// (a throttle kind is never "~").
		q.WriteString("SELECT '~', network, 0, first_seen, last_seen, expires_at, 1 = 0 FROM familiar_networks WHERE user_id = ? AND network = ? AND expires_at > ?")
		args = append(args, user, network, now.UTC())
	}
	return q.String(), args
}

// rowScanner is what scanAttemptStates reads: database/sql's rows or pgx's.
type rowScanner interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// scanAttemptStates reads attemptStatesSQL's rows.
func scanAttemptStates(rows rowScanner) (_ []ThrottleState, familiarSeen time.Time, _ error) {
	var out []ThrottleState
	for rows.Next() {
		var t ThrottleState
		if err := rows.Scan(&t.Kind, &t.Key, &t.Failures, &t.FirstFailure, &t.LastFailure, &t.BlockedUntil, &t.Locked); err != nil {
			return nil, time.Time{}, err
		}
		if t.Kind == "~" {
			familiarSeen = t.LastFailure // last_seen, in the throttle row's shape
			continue
		}
		out = append(out, t)
	}
	return out, familiarSeen, rows.Err()
}
