// Package throttle slows down and finally stops guessing of second factors and app
// passwords, with state shared by every replica through the store.
//
// Failures are counted per user and per client network. An IPv4 address counts by
// itself; an IPv6 address by its /56 prefix (what one customer is usually given, as
// Nextcloud's brute-force throttler does), so that an attacker cannot step through
// the addresses of one allocation. Networks on the allow-list are not counted or
// delayed by network (the user's own count still applies).
//
// Security properties:
//
//   - Rate limiting of failed authentication attempts (NIST SP 800-63B §5.2.2: at most
//     100 consecutive failures before an account is locked; OWASP ASVS 4.0 V2.2.1).
//     After Config.UserLockAfter consecutive failures a user's count is hard-locked
//     for Config.LockDuration or until an admin clears it; a success resets the
//     count (§5.2.2: "consecutive").
//   - Delays grow exponentially: BaseDelay × 2^n for n counted failures, capped at
//     MaxDelay, over a Window without failures (Nextcloud: 0.1 s × 2^n, 25 s, 12 h).
//     The delay is a "not before" time in the subject's row (blocked_until); nothing
//     sleeps on the server.
//   - Counted before evaluated, under any concurrency on any number of replicas
//     (Guard; OWASP ASVS 5.0 6.3.1: the brute-force controls work as documented,
//     parallel requests included): an attempt holds its user, login, network and Subjects.Hold (a
//     challenge) in the shared store (storage.InAttempt and LockAttempt: PostgreSQL
//     advisory transaction locks, SQLite's one writer), reads their counts, is refused while a
//     delay or lock is in force, and commits its failure in the same transaction as
//     its evaluation. So each attempt sees every earlier one's count, and an answer
//     is released only with its count. Exact bounds for a subject without failures,
//     with the defaults: a burst (any size, any replicas) evaluates IPDelayAfter+1 = 4
//     guesses from one network, UserDelayAfter+1 = 11 from many networks against one
//     user; then one per delay, UserLockAfter = 50 in all before the lock, then one per
//     LockDuration (that guess locks again): at most 50 + 24 guesses in the first day
//     per count, 24 a day after. A challenge allowing n attempts evaluates at most n
//     answers when its id is held and its attempts are read inside the Guard.
//   - Lockouts are not a weapon (OWASP ASVS 5.0 6.1.1, 4.0 V2.2.1 "soft lockout";
//     NIST SP 800-63B §3.2.2 on alternatives to locking): high-entropy secrets
//     (Subjects.HighEntropy: app passwords, backup codes, admin-issued codes,
//     remembered-device tokens) are counted per client network only and never lock
//     a user or login, and the user's lock does not hold them up, so an admin-issued
//     code recovers a locked user. For low-entropy factors each user has two counts
//     (smart lockout, as Microsoft Entra ID keeps for familiar and unfamiliar
//     locations): one for the networks the user passed a second factor from within
//     FamiliarTTL (storage.FamiliarNetwork, at most FamiliarMax per user, IPv6 by the
//     configured prefix) and one for all others, so strangers guessing from elsewhere
//     at any rate lock only the latter, and a success resets only the count that
//     applied. What is left: an attacker on one of the user's familiar networks shares
//     its count, and a user signing in from a new network while strangers guess is
//     held up there until the lock ends or an admin code is used.
//   - A client network is delayed after IPDelayAfter failures, a user only after
//     UserDelayAfter (more), so one attacker is slowed long before the user is.
//   - A push device's refused requests (Subjects.Device: bad signature, stale
//     timestamp, replayed nonce) are counted apart, delayed after
//     DeviceDelayAfter and never hard-locked.
//   - Optionally (Config.CleanCacheTTL) a replica remembers for a short while that a
//     subject has no stored failures at all. Only Check uses it: a pre-check that
//     evaluates nothing (before a challenge is begun), whose only risk is letting an
//     attempt reach the Guard. Guard never uses it, since an attempt that may fail
//     must read the counts another replica may have written (an announcement can be
//     late or lost). Every failure forgets the subject's clean state on this replica
//     at once and, through the caller's announcement (Outcome.Recorded, Invalidate),
//     on every other replica.
package throttle

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/twofactor/twofactor/storage"
)

