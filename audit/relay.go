package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/storage"
)

// Publisher is what the relay publishes through (*notify.Publisher).
type Publisher interface {
	// PublishAuditAsync sends ev (message id ev.ID) without waiting for its
	// acknowledgement; it fails at once when NATS is unreachable.
	PublishAuditAsync(ev notify.AuditEvent) (*notify.AuditAck, error)
}

// RelayConfig configures a Relay; zero values mean defaults.
type RelayConfig struct {
	Store  *storage.Store // required
	Events Publisher      // required
	Log    *slog.Logger   // nil: slog.Default()
	// Metrics receives pending, published and failed counts (nil: none).
	Metrics *Metrics
	Now     func() time.Time // the lease's clock; default time.Now
	// Holder names this relay in the lease (default a random UUID).
	Holder string
	// BatchSize is how many rows one round publishes (default 256).
	BatchSize int
	// Linger is how long a kicked relay waits before its round, so that the rows
	// stored meanwhile go in the same round (one read, one UPDATE and one lease
	// check for many rows, instead of a round per kick under load); default 20 ms,
	// negative for none. It delays an event's publication by at most that much.
	Linger time.Duration
	// Interval is how often an idle relay looks for rows that a Kick did not
	// announce (those committed in other transactions or by other replicas);
	// default 250 ms.
	Interval time.Duration
	// PublishTimeout bounds the wait for a round's acknowledgements (default 2 s).
	PublishTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait after a failed round, which doubles
	// from one to the other (defaults 100 ms and 10 s).
	MinBackoff, MaxBackoff time.Duration
	// LeaseTTL is how long the lease lasts unless renewed (default 15 s): the
	// longest another replica's relay waits to take over from one that died.
	LeaseTTL time.Duration
}

// Relay publishes the outbox: committed rows of audit_events still pending go to
// JetStream (message id = event id) in the order of their time and id, and are
// marked published once JetStream has acknowledged them. Delivery is at least
// once: a row whose acknowledgement was lost is published again, and JetStream's
// duplicate window (StreamConfig.AuditDedupeWindow) stores it once if the retry
// comes within it; consumers dedupe by id beyond it. A round that fails (NATS
// down, the store down) is retried with a doubling backoff, and the relay catches
// up when NATS returns: the rows wait in the store meanwhile, and nothing on the
// request path waits for NATS.
//
// Of several replicas' relays over one database, only the holder of the lease
// (storage.AcquireAuditRelayLease, one conditional upsert per LeaseTTL/2) publishes,
// so a row is published by one relay at a time, in order. The lease expires by
// the holder's clock; replicas whose clocks disagree by more than LeaseTTL could
// both publish after a takeover, which costs duplicates (deduplicated by id), not
// losses.
//
// Errors are counted, not logged per event: one warning when publishing starts
// failing, one line when it recovers, and the series twofactor_audit_pending,
// twofactor_audit_published_total and twofactor_audit_publish_failures_total.
type Relay struct {
	cfg  RelayConfig
	kick chan struct{}
	// after starts a timer (time.After's channel and its stop); tests inject theirs.
	after func(time.Duration) (<-chan time.Time, func() bool)

	mu         sync.Mutex // guards the fields below
	leaseUntil time.Time  // our lease runs until then (zero: not held)
	failing    bool
	failedAt   time.Time
	failures   int // failed rounds of the current outage
	lastErr    error
}

