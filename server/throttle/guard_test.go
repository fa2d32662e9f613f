package throttle_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twofactor/twofactor/server/throttle"
	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// replicas returns n Throttlers, each on its own Store opened on one fresh
// database (SQLite, or PostgreSQL with TWOFACTOR_TEST_DATABASE_URL), as n authd
// replicas share one, and the stores.
func replicas(t testing.TB, n int, cfg throttle.Config, c *clock) ([]*throttle.Throttler, []*storage.Store) {
	t.Helper()
	url := storagetest.URL(t)
	var ths []*throttle.Throttler
	var sts []*storage.Store
	for range n {
		st := storagetest.OpenURL(t, url)
		th, err := throttle.New(st, cfg, c.Now)
		if err != nil {
			t.Fatal(err)
		}
		ths, sts = append(ths, th), append(sts, st)
	}
	return ths, sts
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)} }

// burst sends n concurrent wrong guesses, spread over the replicas, each from
// ip(i), and returns how many were evaluated.
func burst(t *testing.T, ths []*throttle.Throttler, n int, user string, ip func(i int) string) int {
	t.Helper()
	var evaluated atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := ths[i%len(ths)].Guard(context.Background(), throttle.Subjects{UserID: user, IP: ip(i)},
				func(context.Context) (throttle.Verdict, error) {
					evaluated.Add(1)
					return throttle.Rejected, nil
				})
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return int(evaluated.Load())
}

func manyNetworks(i int) string { return fmt.Sprintf("198.18.%d.%d", i/250, i%250+1) }

// N concurrent wrong guesses across two replicas on one store evaluate exactly
// what the limits allow, for N up to 500: from many networks the user's free
// failures and one more (UserDelayAfter+1), from one network the network's
// (IPDelayAfter+1); after each delay or lock one more, never a burst.
func TestGuardBoundUnderConcurrency(t *testing.T) {
	for _, n := range []int{50, 200, 500} {
		t.Run(fmt.Sprintf("N=%d", n), func(t *testing.T) {
			c := newClock()
			ths, _ := replicas(t, 2, throttle.Config{}, c)
			cfg := ths[0].Config()
			if got, want := burst(t, ths, n, "alice", manyNetworks), cfg.UserDelayAfter+1; got != want {
				t.Fatalf("many networks: %d of %d guesses evaluated, want %d", got, n, want)
			}
			if got, want := burst(t, ths, n, "bob", func(int) string { return "203.0.113.9" }), cfg.IPDelayAfter+1; got != want {
				t.Fatalf("one network: %d of %d guesses evaluated, want %d", got, n, want)
			}
			// The delay passes: one guess, which starts the next delay.
			c.Add(cfg.MaxDelay)
			if got := burst(t, ths, n, "alice", manyNetworks); got != 1 {
				t.Fatalf("after the delay: %d of %d guesses evaluated, want 1", got, n)
			}
		})
	}
}

// Each time a lock expires, a burst gets one guess, which locks again.
func TestGuardOneGuessPerLock(t *testing.T) {
	c := newClock()
	cfg := throttle.Config{IPDelayAfter: 1, UserDelayAfter: 3, UserLockAfter: 6, LockDuration: time.Hour}
	ths, _ := replicas(t, 2, cfg, c)
	total := 0
	for range 10 { // until locked: a burst, then wait out the delay
		total += burst(t, ths, 100, "alice", manyNetworks)
		c.Add(25 * time.Second)
	}
	if total != 6 {
		t.Fatalf("%d guesses evaluated before the lock, want UserLockAfter = 6", total)
	}
	st, err := ths[0].Status(context.Background(), throttle.Subject{Kind: throttle.User, Key: "alice"})
	if err != nil || !st.Locked {
		t.Fatalf("not locked: %+v %v", st, err)
	}
	for range 3 {
		c.Add(time.Hour)
		if got := burst(t, ths, 200, "alice", manyNetworks); got != 1 {
			t.Fatalf("after the lock: %d guesses evaluated, want 1", got)
		}
	}
}