// Kinds of subject.
const (
	// User counts a user's wrong answers to low-entropy factors (TOTP, one-time
	// codes, push numbers) from client networks that are not familiar to the user.
	User = storage.ThrottleUser
	// UserFamiliar counts a user's wrong answers to low-entropy factors from the
	// user's familiar networks (storage.FamiliarNetwork): kept apart from User so
	// that strangers elsewhere cannot lock the user out of their usual networks.
	UserFamiliar = "userfam"
	// IP counts a client network's wrong answers of any kind.
	IP = storage.ThrottleIP
	// Login counts wrong app passwords given for a login. It is kept apart from User
	// so that a sync client's stale app password neither locks the user's second
	// factor nor, by succeeding, resets a count an attacker is building there.
	Login = "login"
	// Device counts a push device's refused requests (a bad signature, a
	// timestamp out of the window, a replayed nonce): delayed after
	// DeviceDelayAfter, never hard-locked (whoever names a device id must not
	// lock its owner out of push approval for long).
	Device = "device"
)

// Store is what the throttle keeps its counts in (a *storage.Store).
type Store interface {
	GetThrottle(ctx context.Context, kind, key string) (*storage.ThrottleState, error)
	GetAttemptStates(ctx context.Context, subjects []storage.ThrottleSubject, user, network string, now time.Time) ([]storage.ThrottleState, time.Time, error)
	RecordThrottleFailure(ctx context.Context, kind, key string, now time.Time, window time.Duration, block storage.ThrottleBlock) (*storage.ThrottleState, bool, error)
	ResetThrottle(ctx context.Context, kind, key string) (bool, error)
	InAttempt(ctx context.Context, keys []string, subjects []storage.ThrottleSubject, user, network string, now time.Time, fn storage.AttemptFunc) error
	RememberFamiliarNetwork(ctx context.Context, user, network string, now time.Time, ttl, refresh time.Duration, max int) error
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
}

// Config holds every limit; zero fields take the defaults of DefaultConfig.
type Config struct {
	// BaseDelay is the delay unit: a subject with n counted failures waits BaseDelay×2^n.
	BaseDelay time.Duration
	// MaxDelay caps a delay (not a lock).
	MaxDelay time.Duration
	// Window: a count with no failure for this long starts again.
	Window time.Duration
	// IPDelayAfter failures of a client network pass before it is delayed (default 3:
	// a user mistyping a code is not slowed).
	IPDelayAfter int
	// UserDelayAfter failures of a user pass before the user is delayed (default 10,
	// well after the network).
	UserDelayAfter int
	// UserLockAfter consecutive failures hard-lock a user; at most 100 (SP 800-63B).
	UserLockAfter int
	// DeviceDelayAfter refused requests of a push device pass before it is
	// delayed (default 5; delays only, capped at MaxDelay).
	DeviceDelayAfter int
	// IPLockAfter failures hard-lock a client network; 0 never does (delays only).
	IPLockAfter int
	// LockDuration is how long a hard lock lasts unless an admin clears it.
	LockDuration time.Duration
	// IPv6Prefix is the prefix length an IPv6 address counts by (default 56).
	IPv6Prefix int
	// Allow lists networks that are never counted or delayed by network.
	Allow []netip.Prefix
	// CleanCacheTTL is how long a subject found without stored failures is taken
	// to have none without reading the store again (0: read on every Check). A
	// failure recorded on another replica reaches this one through Invalidate,
	// or after this long when its announcement is lost.
	CleanCacheTTL time.Duration
	// CleanCacheSize bounds the subjects remembered as clean (default 20 000; expired entries are dropped when it is full).
	CleanCacheSize int
	// FamiliarTTL is how long a network a user passed a second factor from
	// stays familiar after the last such pass (default 90 days).
	FamiliarTTL time.Duration
	// FamiliarMax bounds the familiar networks kept per user, the most recently
	// seen (default 10).
	FamiliarMax int
	// FamiliarRefresh: a familiar network seen again within this long is not
	// written again (default 24 h; the common login writes nothing).
	FamiliarRefresh time.Duration
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		BaseDelay:        100 * time.Millisecond,
		MaxDelay:         25 * time.Second,
		Window:           12 * time.Hour,
		IPDelayAfter:     3,
		DeviceDelayAfter: 5,
		UserDelayAfter:   10,
		UserLockAfter:    50,
		LockDuration:     time.Hour,
		IPv6Prefix:       56,
		FamiliarTTL:      90 * 24 * time.Hour,
		FamiliarMax:      10,
		FamiliarRefresh:  24 * time.Hour,
	}
}

