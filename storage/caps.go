package storage

import (
	"context"
	"fmt"
)

// CapError refuses an insert that would take a user beyond a per-user cap:
// What names what is capped ("app passwords", "totp factors (active or being
// enrolled)", "push enrollments waiting"), Have is how many the user has and
// Limit the most allowed. Its message names neither the user nor a secret.
type CapError struct {
	What  string
	Limit int
	Have  int64
}

func (e *CapError) Error() string {
	return fmt.Sprintf("the user has %d %s, the most allowed is %d", e.Have, e.What, e.Limit)
}

// holding runs fn in one transaction (the caller's, when ctx is in one) that
// holds lockKey first (LockAttempt), so two such transactions with the same key,
// on any replica, run one after the other from the hold on. Inside a caller's
// transaction it must run before any read that transaction depends on
// (LockAttempt's rule).
func (s *Store) holding(ctx context.Context, lockKey string, fn func(ctx context.Context) error) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		if err := s.LockAttempt(ctx, []string{lockKey}); err != nil {
			return err
		}
		return fn(ctx)
	})
}

// insertWithin runs insert unless count, read after the hold on lockKey, is
// already limit or more (*CapError naming what). The hold, the count and the
// insert are one transaction (holding), so inserts under one key at the same
// instant, on any replica, count one after the other and never pass the cap.
func (s *Store) insertWithin(ctx context.Context, lockKey, what string, limit int,
	count func(ctx context.Context) (int64, error), insert func(ctx context.Context) error) error {
	return s.holding(ctx, lockKey, func(ctx context.Context) error {
		n, err := count(ctx)
		if err != nil {
			return err
		}
		if n >= int64(limit) {
			return &CapError{What: what, Limit: limit, Have: n}
		}
		return insert(ctx)
	})
}
