package throttle_test

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/twofactor/twofactor/server/throttle"
	"github.com/twofactor/twofactor/storage/storagetest"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newThrottler(t testing.TB, cfg throttle.Config) (*throttle.Throttler, *clock) {
	t.Helper()
	c := &clock{t: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}
	th, err := throttle.New(storagetest.Open(t), cfg, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	return th, c
}

func TestIPKey(t *testing.T) {
	raw, err := os.ReadFile("testdata/ipkeys.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		IP, Key string
		Err     bool
	}
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		got, err := throttle.IPKey(c.IP, 56)
		if (err != nil) != c.Err || got != c.Key {
			t.Errorf("IPKey(%q) = %q, %v; want %q (error %v)", c.IP, got, err, c.Key, c.Err)
		}
	}
}

func FuzzIPKey(f *testing.F) {
	for _, s := range []string{"203.0.113.7", "2001:db8::1", "::ffff:1.2.3.4", "fe80::1%eth0", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := throttle.IPKey(s, 56)
		if err != nil {
			return
		}
		// A key is stable: the key of a key's address is itself.
		if p, err := netip.ParsePrefix(k); err == nil {
			if k2, err := throttle.IPKey(p.Addr().String(), 56); err != nil || k2 != k {
				t.Fatalf("IPKey(%q) = %q, but its network gives %q, %v", s, k, k2, err)
			}
		} else if k2, err := throttle.IPKey(k, 56); err != nil || k2 != k {
			t.Fatalf("IPKey(%q) = %q, then %q, %v", s, k, k2, err)
		}
	})
}

func TestDelaySchedule(t *testing.T) {
	th, _ := newThrottler(t, throttle.Config{})
	for _, c := range []struct {
		failures, free int
		want           time.Duration
	}{
		{0, 0, 0},
		{1, 0, 200 * time.Millisecond},
		{2, 0, 400 * time.Millisecond},
		{7, 0, 12800 * time.Millisecond},
		{8, 0, 25 * time.Second},
		{1000, 0, 25 * time.Second},
		{10, 10, 0},
		{11, 10, 200 * time.Millisecond},
	} {
		if got := th.Delay(c.failures, c.free); got != c.want {
			t.Errorf("Delay(%d, %d) = %v, want %v", c.failures, c.free, got, c.want)
		}
	}
}

func TestConfigLimits(t *testing.T) {
	st := storagetest.Open(t)
	for _, cfg := range []throttle.Config{
		{UserLockAfter: 101},
		{UserDelayAfter: 20, UserLockAfter: 20},
		{IPDelayAfter: 5, UserDelayAfter: 5},
		{IPLockAfter: -1},
		{IPv6Prefix: 129},
		{BaseDelay: time.Minute, MaxDelay: time.Second},
	} {
		if _, err := throttle.New(st, cfg, nil); err == nil {
			t.Errorf("New accepted %+v", cfg)
		}
	}
}

