package throttle_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twofactor/twofactor/server/throttle"
	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// countingStore is a real store that counts the throttle reads made through it
// and can run a hook in the middle of one (after the read, before Check sees it).
type countingStore struct {
	*storage.Store
	reads  atomic.Int64
	during func()
}

func (s *countingStore) GetAttemptStates(ctx context.Context, subjects []storage.ThrottleSubject, user, network string, now time.Time) ([]storage.ThrottleState, time.Time, error) {
	s.reads.Add(1)
	out, seen, err := s.Store.GetAttemptStates(ctx, subjects, user, network, now)
	if s.during != nil {
		s.during()
	}
	return out, seen, err
}

// The clean cache: a subject without failures is read once per CleanCacheTTL;
// a failure recorded here forgets it at once, one announced from another replica
// (Invalidate) too, and a Check whose read overlapped an invalidation does not
// remember what it read.
func TestCleanCache(t *testing.T) {
	ctx := context.Background()
	st := storagetest.Open(t)
	c := &clock{t: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}
	cfg := throttle.Config{IPDelayAfter: 1, UserDelayAfter: 2, UserLockAfter: 3, CleanCacheTTL: time.Second}
	cs := &countingStore{Store: st}
	a, err := throttle.New(cs, cfg, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	other, err := throttle.New(st, cfg, c.Now) // another replica, same store
	if err != nil {
		t.Fatal(err)
	}
	alice := throttle.Subjects{UserID: "alice", IP: "203.0.113.7"}
	check := func(want bool, wantReads int64) {
		t.Helper()
		before := cs.reads.Load()
		d, err := a.Check(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		if d.Blocked != want || cs.reads.Load()-before != wantReads {
			t.Fatalf("blocked %v after %d reads; want %v after %d", d.Blocked, cs.reads.Load()-before, want, wantReads)
		}
	}
	check(false, 1) // read, found clean
	check(false, 0) // remembered
	c.Add(time.Second)
	check(false, 1) // expired: read again
	check(false, 0)

	// Another replica records failures: this one still takes alice to be clean
	// until the announcement arrives, then reads and is blocked.
	for i := 0; i < 2; i++ {
		if _, err := other.Failure(ctx, alice); err != nil {
			t.Fatal(err)
		}
	}
	check(false, 0)
	a.Invalidate(throttle.Subject{Kind: throttle.IP, Key: "203.0.113.7"})
	check(true, 1)
	check(true, 1) // a subject with a count is never remembered

	// A failure recorded on this replica forgets the subject at once.
	bob := throttle.Subjects{UserID: "bob"}
	if d, _ := a.Check(ctx, bob); d.Blocked {
		t.Fatal("bob blocked before any failure")
	}
	for i := 0; i < 3; i++ {
		out, err := a.Failure(ctx, bob)
		if err != nil || len(out.Recorded) != 1 || out.Recorded[0] != (throttle.Subject{Kind: throttle.User, Key: "bob"}) {
			t.Fatalf("failure recorded %v, %v", out.Recorded, err)
		}
	}
	if d, _ := a.Check(ctx, bob); !d.Blocked || !d.Locked {
		t.Fatalf("bob after 3 failures here: %+v", d)
	}

	// A read that overlaps an invalidation is not remembered.
	carol := throttle.Subjects{UserID: "carol"}
	cs.during = func() { a.Invalidate(throttle.Subject{Kind: throttle.User, Key: "carol"}) }
	if _, err := a.Check(ctx, carol); err != nil {
		t.Fatal(err)
	}
	cs.during = nil
	before := cs.reads.Load()
	if _, err := a.Check(ctx, carol); err != nil || cs.reads.Load() == before {
		t.Fatalf("a read overlapping an invalidation was remembered (%v)", err)
	}

	// Invalidations of other subjects meanwhile do not stop a read from being
	// remembered (guessers elsewhere must not turn the cache off)...
	dave := throttle.Subjects{UserID: "dave", IP: "198.51.100.9"}
	cs.during = func() {
		for i := range 100 {
			a.Invalidate(throttle.Subject{Kind: throttle.User, Key: fmt.Sprintf("guesser-%d", i)})
		}
	}
	a.Check(ctx, dave)
	cs.during = nil
	before = cs.reads.Load()
	if _, err := a.Check(ctx, dave); err != nil || cs.reads.Load() != before {
		t.Fatalf("a read overlapping only other subjects' invalidations was not remembered (%v)", err)
	}
	// ...unless there were more of them than the throttler keeps track of.
	erin := throttle.Subjects{UserID: "erin"}
	cs.during = func() {
		for i := range 1000 {
			a.Invalidate(throttle.Subject{Kind: throttle.User, Key: fmt.Sprintf("guesser-%d", i)})
		}
	}
	a.Check(ctx, erin)
	cs.during = nil
	before = cs.reads.Load()
	if _, err := a.Check(ctx, erin); err != nil || cs.reads.Load() == before {
		t.Fatalf("a read overlapping 1000 invalidations was remembered (%v)", err)
	}
}

// A full cache does not grow past CleanCacheSize and keeps answering right.
func TestCleanCacheBounded(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}
	cs := &countingStore{Store: storagetest.Open(t)}
	th, err := throttle.New(cs, throttle.Config{CleanCacheTTL: time.Minute, CleanCacheSize: 4}, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if _, err := th.Check(ctx, throttle.Subjects{UserID: string(rune('a' + i))}); err != nil {
			t.Fatal(err)
		}
	}
	before := cs.reads.Load()
	th.Check(ctx, throttle.Subjects{UserID: string(rune('a' + 19))})
	if cs.reads.Load() != before {
		t.Fatal("the newest subject was not remembered")
	}
	if _, err := throttle.New(cs, throttle.Config{CleanCacheTTL: -time.Second}, nil); err == nil {
		t.Fatal("a negative TTL was accepted")
	}
}

func BenchmarkCheckCached(b *testing.B) {
	ctx := context.Background()
	th, _ := newThrottler(b, throttle.Config{CleanCacheTTL: time.Hour})
	s := throttle.Subjects{UserID: "alice", IP: "203.0.113.7"}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := th.Check(ctx, s); err != nil {
			b.Fatal(err)
		}
	}
}