// The Guard never takes a subject to be clean from the cache: another replica's
// failures are read even when their announcement never arrives (Check, which
// evaluates nothing, may still answer from the cache).
func TestGuardIgnoresCleanCache(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	cfg := throttle.Config{IPDelayAfter: 1, UserDelayAfter: 2, UserLockAfter: 3, CleanCacheTTL: time.Hour}
	ths, _ := replicas(t, 2, cfg, c)
	a, b := ths[0], ths[1]
	alice := throttle.Subjects{UserID: "alice", IP: "203.0.113.7"}
	if d, err := a.Check(ctx, alice); err != nil || d.Blocked {
		t.Fatalf("check: %+v %v", d, err)
	}
	for range 3 {
		if _, err := b.Failure(ctx, alice); err != nil {
			t.Fatal(err)
		}
	}
	res, err := a.Guard(ctx, alice, func(context.Context) (throttle.Verdict, error) {
		t.Fatal("evaluated while locked on the other replica")
		return throttle.Rejected, nil
	})
	if err != nil || !res.Blocked || !res.Locked {
		t.Fatalf("guard on a replica that cached the user clean: %+v %v", res, err)
	}
}

// One challenge allowing 5 attempts, 60 concurrent answers over two replicas:
// the challenge is held (Subjects.Hold) and its attempts read inside the Guard,
// so exactly 5 are evaluated; a right answer among them is accepted only if it
// was one of the first 5 evaluated.
func TestGuardChallengeAttempts(t *testing.T) {
	for _, sealed := range []bool{false, true} {
		for _, right := range []int{-1, 2, 40} {
			t.Run(fmt.Sprintf("sealed=%v/right=%d", sealed, right), func(t *testing.T) {
				challengeAttempts(t, sealed, right)
			})
		}
	}
}

func challengeAttempts(t *testing.T, sealed bool, right int) {
	ctx := context.Background()
	c := newClock()
	ths, sts := replicas(t, 2, throttle.Config{}, c)
	now := c.Now()
	ch := storage.Challenge{ID: "0b5e8c1e-0000-4000-8000-00000000000" + map[bool]string{false: "1", true: "2"}[sealed],
		UserID: "alice", FactorID: "f1", Method: "totp", State: storage.ChallengeOpen, MaxAttempts: 5,
		ExpiresAt: now.Add(5 * time.Minute), CreatedAt: now, UpdatedAt: now}
	if !sealed {
		if err := sts[0].CreateChallenge(ctx, &ch); err != nil {
			t.Fatal(err)
		}
	}
	var (
		mu       sync.Mutex
		order    []int
		accepted []int
		wg       sync.WaitGroup
	)
	for i := range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := sts[i%2]
			_, err := ths[i%2].Guard(ctx, throttle.Subjects{UserID: "alice", IP: manyNetworks(i), Hold: []string{"challenge:" + ch.ID}},
				func(ctx context.Context) (throttle.Verdict, error) {
					open, err := challengeOpen(ctx, st, ch, sealed, now)
					if err != nil || !open {
						return throttle.NotEvaluated, err
					}
					mu.Lock()
					order = append(order, i)
					mu.Unlock()
					if i == right {
						if won, err := consume(ctx, st, ch, sealed, now); err != nil || !won {
							return throttle.NotEvaluated, err
						}
						mu.Lock()
						accepted = append(accepted, i)
						mu.Unlock()
						return throttle.Accepted, nil
					}
					return throttle.Rejected, fail(ctx, st, ch, sealed, now)
				})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	rightAt := -1
	for k, i := range order {
		if i == right {
			rightAt = k
		}
	}
	switch {
	case len(order) > 5:
		t.Fatalf("%d answers evaluated, want at most 5", len(order))
	case rightAt >= 0 && (len(accepted) != 1 || len(order) != rightAt+1):
		t.Fatalf("the right answer was evaluated %d-th of %v but accepted %v", rightAt+1, order, accepted)
	case rightAt < 0 && (len(accepted) != 0 || len(order) != 5):
		t.Fatalf("no right answer evaluated: %d evaluated, accepted %v", len(order), accepted)
	}
}

// challengeOpen reads the challenge's state inside the Guard.
func challengeOpen(ctx context.Context, st *storage.Store, ch storage.Challenge, sealed bool, now time.Time) (bool, error) {
	if sealed {
		c := ch
		if _, err := st.LoadSealedChallenge(ctx, &c); err != nil {
			return false, err
		}
		return c.State == storage.ChallengeOpen && c.Attempts < c.MaxAttempts, nil
	}
	c, err := st.GetChallenge(ctx, ch.ID)
	if err != nil {
		return false, err
	}
	return c.State == storage.ChallengeOpen && c.Attempts < c.MaxAttempts && now.Before(c.ExpiresAt), nil
}

