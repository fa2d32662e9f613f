// Package challenge keeps second-factor challenges between BeginChallenge and
// VerifyChallenge. A challenge is kept one of two ways, behind one interface:
//
//   - stored: a row in the challenges table, used up by a conditional UPDATE in
//     the same transaction as the factor's own single use (the right answer that
//     loses the row to a concurrent verifier is rolled back);
//   - sealed: everything it holds sealed into its id (AES-256-GCM under the key
//     ring, the uuid bound as associated data), its single use being the bound
//     factor's (see sealed.go); it gets a row only once a wrong answer is counted.
//
// Security properties:
//
//   - Single use under any concurrency on any number of replicas: of concurrent
//     verifiers, at most one is accepted (a conditional UPDATE in the shared
//     store; OWASP ASVS 4.0 V2.8.4, NIST SP 800-63B §5.1.4.2 / §5.1.5.2).
//   - A decided outcome and its record commit together (transactional outbox): an
//     accepted answer's single use and a wrong answer's attempt are in the same
//     transaction as what Verify's record writes (the audit trail, package audit),
//     so a crash loses neither alone (OWASP ASVS 4.0 V7.1.4, V7.3.3).
//   - Attempts are bounded per challenge (MaxAttempts) and counted in the store by
//     one atomic statement before the wrong answer is reported (SP 800-63B
//     §5.2.2); an expired, used or failed challenge answers Expired. Verify reads
//     the challenge again before the answer is looked at, so a caller that holds
//     the challenge (HoldKey, held by throttle.Guard on every replica) evaluates
//     at most MaxAttempts answers however many arrive at once, and a right answer
//     among them is accepted only if it was one of those.
//   - A sealed id that is altered, truncated, or sealed under another key ring
//     does not open, and reads as an unknown challenge (ErrNotFound).
//
// The package knows nothing of gRPC, factors or throttling: the server asks the
// factor for a verdict inside Verify's check.
package challenge

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/twofactor/twofactor/storage"
)

// Challenge is one challenge as Begin made it or Load read it.
type Challenge struct {
	storage.Challenge
	// Factor is the factor FactorID names, read with the challenge (nil when it
	// names none or the user's factor is gone). It is a snapshot: single use of
	// what it guards is the conditional updates'.
	Factor *storage.Factor
	// FromStep is, for a sealed challenge, the bound factor's last accepted TOTP
	// step when the challenge began (nil: none yet).
	FromStep *int64

	keeper keeper
}

// Sealed tells whether the challenge is carried in its id (no row at Begin).
func (c *Challenge) Sealed() bool { _, ok := c.keeper.(sealedKeeper); return ok }

// Spec is what a factor's begin asks for: whom the challenge is for, and how it
// may be kept.
type Spec struct {
	UserID   string
	FactorID string
	Method   string
	ClientIP string
	// Session is the factor's own data for the challenge (never a secret in clear).
	Session []byte
	// Sealed asks for a challenge carried in its id (granted only when FactorID is
	// set and Session empty: the factor's row is then its state); FromStep is the
	// bound factor's last TOTP step.
	Sealed   bool
	FromStep *int64
}

// Store is what the package needs of storage.Store.
type Store interface {
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
	CreateChallenge(ctx context.Context, c *storage.Challenge) error
	GetChallengeAndFactor(ctx context.Context, id string) (*storage.Challenge, *storage.Factor, error)
	ConsumeChallenge(ctx context.Context, id string, now time.Time) (bool, error)
	FailChallengeAttempt(ctx context.Context, id string, now time.Time) (remaining int, open bool, err error)
	LoadSealedChallenge(ctx context.Context, c *storage.Challenge) (*storage.Factor, error)
	FailSealedChallengeAttempt(ctx context.Context, c *storage.Challenge, now time.Time) (remaining int, open bool, err error)
}

// Sealer seals and opens bytes under a key ring (storage.KeyRing).
type Sealer interface {
	Seal(plain, aad []byte) (keyID string, sealed []byte, err error)
	Open(keyID string, sealed, aad []byte) ([]byte, error)
}

// Config are the challenges' limits.
type Config struct {
	TTL         time.Duration // how long a challenge can be answered (> 0)
	MaxAttempts int           // wrong answers that end a challenge (> 0)
}

