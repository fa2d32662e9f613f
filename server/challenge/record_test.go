package challenge

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// recordFixture is a store with one active TOTP factor (last step 10) and the
// challenges over it.
func recordFixture(t *testing.T) (*storage.Store, *Challenges, time.Time) {
	t.Helper()
	st := storagetest.Open(t)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	step := int64(10)
	if err := st.CreateFactor(context.Background(), &storage.Factor{ID: "f1", UserID: "alice", Method: "totp", Name: "phone",
		State: storage.FactorActive, SealedSecret: []byte("sealed"), SecretKeyID: "k1", LastStep: &step, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	cs, err := New(st, storagetest.KeyRing(t), Config{TTL: time.Minute, MaxAttempts: 5}, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	return st, cs, now
}

// A record that fails (a crash between the decision and its record has the same
// effect: the transaction never commits) rolls the decision back, for stored and
// sealed challenges alike: the accepted answer's step is not spent and the
// challenge stays open, the wrong answer's attempt is not counted; a record that
// succeeds is written in the decision's own transaction.
func TestOutcomeCommitsWithItsRecord(t *testing.T) {
	for _, sealed := range []bool{false, true} {
		t.Run(map[bool]string{false: "stored", true: "sealed"}[sealed], func(t *testing.T) {
			st, cs, now := recordFixture(t)
			ctx := context.Background()
			from := int64(10)
			_, id, err := cs.Begin(ctx, Spec{UserID: "alice", FactorID: "f1", Method: "totp", Sealed: sealed, FromStep: &from})
			if err != nil {
				t.Fatal(err)
			}
			spend := func(ctx context.Context) (bool, error) { // the factor's single use: step 10 → 11
				ok, err := st.AdvanceLastStepFrom(ctx, "f1", &from, 11, now)
				if err == nil && !ok {
					err = ErrGone
				}
				return ok, err
			}
			boom := errors.New("record failed")
			failing := func(ctx context.Context, o Outcome) error { return boom }
			inTx := func(ctx context.Context, o Outcome) error {
				if !st.InTransaction(ctx) {
					t.Errorf("record of %v outside the decision's transaction", o.Result)
				}
				return nil
			}
			load := func() *Challenge {
				c, err := cs.Load(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				return c
			}

			// Rejected, record fails: no attempt counted.
			wrong := func(context.Context) (bool, error) { return false, nil }
			if _, err := cs.Verify(ctx, load(), wrong, nil, failing); !errors.Is(err, boom) {
				t.Fatalf("rejected with a failing record: %v", err)
			}
			if c := load(); c.Attempts != 0 || !cs.Answerable(c) {
				t.Fatalf("after a rolled-back rejection: %d attempts, answerable %v", c.Attempts, cs.Answerable(c))
			}
			if out, err := cs.Verify(ctx, load(), wrong, nil, inTx); err != nil || out.Result != Rejected || out.Remaining != 4 {
				t.Fatalf("rejected: %+v, %v", out, err)
			}

			// Accepted, record fails: the step is not spent, the challenge still open.
			if _, err := cs.Verify(ctx, load(), spend, nil, failing); !errors.Is(err, boom) {
				t.Fatalf("accepted with a failing record: %v", err)
			}
			c := load()
			if err := c.keeper.reload(ctx, c); err != nil { // Verify reads the factor itself
				t.Fatal(err)
			}
			if c.Factor == nil || c.Factor.LastStep == nil || *c.Factor.LastStep != 10 || !cs.Answerable(c) {
				t.Fatalf("after a rolled-back acceptance: factor %+v, answerable %v", c.Factor, cs.Answerable(c))
			}
			if out, err := cs.Verify(ctx, c, spend, nil, inTx); err != nil || out.Result != Accepted {
				t.Fatalf("accepted: %+v, %v", out, err)
			}
			c = load()
			if err := c.keeper.reload(ctx, c); err != nil {
				t.Fatal(err)
			}
			if cs.Answerable(c) {
				t.Fatal("still answerable after its acceptance committed")
			}
		})
	}
}