// NewRelay builds a relay; Run runs it.
func NewRelay(cfg RelayConfig) (*Relay, error) {
	if cfg.Store == nil || cfg.Events == nil {
		return nil, errors.New("audit: relay: Store and Events are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Holder == "" {
		cfg.Holder = uuid.NewString()
	}
	setDefault(&cfg.BatchSize, 256)
	setDefault(&cfg.Interval, 250*time.Millisecond)
	setDefault(&cfg.PublishTimeout, 2*time.Second)
	setDefault(&cfg.MinBackoff, 100*time.Millisecond)
	setDefault(&cfg.MaxBackoff, 10*time.Second)
	setDefault(&cfg.LeaseTTL, 15*time.Second)
	if cfg.Linger == 0 {
		cfg.Linger = 20 * time.Millisecond
	}
	return &Relay{cfg: cfg, kick: make(chan struct{}, 1), after: realAfter}, nil
}

func realAfter(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}

func setDefault[T int | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

// Kick wakes an idle relay (after the trail stored a batch). It never blocks.
func (r *Relay) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Failing tells whether the last round failed, and with what.
func (r *Relay) Failing() (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failing, r.lastErr
}

// Run publishes until ctx ends (finishing the round in flight), then releases
// the lease.
func (r *Relay) Run(ctx context.Context) {
	defer r.release()
	backoff := r.cfg.MinBackoff
	var lastCount time.Time
	for {
		// A round in flight finishes (bounded by PublishTimeout) when ctx ends:
		// rows it sent are marked, not left for the next relay to send again.
		n, err := r.Publish(context.WithoutCancel(ctx))
		if ctx.Err() != nil {
			return
		}
		wait := r.cfg.Interval
		switch {
		case errors.Is(err, storage.ErrLeaseHeld):
			r.ok(ctx) // another replica publishes; ours is not failing
		case err != nil:
			r.fail(ctx, err)
			wait, backoff = backoff, min(2*backoff, r.cfg.MaxBackoff)
		default:
			r.ok(ctx)
			backoff = r.cfg.MinBackoff
			if n == r.cfg.BatchSize {
				wait = 0 // more are waiting
			}
		}
		if now := time.Now(); err != nil || now.Sub(lastCount) >= time.Second {
			lastCount = now
			if c, cerr := r.cfg.Store.CountPendingAuditEvents(ctx); cerr == nil {
				r.cfg.Metrics.setPending(c)
			}
		}
		if !r.sleep(ctx, wait, err == nil) {
			return
		}
	}
}

// sleep waits d (a kick ends the wait when kickable, after the linger); false
// when ctx ended.
func (r *Relay) sleep(ctx context.Context, d time.Duration, kickable bool) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	c, stop := r.after(d)
	defer stop()
	kick := r.kick
	if !kickable {
		kick = nil // backing off: new rows do not make NATS come back sooner
	}
	select {
	case <-ctx.Done():
		return false
	case <-c:
	case <-kick:
		return r.linger(ctx)
	}
	return true
}

// linger waits cfg.Linger after a kick, so that the round about to run also
// carries the rows stored meanwhile. Kicks that come during the linger are
// dropped: their rows were committed before the round's read, which sees them.
func (r *Relay) linger(ctx context.Context) bool {
	if r.cfg.Linger > 0 {
		c, stop := r.after(r.cfg.Linger)
		defer stop()
		select {
		case <-ctx.Done():
			return false
		case <-c:
		}
	}
	select {
	case <-r.kick:
	default:
	}
	return true
}

// Publish runs one round: it reads up to BatchSize pending rows, takes or renews
// the lease, publishes the rows, waits for their acknowledgements and marks the
// acknowledged ones published. It returns how many it marked;
// storage.ErrLeaseHeld when another relay holds the lease.
func (r *Relay) Publish(ctx context.Context) (int, error) {
	recs, err := r.cfg.Store.PendingAuditEvents(ctx, r.cfg.BatchSize)
	if err != nil {
		return 0, fmt.Errorf("audit relay: read outbox: %w", err)
	}
	if len(recs) == 0 {
		return 0, nil
	}
	took, err := r.lease(ctx)
	if err != nil {
		return 0, err
	}
	if took {
		// The rows were read before this relay held the lease: the relay it takes
		// over from (or that held it while ours had lapsed) may have published and
		// marked them meanwhile. Read again under the lease, or they go out twice.
		if recs, err = r.cfg.Store.PendingAuditEvents(ctx, r.cfg.BatchSize); err != nil {
			return 0, fmt.Errorf("audit relay: read outbox: %w", err)
		}
		if len(recs) == 0 {
			return 0, nil
		}
	}
	done, perr := r.send(ctx, recs)
	if len(done) > 0 {
		// Marked even when ctx has ended: they are on the stream.
		if _, err := r.cfg.Store.MarkAuditEventsPublished(context.WithoutCancel(ctx), done); err != nil {
			return 0, fmt.Errorf("audit relay: mark published: %w", err)
		}
	}
	return len(done), perr
}

// lease takes or renews the lease when less than half of it is left; took
// tells that it did (in the store), so that what was read before may be stale.
func (r *Relay) lease(ctx context.Context) (took bool, err error) {
	now := r.cfg.Now()
	r.mu.Lock()
	fresh := now.Before(r.leaseUntil.Add(-r.cfg.LeaseTTL / 2))
	r.mu.Unlock()
	if fresh {
		return false, nil
	}
	if err := r.cfg.Store.AcquireAuditRelayLease(ctx, r.cfg.Holder, now, r.cfg.LeaseTTL); err != nil {
		if errors.Is(err, storage.ErrLeaseHeld) {
			return false, err
		}
		return false, fmt.Errorf("audit relay: lease: %w", err)
	}
	r.mu.Lock()
	r.leaseUntil = now.Add(r.cfg.LeaseTTL)
	r.mu.Unlock()
	return true, nil
}

// release gives the lease up so that another replica's relay takes over at once.
func (r *Relay) release() {
	r.mu.Lock()
	held := !r.leaseUntil.IsZero()
	r.leaseUntil = time.Time{}
	r.mu.Unlock()
	if held {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = r.cfg.Store.ReleaseAuditRelayLease(ctx, r.cfg.Holder)
	}
}

// send publishes recs in order and waits for their acknowledgements in order.
// done holds the ids of the acknowledged prefix (plus the rows NATS can never
// take, which are counted and skipped); the rest stay pending for the next round.
func (r *Relay) send(ctx context.Context, recs []storage.AuditRecord) (done []string, err error) {
	type sent struct {
		id  string
		ack *notify.AuditAck // nil: unpublishable, skipped
	}
	pending := make([]sent, 0, len(recs))
	for i := range recs {
		ack, perr := r.cfg.Events.PublishAuditAsync(toNotify(fromRecord(&recs[i])))
		if errors.Is(perr, notify.ErrInvalidEvent) {
			r.cfg.Metrics.addDropped()
			r.cfg.Log.ErrorContext(ctx, "audit event can never be published; kept in the store only",
				"id", recs[i].ID, "event", recs[i].Event, "error", perr.Error())
			pending = append(pending, sent{id: recs[i].ID})
			continue
		}
		if perr != nil {
			err = perr
			break
		}
		pending = append(pending, sent{id: recs[i].ID, ack: ack})
	}
	wctx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
	defer cancel()
	published := 0
	for _, p := range pending {
		if p.ack != nil {
			if werr := p.ack.Wait(wctx); werr != nil {
				err = werr
				break
			}
			published++
		}
		done = append(done, p.id)
	}
	r.cfg.Metrics.addPublished(published)
	r.cfg.Metrics.addFailed(len(recs) - len(done))
	return done, err
}

// fail notes a failed round; the first of an outage is logged.
func (r *Relay) fail(ctx context.Context, err error) {
	r.mu.Lock()
	first := !r.failing
	if first {
		r.failing, r.failedAt, r.failures = true, time.Now(), 0
	}
	r.failures++
	r.lastErr = err
	r.mu.Unlock()
	if first {
		r.cfg.Log.WarnContext(ctx, "audit relay: publishing to NATS fails; events wait in the store and are retried",
			"error", err.Error())
	}
}

// ok notes a round that did not fail; the first after an outage is logged.
func (r *Relay) ok(ctx context.Context) {
	r.mu.Lock()
	was, since, rounds := r.failing, r.failedAt, r.failures
	r.failing, r.lastErr = false, nil
	r.mu.Unlock()
	if was {
		r.cfg.Log.InfoContext(ctx, "audit relay: publishing to NATS recovered",
			"failing_for", time.Since(since).Round(time.Millisecond).String(), "failed_rounds", rounds)
	}
}
