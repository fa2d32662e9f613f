package storage_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// AdvanceLastStepFrom moves a factor's step only from the step a sealed challenge
// saw: of concurrent callers on two replicas, one wins, and a challenge that saw
// an older step never wins again.
func TestAdvanceLastStepFrom(t *testing.T) {
	url := storagetest.URL(t)
	a, b := storagetest.OpenURL(t, url), storagetest.OpenURL(t, url)
	ctx := context.Background()
	if err := a.CreateFactor(ctx, &storage.Factor{ID: "f", UserID: "u", Method: "totp", Name: "x", State: storage.FactorActive}); err != nil {
		t.Fatal(err)
	}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func(s *storage.Store, step int64) {
			defer wg.Done()
			if ok, err := s.AdvanceLastStepFrom(ctx, "f", nil, step, t0); err != nil {
				t.Error(err)
			} else if ok {
				wins.Add(1)
			}
		}([]*storage.Store{a, b}[i%2], 100+int64(i%3))
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d callers advanced from no step, want exactly 1", wins.Load())
	}
	got, _ := a.GetFactor(ctx, "u", "f")
	from := *got.LastStep
	for name, tc := range map[string]struct {
		from *int64
		step int64
	}{
		"from no step again":       {nil, from + 5},
		"from an older step":       {ptr(from - 1), from + 5},
		"to the same step":         {ptr(from), from},
		"to an earlier step":       {ptr(from), from - 1},
		"from a step it never had": {ptr(from + 1), from + 5},
	} {
		if ok, err := b.AdvanceLastStepFrom(ctx, "f", tc.from, tc.step, t0); ok || err != nil {
			t.Errorf("%s: won %v, %v", name, ok, err)
		}
	}
	if ok, err := b.AdvanceLastStepFrom(ctx, "f", ptr(from), from+1, t0); !ok || err != nil {
		t.Fatalf("from the current step to a later one: %v, %v", ok, err)
	}
	if err := a.DeleteFactor(ctx, "u", "f"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := a.AdvanceLastStepFrom(ctx, "f", ptr(from+1), from+2, t0); ok {
		t.Fatal("a removed factor advanced")
	}
}

func ptr(v int64) *int64 { return &v }

// A sealed challenge has no row until a wrong answer; FailSealedChallengeAttempt
// creates it, counts each of many concurrent wrong answers once, and fails the
// challenge at its last attempt. LoadSealedChallenge reads the factor and that row.
func TestSealedChallengeRow(t *testing.T) {
	url := storagetest.URL(t)
	a, b := storagetest.OpenURL(t, url), storagetest.OpenURL(t, url)
	ctx := context.Background()
	step := int64(7)
	if err := a.CreateFactor(ctx, &storage.Factor{ID: "f1", UserID: "alice", Method: "totp", Name: "Phone", State: storage.FactorActive,
		SealedSecret: []byte{1}, SecretKeyID: "k1", LastStep: &step, CreatedAt: t0, UpdatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	mk := func(id, user string, max int) *storage.Challenge {
		return &storage.Challenge{ID: id, UserID: user, FactorID: "f1", Method: "totp", State: storage.ChallengeOpen, MaxAttempts: max,
			ExpiresAt: t0.Add(time.Minute), ClientIP: "192.0.2.1", CreatedAt: t0}
	}
	c := mk("c1", "alice", 5)
	f, err := b.LoadSealedChallenge(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if f == nil || f.ID != "f1" || f.LastStep == nil || *f.LastStep != 7 || c.State != storage.ChallengeOpen || c.Attempts != 0 {
		t.Fatalf("before any answer: %+v (factor %+v)", c, f)
	}
	other := mk("c2", "mallory", 5) // names alice's factor
	if f, err := b.LoadSealedChallenge(ctx, other); err != nil || f != nil {
		t.Fatalf("another user's factor: %+v, %v", f, err)
	}

	var counted atomic.Int32
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Add(1)
		go func(s *storage.Store) {
			defer wg.Done()
			if _, open, err := s.FailSealedChallengeAttempt(ctx, mk("c1", "alice", 5), t0); err != nil {
				t.Error(err)
			} else if open {
				counted.Add(1)
			}
		}([]*storage.Store{a, b}[i%2])
	}
	wg.Wait()
	if counted.Load() != 5 {
		t.Fatalf("%d of 12 concurrent wrong answers counted, want 5", counted.Load())
	}
	c = mk("c1", "alice", 5)
	if _, err := a.LoadSealedChallenge(ctx, c); err != nil || c.State != storage.ChallengeFailed || c.Attempts != 5 {
		t.Fatalf("after the wrong answers: state %q, %d attempts, %v", c.State, c.Attempts, err)
	}

	one := mk("c3", "alice", 1)
	if rem, open, err := a.FailSealedChallengeAttempt(ctx, one, t0); err != nil || !open || rem != 0 {
		t.Fatalf("the only attempt: %d left, open %v, %v", rem, open, err)
	}
	if _, open, _ := a.FailSealedChallengeAttempt(ctx, one, t0); open {
		t.Fatal("a failed challenge counted another answer")
	}
	if _, open, _ := a.FailSealedChallengeAttempt(ctx, mk("c4", "alice", 5), t0.Add(time.Minute)); open {
		t.Fatal("an expired challenge counted an answer")
	}
	if n, err := a.DeleteChallengesBefore(ctx, t0.Add(2*time.Minute)); err != nil || n != 2 {
		t.Fatalf("cleanup removed %d rows, %v; want the 2 rows wrong answers made", n, err)
	}
}
