package admincodes_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twofactor/twofactor/internal/testfix"
	"github.com/twofactor/twofactor/providers/admincodes"
	"github.com/twofactor/twofactor/providers/backupcodes"
	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func seeded(seed byte) *rand.ChaCha8 {
	var s [32]byte
	s[0] = seed
	return rand.NewChaCha8(s)
}

func newProvider(s *storage.Store, ring *storage.KeyRing, c *testfix.Clock, seed byte) *admincodes.Provider {
	return admincodes.New(s, ring, admincodes.Options{Clock: c.Now, Rand: seeded(seed)})
}

var shape = regexp.MustCompile(`^([` + backupcodes.Alphabet + `]{4}-){3}[` + backupcodes.Alphabet + `]{4}$`)

func TestIssueAndVerify(t *testing.T) {
	s := storagetest.Open(t)
	c := testfix.NewClock(t0)
	p := newProvider(s, storagetest.KeyRing(t), c, 1)
	ctx := context.Background()
	if _, err := p.Verify(ctx, "alice", "2222-2222-2222-2222"); !errors.Is(err, admincodes.ErrNoCode) {
		t.Fatalf("before issue: %v, want ErrNoCode", err)
	}
	issued, err := p.Issue(ctx, "root", "alice", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !shape.MatchString(issued.Code) || !issued.ExpiresAt.Equal(t0.Add(24*time.Hour)) {
		t.Fatalf("issued %q expiring %v", issued.Code, issued.ExpiresAt)
	}
	st, _ := p.State(ctx, "alice")
	if !st.Exists || !st.Usable || st.IssuedBy != "root" || !st.IssuedAt.Equal(t0) {
		t.Fatalf("state = %+v", st)
	}
	cases := []struct {
		name, user, code string
		want             error
	}{
		{"malformed", "alice", "0000-0000-0000-0000", admincodes.ErrMalformed},
		{"backup code shape", "alice", "22222-22222", admincodes.ErrMalformed},
		{"wrong", "alice", "2222-2222-2222-2222", admincodes.ErrWrongCode},
		{"other user", "bob", issued.Code, admincodes.ErrNoCode},
	}
	for _, tc := range cases {
		if _, err := p.Verify(ctx, tc.user, tc.code); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	c.Advance(time.Hour)
	used, err := p.Verify(ctx, "alice", strings.ToLower(strings.ReplaceAll(issued.Code, "-", " ")))
	if err != nil || used.IssuedBy != "root" || !used.IssuedAt.Equal(t0) {
		t.Fatalf("Verify = %+v, %v", used, err)
	}
	if _, err := p.Verify(ctx, "alice", issued.Code); !errors.Is(err, admincodes.ErrUsed) {
		t.Fatalf("second use: %v, want ErrUsed", err)
	}
	st, _ = p.State(ctx, "alice")
	if st.Usable || st.UsedAt == nil || !st.UsedAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("state after use = %+v (the row records when it was used)", st)
	}
}

func TestExpiry(t *testing.T) {
	s := storagetest.Open(t)
	c := testfix.NewClock(t0)
	p := newProvider(s, storagetest.KeyRing(t), c, 2)
	ctx := context.Background()
	issued, err := p.Issue(ctx, "root", "alice", 2*time.Hour)
	if err != nil || !issued.ExpiresAt.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("Issue = %+v, %v", issued, err)
	}
	c.Advance(2 * time.Hour)
	if _, err := p.Verify(ctx, "alice", issued.Code); !errors.Is(err, admincodes.ErrExpired) {
		t.Fatalf("at expiry: %v, want ErrExpired", err)
	}
	if _, err := p.Verify(ctx, "alice", "2222-2222-2222-2222"); !errors.Is(err, admincodes.ErrWrongCode) {
		t.Fatalf("a wrong guess after expiry: %v, want ErrWrongCode", err)
	}
	if st, _ := p.State(ctx, "alice"); st.Usable {
		t.Fatal("an expired code is usable")
	}
	for _, ttl := range []time.Duration{-time.Second, admincodes.MaxTTL + time.Second} {
		if _, err := p.Issue(ctx, "root", "alice", ttl); !errors.Is(err, admincodes.ErrTTL) {
			t.Errorf("ttl %v: %v, want ErrTTL", ttl, err)
		}
	}
	if _, err := p.Issue(ctx, "", "alice", 0); err == nil {
		t.Error("issued without an actor")
	}
}

func TestNewerCodeReplacesOlder(t *testing.T) {
	s := storagetest.Open(t)
	c := testfix.NewClock(t0)
	p := newProvider(s, storagetest.KeyRing(t), c, 3)
	ctx := context.Background()
	first, _ := p.Issue(ctx, "root", "alice", 0)
	second, _ := p.Issue(ctx, "carol", "alice", 0)
	if _, err := p.Verify(ctx, "alice", first.Code); !errors.Is(err, admincodes.ErrWrongCode) {
		t.Fatalf("replaced code: %v, want ErrWrongCode", err)
	}
	used, err := p.Verify(ctx, "alice", second.Code)
	if err != nil || used.IssuedBy != "carol" {
		t.Fatalf("newer code: %+v, %v", used, err)
	}
	// A new code after a used one works again.
	third, _ := p.Issue(ctx, "root", "alice", 0)
	if _, err := p.Verify(ctx, "alice", third.Code); err != nil {
		t.Fatalf("code issued after a used one: %v", err)
	}
	if ok, _ := p.Revoke(ctx, "alice"); !ok {
		t.Fatal("Revoke found nothing")
	}
	if st, _ := p.State(ctx, "alice"); st.Exists {
		t.Fatal("state after revoke still exists")
	}
}

func TestVerifyRaceAcrossReplicas(t *testing.T) {
	url := storagetest.URL(t)
	ring := storagetest.KeyRing(t)
	c := testfix.NewClock(t0)
	replicas := []*admincodes.Provider{
		newProvider(storagetest.OpenURL(t, url), ring, c, 4),
		newProvider(storagetest.OpenURL(t, url), ring, c, 5),
	}
	ctx := context.Background()
	issued, _ := replicas[0].Issue(ctx, "root", "alice", 0)
	var wins, used atomic.Int32
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := replicas[i%2].Verify(ctx, "alice", issued.Code)
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, admincodes.ErrUsed):
				used.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 || used.Load() != 15 {
		t.Fatalf("%d accepted, %d ErrUsed; want 1 and 15", wins.Load(), used.Load())
	}
}

func TestNoCodeInClear(t *testing.T) {
	s := storagetest.Open(t)
	p := newProvider(s, storagetest.KeyRing(t), testfix.NewClock(t0), 6)
	ctx := context.Background()
	issued, _ := p.Issue(ctx, "root", "alice", 0)
	norm, _ := admincodes.Format.Normalize(issued.Code)
	if rows := storagetest.AssertNotStored(t, s, issued.Code, norm); rows < 1 {
		t.Fatal("no rows read")
	}
}