// The network is slowed from the first failure, the user only after
// UserDelayAfter; the user's hard lock comes at UserLockAfter, lasts LockDuration,
// and a success resets the user but not the network.
func TestNetworkSlowedBeforeUserThenLockExpires(t *testing.T) {
	ctx := context.Background()
	th, c := newThrottler(t, throttle.Config{IPDelayAfter: 1, UserDelayAfter: 3, UserLockAfter: 6, LockDuration: 10 * time.Minute})
	alice := throttle.Subjects{UserID: "alice", IP: "2001:db8:7:1::9"}
	if out, err := th.Failure(ctx, alice); err != nil || out.RetryAfter != 0 {
		t.Fatalf("a free failure: %+v %v", out, err)
	}
	c.Add(time.Minute)
	out, err := th.Failure(ctx, alice)
	if err != nil || out.RetryAfter != 200*time.Millisecond || len(out.NewLocks) != 0 {
		t.Fatalf("second failure: %+v %v", out, err)
	}
	// Another address of the same /56 is held back; the user from elsewhere is not.
	if d, _ := th.Check(ctx, throttle.Subjects{IP: "2001:db8:7:2::1"}); !d.Blocked || d.By != (throttle.Subject{Kind: throttle.IP, Key: "2001:db8:7::/56"}) {
		t.Fatalf("same /56: %+v", d)
	}
	if d, _ := th.Check(ctx, throttle.Subjects{UserID: "alice", IP: "198.51.100.1"}); d.Blocked {
		t.Fatalf("the user is delayed after one failure: %+v", d)
	}
	for i := 3; i <= 5; i++ {
		c.Add(time.Minute)
		if _, err := th.Failure(ctx, alice); err != nil {
			t.Fatal(err)
		}
	}
	// Five failures: the user is delayed 0.1 s × 2^(5−3).
	if d, _ := th.Check(ctx, throttle.Subjects{UserID: "alice"}); !d.Blocked || d.RetryAfter != 400*time.Millisecond || d.Locked {
		t.Fatalf("after 5 failures: %+v", d)
	}
	c.Add(time.Minute)
	out, err = th.Failure(ctx, alice)
	if err != nil || len(out.NewLocks) != 1 || out.NewLocks[0] != (throttle.Subject{Kind: throttle.User, Key: "alice"}) {
		t.Fatalf("sixth failure must lock the user: %+v %v", out, err)
	}
	d, _ := th.Check(ctx, throttle.Subjects{UserID: "alice", IP: "198.51.100.1"})
	if !d.Blocked || !d.Locked || d.RetryAfter != 10*time.Minute {
		t.Fatalf("locked: %+v", d)
	}
	st, _ := th.Status(ctx, throttle.Subject{Kind: throttle.User, Key: "alice"})
	if st.Failures != 6 || !st.Locked || !st.BlockedUntil.Equal(c.Now().Add(10*time.Minute)) {
		t.Fatalf("status: %+v", st)
	}
	c.Add(10 * time.Minute)
	if d, _ := th.Check(ctx, throttle.Subjects{UserID: "alice"}); d.Blocked {
		t.Fatalf("the lock did not expire: %+v", d)
	}
	if err := th.Success(ctx, throttle.Subjects{UserID: "alice"}); err != nil {
		t.Fatal(err)
	}
	if st, _ := th.Status(ctx, throttle.Subject{Kind: throttle.User, Key: "alice"}); st.Failures != 0 {
		t.Fatalf("success did not reset the user: %+v", st)
	}
	if st, _ := th.Status(ctx, throttle.Subject{Kind: throttle.IP, Key: "2001:db8:7::/56"}); st.Failures != 6 {
		t.Fatalf("the network's count: %+v", st)
	}
}

func TestAllowListAndClear(t *testing.T) {
	ctx := context.Background()
	th, _ := newThrottler(t, throttle.Config{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	for i := 0; i < 12; i++ {
		if _, err := th.Failure(ctx, throttle.Subjects{UserID: "bob", IP: "10.1.2.3"}); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := th.Status(ctx, throttle.Subject{Kind: throttle.IP, Key: "10.1.2.3"}); st.Failures != 0 {
		t.Fatalf("an allow-listed network was counted: %+v", st)
	}
	d, _ := th.Check(ctx, throttle.Subjects{UserID: "bob", IP: "10.1.2.3"})
	// 12 failures: 2 over the user's default UserDelayAfter of 10.
	if !d.Blocked || d.By.Kind != throttle.User {
		t.Fatalf("the user's count still applies: %+v", d)
	}
	sub, _ := th.SubjectOf(throttle.User, "bob")
	if ok, err := th.Clear(ctx, sub); !ok || err != nil {
		t.Fatalf("clear: %v %v", ok, err)
	}
	if d, _ := th.Check(ctx, throttle.Subjects{UserID: "bob"}); d.Blocked {
		t.Fatalf("after clear: %+v", d)
	}
}

func BenchmarkCheck(b *testing.B) {
	ctx := context.Background()
	th, _ := newThrottler(b, throttle.Config{})
	s := throttle.Subjects{UserID: "alice", IP: "203.0.113.7"}
	th.Failure(ctx, s)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := th.Check(ctx, s); err != nil {
			b.Fatal(err)
		}
	}
}