// Challenges begins, loads and verifies challenges.
type Challenges struct {
	cfg    Config
	now    func() time.Time
	stored storedKeeper
	sealed sealedKeeper
}

// New returns the challenges kept in store, sealed with ring.
func New(store Store, ring Sealer, cfg Config, now func() time.Time) (*Challenges, error) {
	if store == nil || ring == nil || now == nil || cfg.TTL <= 0 || cfg.MaxAttempts <= 0 {
		return nil, errors.New("challenge: store, ring, clock, TTL and MaxAttempts are required")
	}
	return &Challenges{cfg: cfg, now: now, stored: storedKeeper{store}, sealed: sealedKeeper{store, ring}}, nil
}

var (
	// ErrNotFound: no challenge has the id (or a sealed id does not open).
	ErrNotFound = storage.ErrNotFound
	// ErrGone: a concurrent verifier used the challenge up; the answer is not
	// spent. A check returns it when the factor found the same.
	ErrGone = errors.New("challenge no longer open")
)

// keeper is how one kind of challenge is kept.
type keeper interface {
	create(ctx context.Context, c *Challenge) (id string, err error)
	// usedUp tells whether the kind's own state ends the challenge.
	usedUp(c *Challenge) bool
	// answer runs check and, when it accepts, uses the challenge up and runs
	// accepted, as one transaction.
	answer(ctx context.Context, c *Challenge, now time.Time, check Check, accepted func(context.Context) error) error
	fail(ctx context.Context, c *Challenge, now time.Time) (remaining int, open bool, err error)
	// reload reads the kind's stored state of c again (state, attempts, factor).
	reload(ctx context.Context, c *Challenge) error
}

// HoldKey names c for a hold (throttle.Subjects.Hold): answers to c holding it
// are verified one at a time, on every replica.
func HoldKey(c *Challenge) string { return "challenge:" + c.ID }

// Begin makes a challenge for spec and returns it with the id the caller answers with.
func (cs *Challenges) Begin(ctx context.Context, spec Spec) (*Challenge, string, error) {
	now := cs.now().UTC()
	c := &Challenge{Challenge: storage.Challenge{
		ID: uuid.NewString(), UserID: spec.UserID, FactorID: spec.FactorID, Method: spec.Method,
		State: storage.ChallengeOpen, Session: spec.Session, MaxAttempts: cs.cfg.MaxAttempts,
		ExpiresAt: now.Add(cs.cfg.TTL), ClientIP: spec.ClientIP, CreatedAt: now, UpdatedAt: now,
	}, keeper: cs.stored}
	if spec.Sealed && spec.FactorID != "" && len(spec.Session) == 0 {
		c.keeper, c.FromStep = cs.sealed, spec.FromStep
	}
	id, err := c.keeper.create(ctx, c)
	if err != nil {
		return nil, "", err
	}
	return c, id, nil
}

// Load reads the challenge id names: a stored one with the factor it is bound
// to; a sealed one from its id alone (its attempts and its factor, which is its
// state, are read by Verify, where they count).
func (cs *Challenges) Load(ctx context.Context, id string) (*Challenge, error) {
	if strings.IndexByte(id, '.') >= 0 {
		return cs.sealed.load(ctx, id)
	}
	return cs.stored.load(ctx, id)
}

// Answerable tells whether c can still be answered now: open, in time, with
// attempts left, and not used up by its factor.
func (cs *Challenges) Answerable(c *Challenge) bool {
	return c.State == storage.ChallengeOpen && cs.now().Before(c.ExpiresAt) && c.Attempts < c.MaxAttempts &&
		!c.keeper.usedUp(c)
}

// Check evaluates an answer: whether it is accepted, or an error. It runs inside
// the unit that uses the challenge up, so what it writes is rolled back when the
// challenge is lost to a concurrent verifier.
type Check func(ctx context.Context) (accepted bool, err error)

// Result is what became of an answer.
type Result int

// Results.
const (
	Accepted Result = iota + 1
	Rejected
	// Expired: the challenge was used up, failed or out of time meanwhile.
	Expired
)

// Record writes what a decided outcome leaves behind (the audit trail) inside
// the transaction that decides it (ctx carries it): the outcome and its record
// commit together or not at all. An error rolls the outcome back.
type Record func(ctx context.Context, o Outcome) error

// Outcome is what Verify found.
type Outcome struct {
	Result Result
	// Remaining are the wrong answers still allowed after a rejection.
	Remaining int
}