func fail(ctx context.Context, st *storage.Store, ch storage.Challenge, sealed bool, now time.Time) error {
	var err error
	if sealed {
		_, _, err = st.FailSealedChallengeAttempt(ctx, &ch, now)
	} else {
		_, _, err = st.FailChallengeAttempt(ctx, ch.ID, now)
	}
	return err
}

// consume uses the challenge up. A sealed one is used up by its factor's step
// moving on; here its row is marked accepted instead, which is what the next
// reader sees as well.
func consume(ctx context.Context, st *storage.Store, ch storage.Challenge, sealed bool, now time.Time) (bool, error) {
	if sealed {
		c := ch
		c.State = storage.ChallengeAccepted
		return true, st.DB(ctx).Save(&c).Error
	}
	return st.ConsumeChallenge(ctx, ch.ID, now)
}

// guess is one Guard with a fixed verdict; it reports whether it was evaluated.
func guess(t *testing.T, th *throttle.Throttler, s throttle.Subjects, v throttle.Verdict) (throttle.Result, bool) {
	t.Helper()
	evaluated := false
	res, err := th.Guard(context.Background(), s, func(context.Context) (throttle.Verdict, error) {
		evaluated = true
		return v, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return res, evaluated
}

// Strangers guessing a user's TOTP codes from unfamiliar networks at full speed
// lock the user's count for such networks; the user's login from the network
// they passed a second factor from before still succeeds (smart lockout), as
// does one from another address of the same IPv6 /56.
func TestFamiliarNetworkSurvivesStrangers(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	ths, _ := replicas(t, 2, throttle.Config{}, c)
	home := throttle.Subjects{UserID: "alice", IP: "2001:db8:1:2::5"}
	if res, ok := guess(t, ths[0], home, throttle.Accepted); !ok || res.Familiar {
		t.Fatalf("first login from home: evaluated %v, %+v", ok, res)
	}
	// The attacker: bursts from fresh networks, each delay waited out, until
	// the user is locked for them.
	for round := 0; ; round++ {
		burst(t, ths, 100, "alice", func(i int) string { return fmt.Sprintf("203.0.%d.%d", round, i+1) })
		st, err := ths[1].Status(ctx, throttle.Subject{Kind: throttle.User, Key: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		if st.Locked {
			break
		}
		if round > 60 {
			t.Fatal("the attacker never locked the user's count for unfamiliar networks")
		}
		c.Add(25 * time.Second)
	}
	if _, ok := guess(t, ths[0], throttle.Subjects{UserID: "alice", IP: "192.0.2.99"}, throttle.Accepted); ok {
		t.Fatal("an unfamiliar network was evaluated while the user is locked for them")
	}
	for _, ip := range []string{"2001:db8:1:2::5", "2001:db8:1:2f::9"} {
		from := throttle.Subjects{UserID: "alice", IP: ip}
		if d, err := ths[1].Check(ctx, from); err != nil || d.Blocked {
			t.Fatalf("check from the familiar network %s: %+v %v", ip, d, err)
		}
		res, ok := guess(t, ths[1], from, throttle.Accepted)
		if !ok || !res.Familiar || res.Blocked {
			t.Fatalf("login from the familiar network %s: evaluated %v, %+v", ip, ok, res)
		}
	}
	// The user's success at home does not give the strangers new guesses.
	if st, _ := ths[0].Status(ctx, throttle.Subject{Kind: throttle.User, Key: "alice"}); !st.Locked {
		t.Fatalf("a login at home cleared the strangers' lock: %+v", st)
	}
}

// Wrong guesses from a familiar network have their own count, with the same
// limits: the familiar network is not an unlimited back door.
func TestFamiliarNetworkHasItsOwnLimit(t *testing.T) {
	c := newClock()
	cfg := throttle.Config{IPDelayAfter: 1, UserDelayAfter: 2, UserLockAfter: 4, Allow: nil}
	ths, _ := replicas(t, 2, cfg, c)
	home := throttle.Subjects{UserID: "alice", IP: "198.51.100.7"}
	guess(t, ths[0], home, throttle.Accepted)
	evaluated := 0
	for range 20 {
		if _, ok := guess(t, ths[evaluated%2], home, throttle.Rejected); ok {
			evaluated++
		}
		c.Add(30 * time.Second)
	}
	if evaluated != 4 {
		t.Fatalf("%d guesses from the familiar network evaluated, want UserLockAfter = 4", evaluated)
	}
	// Strangers elsewhere are not locked by it.
	if _, ok := guess(t, ths[1], throttle.Subjects{UserID: "alice", IP: "192.0.2.1"}, throttle.Rejected); !ok {
		t.Fatal("the familiar count's lock closed unfamiliar networks too")
	}
}

// Made-up app passwords for a login, at any rate and from any number of
// networks, never lock the user or the login: they are high-entropy secrets,
// counted per network only. The attacker's networks are delayed.
func TestHighEntropyGuessingNeverLocks(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	ths, _ := replicas(t, 2, throttle.Config{}, c)
	var evaluated atomic.Int64
	var wg sync.WaitGroup
	for i := range 300 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ip := manyNetworks(i % 30)
			_, err := ths[i%2].Guard(ctx, throttle.Subjects{Login: "alice", UserID: "alice", IP: ip, HighEntropy: true},
				func(context.Context) (throttle.Verdict, error) { evaluated.Add(1); return throttle.Rejected, nil })
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	// Each of the 30 networks gets its free failures and one more.
	if got, want := int(evaluated.Load()), 30*(ths[0].Config().IPDelayAfter+1); got != want {
		t.Fatalf("%d app-password guesses evaluated, want %d", got, want)
	}
	for _, sub := range []throttle.Subject{{Kind: throttle.User, Key: "alice"}, {Kind: throttle.Login, Key: "alice"}} {
		if st, err := ths[0].Status(ctx, sub); err != nil || st.Failures != 0 || !st.BlockedUntil.IsZero() {
			t.Fatalf("%s counted app-password guesses: %+v %v", sub.Kind, st, err)
		}
	}
	client := throttle.Subjects{Login: "alice", UserID: "alice", IP: "192.0.2.50", HighEntropy: true}
	if res, ok := guess(t, ths[1], client, throttle.Accepted); !ok || res.Blocked {
		t.Fatalf("the user's sync client: evaluated %v, %+v", ok, res)
	}
	if _, ok := guess(t, ths[1], throttle.Subjects{Login: "alice", IP: manyNetworks(0), HighEntropy: true}, throttle.Rejected); ok {
		t.Fatal("a guessing network was not delayed")
	}
}

// While the user is locked (no familiar network to spare them), an admin-issued
// recovery code from a clean network is evaluated and, right, clears the lock
// for that kind of network; a wrong one counts against the network only.
func TestAdminCodeWhileLocked(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	cfg := throttle.Config{IPDelayAfter: 1, UserDelayAfter: 2, UserLockAfter: 3}
	ths, _ := replicas(t, 2, cfg, c)
	for i := range 3 {
		guess(t, ths[i%2], throttle.Subjects{UserID: "alice", IP: manyNetworks(i)}, throttle.Rejected)
	}
	helpdesk := throttle.Subjects{UserID: "alice", IP: "192.0.2.8"}
	if d, _ := ths[0].Check(ctx, helpdesk); !d.Blocked || !d.Locked {
		t.Fatalf("not locked: %+v", d)
	}
	code := helpdesk
	code.HighEntropy = true
	if d, err := ths[0].Check(ctx, code); err != nil || d.Blocked {
		t.Fatalf("an admin code's pre-check is held up by the user's lock: %+v %v", d, err)
	}
	if res, ok := guess(t, ths[1], code, throttle.Rejected); !ok || len(res.Recorded) != 1 || res.Recorded[0].Kind != throttle.IP {
		t.Fatalf("a wrong admin code: evaluated %v, recorded %v", ok, res.Recorded)
	}
	if res, ok := guess(t, ths[0], code, throttle.Accepted); !ok || res.Blocked {
		t.Fatalf("the right admin code while locked: evaluated %v, %+v", ok, res)
	}
	for _, ip := range []string{"192.0.2.8", "192.0.2.200"} {
		if d, _ := ths[1].Check(ctx, throttle.Subjects{UserID: "alice", IP: ip}); d.Blocked {
			t.Fatalf("still locked from %s after recovery: %+v", ip, d)
		}
	}
}

// The common login: a user and network without failures, the network familiar
// (nothing written). Compare BenchmarkCheck (one read, outside a transaction).
func BenchmarkGuardAccepted(b *testing.B) {
	ctx := context.Background()
	th, _ := newThrottler(b, throttle.Config{CleanCacheTTL: time.Minute})
	s := throttle.Subjects{UserID: "alice", IP: "203.0.113.7"}
	accept := func(context.Context) (throttle.Verdict, error) { return throttle.Accepted, nil }
	if _, err := th.Guard(ctx, s, accept); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := th.Guard(ctx, s, accept); err != nil {
			b.Fatal(err)
		}
	}
}
