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

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func TestConsumeChallengeExactlyOnceAcrossStores(t *testing.T) {
	url := storagetest.URL(t)
	a := storagetest.OpenURL(t, url)
	b := storagetest.OpenURL(t, url) // a second replica on the same database
	ctx := context.Background()
	c := &storage.Challenge{ID: "c1", UserID: "u", Method: "totp", State: storage.ChallengeOpen, MaxAttempts: 3, ExpiresAt: t0.Add(time.Minute)}
	if err := a.CreateChallenge(ctx, c); err != nil {
		t.Fatal(err)
	}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(s *storage.Store) {
			defer wg.Done()
			ok, err := s.ConsumeChallenge(ctx, "c1", t0)
			if err != nil {
				t.Error(err)
			}
			if ok {
				wins.Add(1)
			}
		}([]*storage.Store{a, b}[i%2])
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d callers consumed the challenge, want exactly 1", wins.Load())
	}
}

func TestFailChallengeAttemptKillsAtMax(t *testing.T) {
	s := storagetest.Open(t)
	ctx := context.Background()
	s.CreateChallenge(ctx, &storage.Challenge{ID: "c", UserID: "u", Method: "totp", State: storage.ChallengeOpen, MaxAttempts: 2, ExpiresAt: t0.Add(time.Minute)})
	if rem, open, err := s.FailChallengeAttempt(ctx, "c", t0); err != nil || !open || rem != 1 {
		t.Fatalf("first failure = %d, %v, %v", rem, open, err)
	}
	if rem, open, err := s.FailChallengeAttempt(ctx, "c", t0); err != nil || !open || rem != 0 {
		t.Fatalf("second failure = %d, %v, %v", rem, open, err)
	}
	if _, open, _ := s.FailChallengeAttempt(ctx, "c", t0); open {
		t.Fatal("challenge still open after max attempts")
	}
	if ok, _ := s.ConsumeChallenge(ctx, "c", t0); ok {
		t.Fatal("a failed challenge was consumed")
	}
	c, _ := s.GetChallenge(ctx, "c")
	if c.State != storage.ChallengeFailed {
		t.Fatalf("state = %q, want failed", c.State)
	}
	s.CreateChallenge(ctx, &storage.Challenge{ID: "old", UserID: "u", Method: "totp", State: storage.ChallengeOpen, MaxAttempts: 2, ExpiresAt: t0})
	if ok, _ := s.ConsumeChallenge(ctx, "old", t0); ok {
		t.Fatal("an expired challenge was consumed")
	}
}

func TestAdvanceLastStepOnlyForward(t *testing.T) {
	url := storagetest.URL(t)
	a := storagetest.OpenURL(t, url)
	b := storagetest.OpenURL(t, url)
	ctx := context.Background()
	a.CreateFactor(ctx, &storage.Factor{ID: "f", UserID: "u", Method: "totp", Name: "x", State: storage.FactorActive})
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(s *storage.Store) {
			defer wg.Done()
			if ok, err := s.AdvanceLastStep(ctx, "f", 100, t0); err != nil {
				t.Error(err)
			} else if ok {
				wins.Add(1)
			}
		}([]*storage.Store{a, b}[i%2])
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d callers advanced to step 100, want exactly 1", wins.Load())
	}
	if ok, _ := a.AdvanceLastStep(ctx, "f", 99, t0); ok {
		t.Fatal("an earlier step was accepted")
	}
	if ok, _ := a.AdvanceLastStep(ctx, "f", 101, t0); !ok {
		t.Fatal("a later step was refused")
	}
}

func TestResealMovesToActiveKey(t *testing.T) {
	s := storagetest.Open(t)
	ctx := context.Background()
	k1 := make([]byte, 32)
	k2 := make([]byte, 32)
	k2[0] = 1
	mac := make([]byte, 32)
	old, _ := storage.NewKeyRing("k1", map[string][]byte{"k1": k1}, mac)
	f := &storage.Factor{ID: "f", UserID: "u", Method: "totp", Name: "x", State: storage.FactorActive}
	f.SecretKeyID, f.SealedSecret, _ = old.Seal([]byte("seed"), f.AAD())
	s.CreateFactor(ctx, f)
	ring, _ := storage.NewKeyRing("k2", map[string][]byte{"k1": k1, "k2": k2}, mac)
	if n, err := s.ResealFactors(ctx, ring); err != nil || n != 1 {
		t.Fatalf("ResealFactors = %d, %v", n, err)
	}
	got, _ := s.GetFactor(ctx, "u", "f")
	if got.SecretKeyID != "k2" {
		t.Fatalf("key id = %q, want k2", got.SecretKeyID)
	}
	if pt, err := ring.Open(got.SecretKeyID, got.SealedSecret, got.AAD()); err != nil || string(pt) != "seed" {
		t.Fatalf("open after reseal: %q, %v", pt, err)
	}
	if n, _ := s.ResealFactors(ctx, ring); n != 0 {
		t.Fatalf("second reseal moved %d rows", n)
	}
}

