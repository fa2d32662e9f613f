package throttle

import (
	"context"
	"errors"
	"time"

	"github.com/twofactor/twofactor/storage"
)

// Verdict is what evaluating an attempt found.
type Verdict int

const (
	// Rejected: a wrong answer, counted as a failure of every subject.
	Rejected Verdict = iota + 1
	// Accepted: a right answer; the user's count that applied is reset and the
	// network becomes (or stays) familiar to the user.
	Accepted
	// NotEvaluated: the secret was not looked at after all (the challenge was
	// used up, or the answer is not a guess at it, such as a malformed one);
	// nothing is counted.
	NotEvaluated
)

// Result is what Guard did.
type Result struct {
	// Decision holds the counts read before evaluating; when it is Blocked the
	// attempt was refused and eval did not run.
	Decision
	// Verdict is eval's (0 when refused).
	Verdict Verdict
	// Familiar: the network was familiar to the user when the attempt began.
	Familiar bool
	// Outcome is a rejection's: the wait it caused, the locks it started, and
	// the subjects to announce to the other replicas (Outcome.Recorded).
	Outcome
}

// maxHold bounds Subjects.Hold.
const maxHold = 4

// Guard runs eval as one attempt by s, counted before it is evaluated. In one
// transaction of the shared store it holds the attempt's subjects and s.Hold
// (storage.LockAttempt: every attempt naming one of them, on any replica, waits
// for this one to commit), reads their counts (never from the clean cache: a
// count another replica wrote is not missed), refuses the attempt without
// calling eval when a delay ("not before", the row's blocked_until) or a lock is
// in force, and otherwise calls eval with the transaction's ctx. A rejection is
// counted in the same transaction, so the attempt and its count commit together:
// of any number of concurrent attempts each one reads the count of every
// earlier one, and the answer of an attempt is released only with its count.
//
// Bounds, for subjects with no failures and one instant (the clock not moving):
// at most DelayAfter+1 attempts are evaluated (the next failure's delay starts
// at the one after the free ones), and over time at most LockAfter before the
// lock, then one per LockDuration; with IPDelayAfter 3 and UserDelayAfter 10, a
// burst from one network evaluates 4, from many networks 11.
//
// eval runs in the transaction: its store calls with the ctx it is given join
// it (e.g. a challenge's attempt count, or the single use of a code), and an
// error from it rolls everything back (nothing counted, nothing spent). eval
// must not begin work on another connection that waits for this transaction.
func (t *Throttler) Guard(ctx context.Context, s Subjects, eval func(ctx context.Context) (Verdict, error)) (Result, error) {
	if len(s.Hold) > maxHold {
		return Result{}, errors.New("throttle: too many keys to hold")
	}
	now := t.now().UTC()
	var res Result
	user, network := t.familiarKey(s)
	err := t.store.InAttempt(ctx, t.holdKeys(s), storeSubjects(t.candidates(s)), user, network, now,
		func(ctx context.Context, rows []storage.ThrottleState, seen time.Time) error {
			res = Result{}
			res.Decision, _ = t.decide(s, rows, seen, now)
			res.Familiar = !seen.IsZero()
			if res.Blocked {
				return nil
			}
			var err error
			if res.Verdict, err = eval(ctx); err != nil {
				return err
			}
			return t.settle(ctx, s, &res, seen, now)
		})
	if res.Verdict == Rejected || err != nil {
		// The subjects may have counts now, on this replica at once; Checks
		// reading meanwhile do not remember what they read.
		for _, sub := range t.candidates(s) {
			t.Invalidate(sub)
		}
	}
	if err != nil {
		return Result{}, err
	}
	return res, nil
}

// settle counts res's verdict in the Guard's transaction.
func (t *Throttler) settle(ctx context.Context, s Subjects, res *Result, seen, now time.Time) error {
	var err error
	switch res.Verdict {
	case Accepted:
		return t.accepted(ctx, s, res.Decision, seen, now)
	case Rejected:
		res.Outcome, err = t.record(ctx, t.counted(s, res.Familiar), now)
		return err
	case NotEvaluated:
		return nil
	}
	return errors.New("throttle: eval returned no verdict")
}

// holdKeys names what a Guard holds: the user (both of its counts), the login,
// the network, and s.Hold.
func (t *Throttler) holdKeys(s Subjects) []string {
	var keys []string
	for _, sub := range t.candidates(s) {
		if sub.Kind != UserFamiliar {
			keys = append(keys, sub.Kind+":"+sub.Key)
		}
	}
	for _, h := range s.Hold {
		keys = append(keys, "hold:"+h)
	}
	return keys
}

// accepted settles a right answer in the Guard's transaction: the count of the
// user's that applied is reset if it had one (the other, from networks of the
// other kind, is not: a user signing in at home must not give strangers
// elsewhere a fresh set of guesses), the login's too, and the network is
// remembered as familiar (written only when new or last seen more than
// FamiliarRefresh ago).
func (t *Throttler) accepted(ctx context.Context, s Subjects, d Decision, seen, now time.Time) error {
	for _, sub := range d.Counted {
		if sub.Kind == IP {
			continue // other users behind the network may still be guessing
		}
		if _, err := t.store.ResetThrottle(ctx, sub.Kind, sub.Key); err != nil {
			return err
		}
	}
	if s.HighEntropy && s.UserID != "" {
		// The user's low-entropy counts were not read: reset the one for this
		// network's kind (a right backup code is a second factor passed).
		kind := User
		if !seen.IsZero() {
			kind = UserFamiliar
		}
		if _, err := t.store.ResetThrottle(ctx, kind, s.UserID); err != nil {
			return err
		}
	}
	return t.rememberFamiliar(ctx, s, seen, now)
}

// rememberFamiliar records that s's user passed a second factor from s's
// network, unless it was seen within FamiliarRefresh.
func (t *Throttler) rememberFamiliar(ctx context.Context, s Subjects, seen, now time.Time) error {
	if s.UserID == "" {
		return nil
	}
	network, _ := t.network(s.IP)
	if network == "" || !seen.IsZero() && now.Sub(seen) < t.cfg.FamiliarRefresh {
		return nil
	}
	return t.store.RememberFamiliarNetwork(ctx, s.UserID, network, now, t.cfg.FamiliarTTL, t.cfg.FamiliarRefresh, t.cfg.FamiliarMax)
}
