package backupcodes_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twofactor/twofactor/providers/backupcodes"
	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func newProvider(t testing.TB, s *storage.Store, ring *storage.KeyRing, seed byte) *backupcodes.Provider {
	t.Helper()
	return backupcodes.New(s, ring, backupcodes.Options{Clock: func() time.Time { return t0 }, Rand: seeded(seed)})
}

func TestEveryCodeWorksOnceAndOnlyOnce(t *testing.T) {
	s := storagetest.Open(t)
	p := newProvider(t, s, storagetest.KeyRing(t), 1)
	ctx := context.Background()
	if _, err := p.Verify(ctx, "alice", "ABCDE-FGHJK"); !errors.Is(err, backupcodes.ErrNoCodes) {
		t.Fatalf("Verify before issue: %v, want ErrNoCodes", err)
	}
	issued, err := p.Issue(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(issued.Codes) != backupcodes.DefaultCount || !issued.CreatedAt.Equal(t0) {
		t.Fatalf("issued %d codes at %v", len(issued.Codes), issued.CreatedAt)
	}
	if _, err := p.Verify(ctx, "alice", "ABCDE-FGHJ0"); !errors.Is(err, backupcodes.ErrMalformed) {
		t.Fatalf("malformed code: %v", err)
	}
	if _, err := p.Verify(ctx, "bob", issued.Codes[0]); !errors.Is(err, backupcodes.ErrNoCodes) {
		t.Fatalf("alice's code for bob: %v, want ErrNoCodes", err)
	}
	for i, code := range issued.Codes {
		typed := strings.ToLower(strings.ReplaceAll(code, "-", " "))
		res, err := p.Verify(ctx, "alice", typed)
		wantLeft := len(issued.Codes) - 1 - i
		if err != nil || res.Remaining != wantLeft {
			t.Fatalf("code %d: %+v, %v; want %d left", i, res, err, wantLeft)
		}
		if res.RunningLow != (wantLeft <= 1) || res.LowRecorded != (wantLeft == 1) {
			t.Fatalf("code %d (%d left): %+v", i, wantLeft, res)
		}
		if i < len(issued.Codes)-1 {
			if _, err := p.Verify(ctx, "alice", code); !errors.Is(err, backupcodes.ErrUsed) {
				t.Fatalf("code %d a second time: %v, want ErrUsed", i, err)
			}
			if _, err := p.Verify(ctx, "alice", "22222-22222"); !errors.Is(err, backupcodes.ErrWrongCode) {
				t.Fatalf("wrong code: %v, want ErrWrongCode", err)
			}
		}
	}
	if _, err := p.Verify(ctx, "alice", issued.Codes[0]); !errors.Is(err, backupcodes.ErrNoCodes) {
		t.Fatalf("after all codes: %v, want ErrNoCodes", err)
	}
	st, _ := p.Status(ctx, "alice")
	if !st.Enabled || st.Total != 10 || st.Remaining != 0 || st.RunningLowAt == nil || !st.CreatedAt.Equal(t0) {
		t.Fatalf("status = %+v", st)
	}
}

func TestRegenerationInvalidatesTheOldSet(t *testing.T) {
	s := storagetest.Open(t)
	p := newProvider(t, s, storagetest.KeyRing(t), 2)
	ctx := context.Background()
	old, _ := p.Issue(ctx, "alice")
	if _, err := p.Verify(ctx, "alice", old.Codes[0]); err != nil {
		t.Fatal(err)
	}
	fresh, err := p.Issue(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range old.Codes {
		if slices.Contains(fresh.Codes, c) {
			continue // astronomically unlikely; not what this test checks
		}
		if _, err := p.Verify(ctx, "alice", c); !errors.Is(err, backupcodes.ErrWrongCode) {
			t.Fatalf("old code after regeneration: %v, want ErrWrongCode", err)
		}
	}
	st, _ := p.Status(ctx, "alice")
	if st.Total != 10 || st.Remaining != 10 || st.RunningLowAt != nil {
		t.Fatalf("status after regeneration = %+v", st)
	}
	if _, err := p.Verify(ctx, "alice", fresh.Codes[9]); err != nil {
		t.Fatalf("new code: %v", err)
	}
	if ok, _ := p.Usable(ctx, "alice"); !ok {
		t.Fatal("Usable = false with 9 codes left")
	}
	if had, _ := p.Remove(ctx, "alice"); !had {
		t.Fatal("Remove found no codes")
	}
	if st, _ := p.Status(ctx, "alice"); st.Enabled {
		t.Fatalf("status after Remove = %+v", st)
	}
}

// Two replicas (two Stores on one database) and many goroutines race for every
// code: each code is accepted exactly once, the losers see ErrUsed.
func TestVerifyRaceAcrossReplicas(t *testing.T) {
	url := storagetest.URL(t)
	ring := storagetest.KeyRing(t)
	replicas := []*backupcodes.Provider{
		newProvider(t, storagetest.OpenURL(t, url), ring, 3),
		newProvider(t, storagetest.OpenURL(t, url), ring, 4),
	}
	ctx := context.Background()
	issued, err := replicas[0].Issue(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	const racers = 6
	var wins, used, lows atomic.Int32
	var mu sync.Mutex
	var remaining []int
	var wg sync.WaitGroup
	for _, code := range issued.Codes {
		for r := range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := replicas[r%2].Verify(ctx, "alice", code)
				switch {
				case err == nil:
					wins.Add(1)
					if res.LowRecorded {
						lows.Add(1)
					}
					mu.Lock()
					remaining = append(remaining, res.Remaining)
					mu.Unlock()
				case errors.Is(err, backupcodes.ErrUsed), errors.Is(err, backupcodes.ErrNoCodes):
					used.Add(1)
				default:
					t.Errorf("Verify: %v", err)
				}
			}()
		}
	}
	wg.Wait()
	if int(wins.Load()) != len(issued.Codes) || int(used.Load()) != len(issued.Codes)*(racers-1) {
		t.Fatalf("%d accepted, %d refused; want %d and %d", wins.Load(), used.Load(), len(issued.Codes), len(issued.Codes)*(racers-1))
	}
	slices.Sort(remaining)
	if !slices.Equal(remaining, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
		t.Fatalf("remaining counts %v", remaining)
	}
	if lows.Load() != 1 {
		t.Fatalf("%d uses recorded running low, want 1", lows.Load())
	}
}

// No code is stored in clear: the raw tables hold none of them, in any form.
func TestNoCodeInClear(t *testing.T) {
	s := storagetest.Open(t)
	p := newProvider(t, s, storagetest.KeyRing(t), 5)
	ctx := context.Background()
	issued, _ := p.Issue(ctx, "alice")
	p.Verify(ctx, "alice", issued.Codes[0])
	var secrets []string
	for _, c := range issued.Codes {
		n, _ := backupcodes.Normalize(c)
		secrets = append(secrets, c, n)
	}
	if rows := storagetest.AssertNotStored(t, s, secrets...); rows < len(issued.Codes)+1 {
		t.Fatalf("read %d rows, want the %d code rows and the set", rows, len(issued.Codes))
	}
}

func BenchmarkVerify(b *testing.B) {
	s := storagetest.Open(b)
	p := newProvider(b, s, storagetest.KeyRing(b), 6)
	ctx := context.Background()
	p.Issue(ctx, "alice")
	for b.Loop() {
		p.Verify(ctx, "alice", "22222-22222") // wrong: the lookup and comparisons, no write
	}
}

// BenchmarkVerifyAcceptedInTx is a login's use of a backup code as the server
// runs it: inside a transaction (the throttle Guard's), accepted, consumed.
func BenchmarkVerifyAcceptedInTx(b *testing.B) {
	s := storagetest.Open(b)
	p := newProvider(b, s, storagetest.KeyRing(b), 7)
	ctx := context.Background()
	var codes []string
	for b.Loop() {
		if len(codes) == 0 {
			b.StopTimer()
			issued, err := p.Issue(ctx, "alice")
			if err != nil {
				b.Fatal(err)
			}
			codes = issued.Codes
			b.StartTimer()
		}
		code := codes[0]
		codes = codes[1:]
		if err := s.InTx(ctx, func(ctx context.Context) error {
			_, err := p.Verify(ctx, "alice", code)
			return err
		}); err != nil {
			b.Fatal(err)
		}
	}
}