func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	if c.BaseDelay <= 0 {
		c.BaseDelay = d.BaseDelay
	}
	if c.MaxDelay <= 0 {
		c.MaxDelay = d.MaxDelay
	}
	if c.Window <= 0 {
		c.Window = d.Window
	}
	if c.IPDelayAfter <= 0 {
		c.IPDelayAfter = d.IPDelayAfter
	}
	if c.DeviceDelayAfter <= 0 {
		c.DeviceDelayAfter = d.DeviceDelayAfter
	}
	if c.UserDelayAfter <= 0 {
		c.UserDelayAfter = d.UserDelayAfter
	}
	if c.UserLockAfter <= 0 {
		c.UserLockAfter = d.UserLockAfter
	}
	if c.LockDuration <= 0 {
		c.LockDuration = d.LockDuration
	}
	if c.IPv6Prefix <= 0 {
		c.IPv6Prefix = d.IPv6Prefix
	}
	if c.CleanCacheSize <= 0 {
		c.CleanCacheSize = 20_000
	}
	if c.FamiliarTTL <= 0 {
		c.FamiliarTTL = d.FamiliarTTL
	}
	if c.FamiliarMax <= 0 {
		c.FamiliarMax = d.FamiliarMax
	}
	if c.FamiliarRefresh <= 0 {
		c.FamiliarRefresh = d.FamiliarRefresh
	}
	return c, c.validate()
}

// validate refuses limits that contradict each other or the standards.
func (c Config) validate() error {
	switch {
	case c.UserLockAfter > 100:
		return fmt.Errorf("throttle: user lock after %d failures: NIST SP 800-63B allows at most 100", c.UserLockAfter)
	case c.UserDelayAfter >= c.UserLockAfter:
		return fmt.Errorf("throttle: user delay after %d failures must be below the lock after %d", c.UserDelayAfter, c.UserLockAfter)
	case c.IPDelayAfter >= c.UserDelayAfter:
		return fmt.Errorf("throttle: a network must be delayed (after %d failures) before a user (after %d)", c.IPDelayAfter, c.UserDelayAfter)
	case c.IPLockAfter < 0:
		return fmt.Errorf("throttle: ip lock after %d: want 0 (never) or more", c.IPLockAfter)
	case c.IPv6Prefix < 32 || c.IPv6Prefix > 128:
		return fmt.Errorf("throttle: ipv6 prefix /%d: want /32 to /128", c.IPv6Prefix)
	case c.CleanCacheTTL < 0:
		return fmt.Errorf("throttle: clean cache ttl %v: want 0 (off) or more", c.CleanCacheTTL)
	case c.MaxDelay < c.BaseDelay:
		return fmt.Errorf("throttle: max delay %v is below the base delay %v", c.MaxDelay, c.BaseDelay)
	case c.FamiliarMax > 100:
		return fmt.Errorf("throttle: %d familiar networks per user: want at most 100", c.FamiliarMax)
	}
	return nil
}

// Throttler decides who must wait. It is safe for concurrent use.
type Throttler struct {
	cfg   Config
	store Store
	now   func() time.Time

	// clean remembers subjects without stored failures, until their expiry
	// (CleanCacheTTL). epoch counts invalidations, and recent holds the subjects
	// of the last len(recent) of them (invalidation e at recent[e%len]): a Check
	// whose read began before an invalidation of one of its subjects does not
	// fill the cache with what it read. Invalidations of other subjects do not
	// stop it, or a steady stream of failures (a few guessers) would keep
	// everyone else's subjects from being cached at all.
	mu     sync.Mutex
	clean  map[Subject]time.Time
	epoch  uint64
	recent [256]Subject
}