func TestFindInTablesSeesEveryColumn(t *testing.T) {
	s := storagetest.Open(t)
	ctx := context.Background()
	s.CreateFactor(ctx, &storage.Factor{ID: "f", UserID: "u", Method: "totp", Name: "x", State: storage.FactorActive, Data: []byte("abcSECRETxyz")})
	if got := storagetest.FindInTables(t, s, []byte("secret")); got != "factors.data" {
		t.Fatalf("FindInTables = %q, want factors.data", got)
	}
	if got := storagetest.FindInTables(t, s, []byte("absent")); got != "" {
		t.Fatalf("FindInTables found %q", got)
	}
}

// GetChallengeAndFactor reads a challenge with the factor it is bound to, as
// GetFactor would read it, and only a factor of the challenge's user.
func TestGetChallengeAndFactor(t *testing.T) {
	st := storagetest.Open(t)
	ctx := context.Background()
	now := time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC)
	step := int64(1234)
	f := &storage.Factor{ID: "f0000000-0000-0000-0000-000000000001", UserID: "alice", Method: "totp", Name: "Phone", State: storage.FactorActive,
		SealedSecret: []byte{1, 2, 3}, SecretKeyID: "k1", Data: []byte(`{"digits":6}`), LastStep: &step, CreatedAt: now, UpdatedAt: now}
	if err := st.CreateFactor(ctx, f); err != nil {
		t.Fatal(err)
	}
	mk := func(id, user, factor string) {
		t.Helper()
		if err := st.CreateChallenge(ctx, &storage.Challenge{ID: id, UserID: user, FactorID: factor, Method: "totp", State: storage.ChallengeOpen,
			MaxAttempts: 5, ExpiresAt: now.Add(time.Minute), ClientIP: "192.0.2.1", CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	mk("c0000000-0000-0000-0000-000000000001", "alice", f.ID)
	mk("c0000000-0000-0000-0000-000000000002", "alice", "")
	mk("c0000000-0000-0000-0000-000000000003", "mallory", f.ID) // another user's factor id

	ch, got, err := st.GetChallengeAndFactor(ctx, "c0000000-0000-0000-0000-000000000001")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := st.GetFactor(ctx, "alice", f.ID)
	if got == nil || got.ID != want.ID || got.UserID != "alice" || got.Method != "totp" || got.Name != "Phone" || got.State != storage.FactorActive ||
		string(got.SealedSecret) != string(want.SealedSecret) || got.SecretKeyID != "k1" || string(got.Data) != string(want.Data) ||
		got.LastStep == nil || *got.LastStep != step || !got.CreatedAt.Equal(want.CreatedAt) || got.LastUsedAt != nil {
		t.Fatalf("factor %+v, want %+v", got, want)
	}
	plain, _ := st.GetChallenge(ctx, ch.ID)
	if ch.UserID != plain.UserID || ch.FactorID != plain.FactorID || ch.State != plain.State || !ch.ExpiresAt.Equal(plain.ExpiresAt) ||
		ch.MaxAttempts != 5 || ch.ClientIP != "192.0.2.1" {
		t.Fatalf("challenge %+v, want %+v", ch, plain)
	}
	for _, id := range []string{"c0000000-0000-0000-0000-000000000002", "c0000000-0000-0000-0000-000000000003"} {
		_, f, err := st.GetChallengeAndFactor(ctx, id)
		if err != nil || f != nil {
			t.Fatalf("%s: factor %+v, %v; want none", id, f, err)
		}
	}
	if _, _, err := st.GetChallengeAndFactor(ctx, "c0000000-0000-0000-0000-000000000009"); err != storage.ErrNotFound {
		t.Fatalf("unknown challenge: %v", err)
	}
}
