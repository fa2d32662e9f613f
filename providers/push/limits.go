package push

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twofactor/twofactor/storage"
)

// Reasons of a LimitError.
const (
	LimitPending  = "pending"   // another push of the user is waiting for an answer
	LimitBackoff  = "backoff"   // a push was denied or unanswered recently
	LimitDailyCap = "daily_cap" // the user's pushes of the day are used up
	LimitLocked   = "locked"    // "this was not me" locked the method
)

// LimitError refuses a push: push-bombing protection (OWASP ASVS 5.0 6.6.4).
type LimitError struct {
	Reason string
	// RetryAfter is how long until a push may be begun (0 when locked).
	RetryAfter time.Duration
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("push: refused (%s), retry after %s", e.Reason, e.RetryAfter.Round(time.Second))
}

// casAttempts bounds the compare-and-set retries of one limit change. Each retry
// follows another writer's success, so running out means heavy contention.
const casAttempts = 32

// updateLimit applies change to the user's limit state by compare-and-set until
// it wins. change returns whether to write; its error is returned after the write
// (so a refusal can still record the state it found, e.g. an unanswered push).
func (s *Service) updateLimit(ctx context.Context, userID string, change func(l *storage.PushLimit) (bool, error)) error {
	for range casAttempts {
		l, err := s.store.GetPushLimit(ctx, userID)
		if err != nil {
			return err
		}
		write, cerr := change(l)
		if !write {
			return cerr
		}
		l.Version++
		ok, err := s.store.CompareAndSwapPushLimit(ctx, l)
		if err != nil {
			return err
		}
		if ok {
			return cerr
		}
	}
	return errors.New("push: limit state too contended")
}

// backoff is the wait after level denied or unanswered pushes in a row.
func (s *Service) backoff(level int) time.Duration {
	d := s.cfg.BackoffBase
	for i := 1; i < level && d < s.cfg.BackoffMax; i++ {
		d *= 2
	}
	return min(d, s.cfg.BackoffMax)
}

// reserve makes challengeID the user's one pending push, or refuses with a
// LimitError. An expired pending push counts as unanswered first.
func (s *Service) reserve(l *storage.PushLimit, challengeID string, now, until time.Time) (bool, error) {
	changed := false
	if l.PendingID != "" && !l.PendingUntil.After(now) { // unanswered
		l.Level++
		l.NextAllowedAt = l.PendingUntil.Add(s.backoff(l.Level))
		l.PendingID, changed = "", true
	}
	day := now.Format(time.DateOnly)
	switch {
	case l.Locked:
		return changed, &LimitError{Reason: LimitLocked}
	case l.PendingID != "":
		return changed, &LimitError{Reason: LimitPending, RetryAfter: l.PendingUntil.Sub(now)}
	case l.NextAllowedAt.After(now):
		return changed, &LimitError{Reason: LimitBackoff, RetryAfter: l.NextAllowedAt.Sub(now)}
	case l.Day == day && l.DayCount >= s.cfg.DailyCap:
		tomorrow, _ := time.Parse(time.DateOnly, day)
		return changed, &LimitError{Reason: LimitDailyCap, RetryAfter: tomorrow.AddDate(0, 0, 1).Sub(now)}
	}
	if l.Day != day {
		l.Day, l.DayCount = day, 0
	}
	l.DayCount++
	l.PendingID, l.PendingUntil = challengeID, until
	return true, nil
}

// Withdraw takes back a push whose request could not be published (no device
// was told of it), as if it had never been begun: the challenge is withdrawn
// (devices polling no longer see it, a verify finds it expired), it stops being
// the user's pending push, and it no longer counts toward the day's cap; the
// backoff is left as it was (an unpublished push is no unanswered one). The
// challenge moves from pending to withdrawn by one conditional UPDATE, in the
// same transaction as the limit's compare-and-set: of concurrent withdrawals
// (or a device that answered meanwhile, having polled) one wins, so a push is
// taken back at most once and the day's count never drops below the pushes
// really begun. It reports whether it withdrew the push.
func (s *Service) Withdraw(ctx context.Context, userID, challengeID string) (bool, error) {
	c, err := s.challengeOf(ctx, userID, challengeID)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	now := s.now()
	withdrawn := false
	err = s.store.InTx(ctx, func(ctx context.Context) error {
		ok, err := s.store.WithdrawPushChallenge(ctx, c.ID, userID, now)
		if err != nil || !ok {
			return err
		}
		withdrawn = true
		day := c.CreatedAt.UTC().Format(time.DateOnly)
		return s.updateLimit(ctx, userID, func(l *storage.PushLimit) (bool, error) {
			write := false
			if l.PendingID == c.ID {
				l.PendingID, l.PendingUntil, write = "", time.Time{}, true
			}
			if l.Day == day && l.DayCount > 0 {
				l.DayCount, write = l.DayCount-1, true
			}
			return write, nil
		})
	})
	return withdrawn && err == nil, err
}

// settle records the answer to challengeID: an approval resets the backoff, a
// refusal (deny, not me, wrong number) raises it and, for "not me" when
// configured, locks the method.
func (s *Service) settle(l *storage.PushLimit, challengeID string, approved, lock bool, now time.Time) {
	if l.PendingID == challengeID {
		l.PendingID = ""
	}
	if approved {
		l.Level, l.NextAllowedAt = 0, time.Time{}
		return
	}
	l.Level++
	l.NextAllowedAt = now.Add(s.backoff(l.Level))
	if lock {
		l.Locked = true
	}
}

// Unlock lifts a "this was not me" lock, as the caller does when the user signed
// in with another factor. One conditional UPDATE; nothing is written without a lock.
func (s *Service) Unlock(ctx context.Context, userID string) error {
	_, err := s.store.UnlockPushLimit(ctx, userID)
	return err
}