// New returns a Throttler over store; now defaults to time.Now.
func New(store Store, cfg Config, now func() time.Time) (*Throttler, error) {
	if store == nil {
		return nil, errors.New("throttle: a store is required")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	for _, p := range cfg.Allow {
		if !p.IsValid() {
			return nil, errors.New("throttle: allow-list holds an invalid network")
		}
	}
	if now == nil {
		now = time.Now
	}
	t := &Throttler{cfg: cfg, store: store, now: now}
	if cfg.CleanCacheTTL > 0 {
		t.clean = make(map[Subject]time.Time)
	}
	return t, nil
}

// Config returns the limits in force.
func (t *Throttler) Config() Config { return t.cfg }

// Subjects name who made an attempt: the user (may be empty when not known yet, as
// for a passkey) and the end user's client IP (may be empty).
type Subjects struct {
	UserID string
	// Login is the login an app password was given for (counted as Login, and
	// only for a low-entropy secret).
	Login string
	IP    string
	// HighEntropy marks a secret that cannot be guessed in the attempts a
	// network is allowed (an app password, a backup code, an admin-issued
	// recovery code, a remembered-device token): it is counted per client
	// network only, never against the user or the login, so guessing at it
	// locks nobody out (OWASP ASVS 5.0 6.1.1; NIST SP 800-63B §3.2.2). Its
	// attempts are not held up by the user's lock either, so an admin-issued
	// code recovers a locked user.
	HighEntropy bool
	// Device is the push device a device request names (counted as Device,
	// whatever HighEntropy says).
	Device string
	// Hold are further keys a Guard holds while it evaluates (at most 4, e.g.
	// "challenge:"+id): attempts naming one key are evaluated one at a time on
	// every replica, so a count the evaluation keeps itself (a challenge's
	// attempts) is read after every earlier attempt's was written.
	Hold []string
}

// Subject is one throttled thing: a kind and the key its count is kept under.
type Subject struct {
	Kind string
	Key  string
}

// Decision says whether an attempt may go ahead.
type Decision struct {
	// Blocked: the attempt must not be made before RetryAfter has passed.
	Blocked    bool
	RetryAfter time.Duration
	// Locked: the block is a hard lock.
	Locked bool
	// By is the subject blocking (the one with the longest wait).
	By Subject
	// Counted lists the subjects that have a stored count, blocking or not (a
	// success need only reset those).
	Counted []Subject
}

// HasCount reports whether kind has a stored count in d.
func (d Decision) HasCount(kind string) bool {
	for _, s := range d.Counted {
		if s.Kind == kind {
			return true
		}
	}
	return false
}

// Outcome is what recording a failure did.
type Outcome struct {
	// RetryAfter is the longest wait the failure caused (0: none).
	RetryAfter time.Duration
	// NewLocks are the subjects this failure hard-locked.
	NewLocks []Subject
	// Recorded are the subjects whose count this failure raised: the caller
	// announces them to the other replicas, which Invalidate them.
	Recorded []Subject
}

// IPKey returns the key an address counts under: an IPv4 address (IPv4-mapped IPv6
// included) as itself, an IPv6 address as its /prefix network. A zone is dropped.
func IPKey(ip string, v6prefix int) (string, error) {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return "", fmt.Errorf("throttle: %q is not an IP address", ip)
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String(), nil
	}
	p, err := a.Prefix(v6prefix)
	if err != nil {
		return "", fmt.Errorf("throttle: prefix /%d: %w", v6prefix, err)
	}
	return p.String(), nil
}

// SubjectOf returns the subject a user id or an IP maps to (ip: its network key).
func (t *Throttler) SubjectOf(kind, value string) (Subject, error) {
	switch kind {
	case User, UserFamiliar, Login:
		if value == "" {
			return Subject{}, errors.New("throttle: empty user id")
		}
		return Subject{kind, value}, nil
	case IP:
		k, err := IPKey(value, t.cfg.IPv6Prefix)
		if err != nil {
			return Subject{}, err
		}
		return Subject{IP, k}, nil
	}
	return Subject{}, fmt.Errorf("throttle: unknown subject kind %q", kind)
}