// Verify runs check on c. It first reads c again (within ctx: inside the
// caller's hold, after every earlier answer's count) and answers Expired without
// running check when c can no longer be answered. An accepted answer uses c up
// (of concurrent verifiers one wins; the others get Expired); a rejected one runs
// beforeFail (nil: nothing; an error stops before the attempt is counted) and
// then costs one attempt. record (optional) runs in the transaction that accepts
// the answer, or that counts the wrong one: a crash between the decision and its
// record loses neither alone, and a failing record rolls the decision back (the
// answer is then not spent, the attempt not counted).
func (cs *Challenges) Verify(ctx context.Context, c *Challenge, check Check, beforeFail func(context.Context) error, record Record) (Outcome, error) {
	if record == nil {
		record = func(context.Context, Outcome) error { return nil }
	}
	now := cs.now().UTC()
	if err := c.keeper.reload(ctx, c); err != nil {
		return Outcome{}, err
	}
	if !cs.Answerable(c) {
		return Outcome{Result: Expired}, nil
	}
	won := Outcome{Result: Accepted, Remaining: c.MaxAttempts - c.Attempts}
	var accepted bool
	err := c.keeper.answer(ctx, c, now, func(ctx context.Context) (bool, error) {
		var err error
		accepted, err = check(ctx)
		return accepted, err
	}, func(ctx context.Context) error { return record(ctx, won) })
	switch {
	case errors.Is(err, ErrGone):
		return Outcome{Result: Expired}, nil
	case err != nil:
		return Outcome{}, err
	case accepted:
		return won, nil
	}
	if beforeFail != nil {
		if err := beforeFail(ctx); err != nil {
			return Outcome{}, err
		}
	}
	return cs.fail(ctx, c, now, record)
}

// fail counts a wrong answer and records the rejection in one transaction.
func (cs *Challenges) fail(ctx context.Context, c *Challenge, now time.Time, record Record) (Outcome, error) {
	out := Outcome{Result: Expired}
	err := cs.stored.store.InTx(ctx, func(ctx context.Context) error {
		remaining, open, err := c.keeper.fail(ctx, c, now)
		if err != nil || !open {
			return err
		}
		out = Outcome{Result: Rejected, Remaining: remaining}
		return record(ctx, out)
	})
	if err != nil {
		return Outcome{}, err
	}
	return out, nil
}

// storedKeeper keeps challenges as rows.
type storedKeeper struct{ store Store }

func (k storedKeeper) create(ctx context.Context, c *Challenge) (string, error) {
	return c.ID, k.store.CreateChallenge(ctx, &c.Challenge)
}

func (k storedKeeper) load(ctx context.Context, id string) (*Challenge, error) {
	row, f, err := k.store.GetChallengeAndFactor(ctx, id)
	if err != nil {
		return nil, err
	}
	return &Challenge{Challenge: *row, Factor: f, keeper: k}, nil
}

func (storedKeeper) usedUp(*Challenge) bool { return false }

func (k storedKeeper) reload(ctx context.Context, c *Challenge) error {
	row, f, err := k.store.GetChallengeAndFactor(ctx, c.ID)
	if err != nil {
		return err
	}
	c.State, c.Attempts, c.ExpiresAt, c.Factor = row.State, row.Attempts, row.ExpiresAt, f
	return nil
}

// answer: the answer's own single use (a TOTP step, a backup code, a WebAuthn
// counter), the challenge's and the record of the acceptance are one
// transaction: a right answer that loses the challenge to a concurrent verifier
// is rolled back, so it is neither spent nor half-written; a wrong one commits
// what the factor recorded (e.g. a cloned authenticator's mark).
func (k storedKeeper) answer(ctx context.Context, c *Challenge, now time.Time, check Check, accepted func(context.Context) error) error {
	return k.store.InTx(ctx, func(ctx context.Context) error {
		ok, err := check(ctx)
		if err != nil || !ok {
			return err
		}
		won, err := k.store.ConsumeChallenge(ctx, c.ID, now)
		if err == nil && !won {
			return ErrGone
		}
		if err != nil {
			return err
		}
		return accepted(ctx)
	})
}

func (k storedKeeper) fail(ctx context.Context, c *Challenge, now time.Time) (int, bool, error) {
	return k.store.FailChallengeAttempt(ctx, c.ID, now)
}