// Exempt reports whether ip is on the allow-list.
func (t *Throttler) Exempt(ip string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap().WithZone("")
	for _, p := range t.cfg.Allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// network returns the key ip's network counts under, and whether it is
// counted (parseable and not on the allow-list). Unparseable IPs are not counted
// (the server refuses them as malformed before it gets here).
func (t *Throttler) network(ip string) (key string, counted bool) {
	if ip == "" {
		return "", false
	}
	k, err := IPKey(ip, t.cfg.IPv6Prefix)
	if err != nil {
		return "", false
	}
	return k, !t.Exempt(ip)
}

// candidates lists every subject whose state can decide an attempt by s: for a
// low-entropy secret both of the user's counts (which one applies depends on
// whether the network is familiar) and the login's; the network's always.
func (t *Throttler) candidates(s Subjects) []Subject {
	var out []Subject
	if !s.HighEntropy {
		if s.UserID != "" {
			out = append(out, Subject{User, s.UserID}, Subject{UserFamiliar, s.UserID})
		}
		if s.Login != "" {
			out = append(out, Subject{Login, s.Login})
		}
	}
	if s.Device != "" {
		out = append(out, Subject{Device, s.Device})
	}
	if k, ok := t.network(s.IP); ok {
		out = append(out, Subject{IP, k})
	}
	return out
}

// counted lists the subjects an attempt by s counts against, given whether its
// network is familiar to its user: of the user's two counts only the one for
// such networks (UserFamiliar, when familiar) or the other (User).
func (t *Throttler) counted(s Subjects, familiar bool) []Subject {
	out := t.candidates(s)[:0:0]
	for _, sub := range t.candidates(s) {
		if sub.Kind == User && familiar || sub.Kind == UserFamiliar && !familiar {
			continue
		}
		out = append(out, sub)
	}
	return out
}

// familiarKey is what familiarity is looked up by: the user and the network
// (allow-listed networks too); empty when either is missing.
func (t *Throttler) familiarKey(s Subjects) (user, network string) {
	if s.UserID == "" {
		return "", ""
	}
	if k, _ := t.network(s.IP); k != "" {
		return s.UserID, k
	}
	return "", ""
}

// Check tells whether an attempt by s may go ahead now. It evaluates nothing and
// counts nothing (a pre-check, e.g. before a challenge is begun), so it may take
// subjects the clean cache remembers as clean without reading them. An attempt
// that evaluates a secret goes through Guard, which always reads.
func (t *Throttler) Check(ctx context.Context, s Subjects) (Decision, error) {
	now := t.now().UTC()
	cands := t.candidates(s)
	epoch, subjects := t.uncached(cands, now)
	if len(subjects) == 0 {
		return Decision{}, nil
	}
	d, _, found, err := t.read(ctx, s, subjects, now)
	if err != nil {
		return Decision{}, err
	}
	var clean []Subject
	for _, sub := range subjects {
		if !found[sub] {
			clean = append(clean, sub)
		}
	}
	t.remember(epoch, clean, now)
	return d, nil
}

// read loads the states of subjects (some of s's candidates) and the
// familiarity of s's network, and decides over the subjects that apply. found
// tells which subjects have a stored state.
func (t *Throttler) read(ctx context.Context, s Subjects, subjects []Subject, now time.Time) (Decision, time.Time, map[Subject]bool, error) {
	keys := storeSubjects(subjects)
	user, network := t.familiarKey(s)
	rows, seen, err := t.store.GetAttemptStates(ctx, keys, user, network, now)
	if err != nil {
		return Decision{}, time.Time{}, nil, err
	}
	d, found := t.decide(s, rows, seen, now)
	return d, seen, found, nil
}

// storeSubjects is subjects as the store names them.
func storeSubjects(subjects []Subject) []storage.ThrottleSubject {
	keys := make([]storage.ThrottleSubject, len(subjects))
	for i, sub := range subjects {
		keys[i] = storage.ThrottleSubject{Kind: sub.Kind, Key: sub.Key}
	}
	return keys
}

// decide is the Decision for s from the stored rows (seen: when s's network
// was last seen as familiar to s's user, zero if not), and which subjects have
// rows.
func (t *Throttler) decide(s Subjects, rows []storage.ThrottleState, seen, now time.Time) (Decision, map[Subject]bool) {
	found := make(map[Subject]bool, len(rows))
	var d Decision
	for _, sub := range t.counted(s, !seen.IsZero()) {
		for i := range rows {
			if st := &rows[i]; st.Kind == sub.Kind && st.Key == sub.Key {
				d.Counted = append(d.Counted, sub)
				if wait := st.BlockedUntil.Sub(now); wait > 0 && wait > d.RetryAfter {
					d.Blocked, d.RetryAfter, d.Locked, d.By = true, wait, st.Locked, sub
				}
			}
		}
	}
	for i := range rows {
		found[Subject{rows[i].Kind, rows[i].Key}] = true
	}
	return d, found
}

// uncached drops the subjects remembered as clean from subjects and returns the
// epoch the read that follows starts in.
func (t *Throttler) uncached(subjects []Subject, now time.Time) (uint64, []Subject) {
	if t.clean == nil || len(subjects) == 0 {
		return 0, subjects
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	out := subjects[:0:0]
	for _, sub := range subjects {
		if until, ok := t.clean[sub]; !ok || !now.Before(until) {
			out = append(out, sub)
		}
	}
	return t.epoch, out
}

// remember marks subjects clean until now+CleanCacheTTL, unless an invalidation
// happened since the read began (its subject may be among them).
func (t *Throttler) remember(epoch uint64, subjects []Subject, now time.Time) {
	if t.clean == nil || len(subjects) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.epoch-epoch > uint64(len(t.recent)) {
		return // more invalidations than remembered: any could be ours
	}
	for e := epoch; e != t.epoch; e++ {
		if slices.Contains(subjects, t.recent[e%uint64(len(t.recent))]) {
			return
		}
	}
	if len(t.clean)+len(subjects) > t.cfg.CleanCacheSize {
		for sub, until := range t.clean {
			if !now.Before(until) {
				delete(t.clean, sub)
			}
		}
		if len(t.clean)+len(subjects) > t.cfg.CleanCacheSize {
			clear(t.clean)
		}
	}
	until := now.Add(t.cfg.CleanCacheTTL)
	for _, sub := range subjects {
		t.clean[sub] = until
	}
}

// Invalidate forgets that sub was clean: a failure of it was recorded (on this
// replica or, announced, on another). Checks reading at the time do not
// remember what they read.
func (t *Throttler) Invalidate(sub Subject) {
	if t.clean == nil {
		return
	}
	t.mu.Lock()
	t.recent[t.epoch%uint64(len(t.recent))] = sub
	t.epoch++
	delete(t.clean, sub)
	t.mu.Unlock()
}

// Delay is the wait after failures counted failures of which free are let pass:
// BaseDelay×2^(failures−free), capped at MaxDelay; 0 while failures ≤ free.
func (t *Throttler) Delay(failures, free int) time.Duration {
	n := failures - free
	if n <= 0 {
		return 0
	}
	if n > 40 {
		return t.cfg.MaxDelay
	}
	d := t.cfg.BaseDelay * time.Duration(uint64(1)<<n)
	if d <= 0 || d > t.cfg.MaxDelay {
		return t.cfg.MaxDelay
	}
	return d
}

func (t *Throttler) block(kind string) storage.ThrottleBlock {
	free, lockAfter := t.cfg.IPDelayAfter, t.cfg.IPLockAfter
	switch kind {
	case User, UserFamiliar, Login:
		free, lockAfter = t.cfg.UserDelayAfter, t.cfg.UserLockAfter
	case Device:
		free, lockAfter = t.cfg.DeviceDelayAfter, 0
	}
	return func(failures int, now time.Time) (time.Time, bool) {
		if lockAfter > 0 && failures >= lockAfter {
			return now.Add(t.cfg.LockDuration), true
		}
		return now.Add(t.Delay(failures, free)), false
	}
}

// Failure counts one wrong answer by s (every counted subject) and reports the wait
// it caused and the locks it started. It is the second half of a check, then
// evaluate, then record flow, which concurrent attempts overshoot: an attempt
// that evaluates a secret goes through Guard instead.
func (t *Throttler) Failure(ctx context.Context, s Subjects) (Outcome, error) {
	now := t.now().UTC()
	var out Outcome
	// Every subject's count in one transaction: one commit, and a failure is
	// counted for all of its subjects or (on an error) for none.
	err := t.store.InTx(ctx, func(ctx context.Context) error {
		familiar, err := t.familiar(ctx, s, now)
		if err != nil {
			return err
		}
		out, err = t.record(ctx, t.counted(s, familiar), now)
		return err
	})
	// Whatever the outcome, the subjects may have counts now.
	for _, sub := range t.candidates(s) {
		t.Invalidate(sub)
	}
	if err != nil {
		return Outcome{}, err
	}
	return out, nil
}

// familiar reads whether s's network is familiar to its user.
func (t *Throttler) familiar(ctx context.Context, s Subjects, now time.Time) (bool, error) {
	user, network := t.familiarKey(s)
	if user == "" {
		return false, nil
	}
	_, seen, err := t.store.GetAttemptStates(ctx, nil, user, network, now)
	return !seen.IsZero(), err
}

// record counts one failure of each subject, inside the caller's transaction.
func (t *Throttler) record(ctx context.Context, subjects []Subject, now time.Time) (Outcome, error) {
	var out Outcome
	for _, sub := range subjects {
		st, locked, err := t.store.RecordThrottleFailure(ctx, sub.Kind, sub.Key, now, t.cfg.Window, t.block(sub.Kind))
		if err != nil {
			return Outcome{}, err
		}
		out.Recorded = append(out.Recorded, sub)
		if wait := st.BlockedUntil.Sub(now); wait > out.RetryAfter {
			out.RetryAfter = wait
		}
		if locked {
			out.NewLocks = append(out.NewLocks, sub)
		}
	}
	return out, nil
}

// Success resets the counts of s's user (both of them: without Guard's read it
// is not known which applies) and login, not the network's: other users behind
// it may still be guessing.
func (t *Throttler) Success(ctx context.Context, s Subjects) error {
	for _, sub := range []Subject{{User, s.UserID}, {UserFamiliar, s.UserID}, {Login, s.Login}} {
		if sub.Key == "" {
			continue
		}
		if _, err := t.store.ResetThrottle(ctx, sub.Kind, sub.Key); err != nil {
			return err
		}
	}
	return nil
}

// Status is a subject's current state.
type Status struct {
	Subject      Subject
	Failures     int
	Locked       bool
	BlockedUntil time.Time // zero when nothing is in force
}

// Status reports a subject's count and any delay or lock in force. A User
// subject reports the stricter of the user's two counts (from unfamiliar and
// from familiar networks).
func (t *Throttler) Status(ctx context.Context, sub Subject) (Status, error) {
	out, err := t.status(ctx, sub)
	if err != nil || sub.Kind != User {
		return out, err
	}
	fam, err := t.status(ctx, Subject{UserFamiliar, sub.Key})
	if err != nil {
		return Status{}, err
	}
	if fam.BlockedUntil.After(out.BlockedUntil) || fam.BlockedUntil.Equal(out.BlockedUntil) && fam.Failures > out.Failures {
		fam.Subject = sub
		return fam, nil
	}
	return out, nil
}

func (t *Throttler) status(ctx context.Context, sub Subject) (Status, error) {
	st, err := t.store.GetThrottle(ctx, sub.Kind, sub.Key)
	if errors.Is(err, storage.ErrNotFound) {
		return Status{Subject: sub}, nil
	}
	if err != nil {
		return Status{}, err
	}
	out := Status{Subject: sub, Failures: st.Failures}
	if now := t.now(); st.BlockedUntil.After(now) {
		out.BlockedUntil = st.BlockedUntil
		out.Locked = st.Locked
	}
	if now := t.now(); st.LastFailure.Before(now.Add(-t.cfg.Window)) && !st.BlockedUntil.After(now) {
		out.Failures = 0 // the count has lapsed
	}
	return out, nil
}

// Clear forgets a subject's count and lock (for a User subject both of the
// user's counts). It reports whether there was one.
func (t *Throttler) Clear(ctx context.Context, sub Subject) (bool, error) {
	ok, err := t.store.ResetThrottle(ctx, sub.Kind, sub.Key)
	if err != nil || sub.Kind != User {
		return ok, err
	}
	fam, err := t.store.ResetThrottle(ctx, UserFamiliar, sub.Key)
	return ok || fam, err
}
