package audit

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/twofactor/twofactor/storage"
)

// TrailConfig configures a Trail; zero values mean defaults.
type TrailConfig struct {
	Store *storage.Store // required
	// Log receives one line per event (LogRecorder) and the store's refusals; nil:
	// neither.
	Log     *slog.Logger
	Metrics *Metrics
	// Stored, if set, is called after the writer has stored a batch (the relay's
	// Kick, so that it publishes at once instead of at its next poll).
	Stored func()
	// BatchSize caps the events one INSERT writes (default 256).
	BatchSize int
	// QueueSize is how many events may wait for the writer (default 8192).
	QueueSize int
	// Linger is how long the writer waits for more events to join a batch that is
	// not full (default 2 ms; negative: not at all). A flush ends the wait.
	Linger time.Duration
	// Now stamps an event recorded without a time (default time.Now).
	Now func() time.Time
}

// Trail is the audit trail's writing side, the Recorder authd injects into the
// server. Record writes every event as a pending row of the outbox (the
// audit_events table); the Relay publishes those rows to NATS. Record never
// touches NATS.
//
//   - Inside a transaction (ctx from storage.Store.InTx) the row is inserted in
//     that transaction: it commits, or rolls back, with the action it records, so
//     a crash never loses the record of a committed action.
//   - Otherwise the event goes to one writer goroutine, which stores whatever has
//     queued up meanwhile, and what joins within Linger, in one multi-row INSERT.
//     When the queue is full (or the trail closed), Record stores the event itself.
//     Such an event is in the store once Flush or Close has returned after it,
//     normally within a few milliseconds; a crash (not a graceful stop) loses the
//     ones still queued: at most QueueSize plus BatchSize, those of the last few
//     milliseconds.
//
// A row the store refuses is logged and counted (twofactor_audit_lost_total); it
// never fails the RPC. A batch the store refuses is retried event by event, so one
// bad event costs only itself.
type Trail struct {
	cfg     TrailConfig
	mu      sync.RWMutex // held for reading while queueing; for writing by Close
	closed  bool
	queue   chan item
	stopped chan struct{}
}

// item is one queued event, or (stored != nil) a flush marker, closed once the
// events before it are in the store.
type item struct {
	e      Event
	stored chan struct{}
}

// NewTrail starts a trail's writer; Close stops it.
func NewTrail(cfg TrailConfig) *Trail {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 256
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 8192
	}
	if cfg.Linger == 0 {
		cfg.Linger = 2 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	t := &Trail{cfg: cfg, queue: make(chan item, cfg.QueueSize), stopped: make(chan struct{})}
	go t.writer()
	return t
}

// complete gives an event recorded without an id a fresh version-7 UUID (ids
// are the rows' primary key: a second event without one would be lost) and one
// without a time the trail's clock.
func (t *Trail) complete(e *Event) {
	if e.ID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			id = uuid.New()
		}
		e.ID = id.String()
	}
	if e.Time.IsZero() {
		e.Time = t.cfg.Now().UTC()
	}
}

// Record logs e and writes it to the outbox (see Trail); a store failure is
// logged and counted.
func (t *Trail) Record(ctx context.Context, e Event) {
	t.complete(&e)
	if t.cfg.Log != nil {
		LogRecorder{Log: t.cfg.Log}.Record(ctx, e)
	}
	if err := t.Append(ctx, e); err != nil {
		t.lost(ctx, e, err)
	}
}

// RecordTx logs events and, when ctx carries a transaction, inserts them in it
// with one multi-row INSERT, returning its error so that the caller rolls back
// the action they record (nothing half-written). Outside a transaction it is
// Record of each event, and returns nil.
func (t *Trail) RecordTx(ctx context.Context, events ...Event) error {
	if !t.cfg.Store.InTransaction(ctx) {
		for _, e := range events {
			t.Record(ctx, e)
		}
		return nil
	}
	recs := make([]*storage.AuditRecord, len(events))
	for i, e := range events {
		t.complete(&e)
		if t.cfg.Log != nil {
			LogRecorder{Log: t.cfg.Log}.Record(ctx, e)
		}
		recs[i] = toRecord(e)
	}
	return t.cfg.Store.AddAuditEvents(ctx, recs)
}

// Append writes e to the outbox without logging it. Inside a transaction it
// returns the INSERT's error, for a caller that rolls the action back when its
// record cannot be kept; otherwise it queues e and returns nil (a later store
// failure is logged and counted).
func (t *Trail) Append(ctx context.Context, e Event) error {
	t.complete(&e)
	if t.cfg.Store.InTransaction(ctx) {
		return t.cfg.Store.AddAuditEvent(ctx, toRecord(e))
	}
	t.mu.RLock()
	queued := false
	if !t.closed {
		select {
		case t.queue <- item{e: e}:
			queued = true
		default: // full: write it ourselves rather than drop it
		}
	}
	t.mu.RUnlock()
	if !queued {
		// The event outlives a caller that hung up.
		if err := t.cfg.Store.AddAuditEvent(context.WithoutCancel(ctx), toRecord(e)); err != nil {
			t.lost(ctx, e, err)
		}
		t.stored()
	}
	return nil
}

// Flush returns once every event queued before it was called is stored (or
// counted as lost), or when ctx ends. It never waits for NATS: that is the relay's.
func (t *Trail) Flush(ctx context.Context) error {
	it := item{stored: make(chan struct{})}
	t.mu.RLock()
	if t.closed {
		t.mu.RUnlock()
		return nil // Close stored everything; later events were written synchronously
	}
	select {
	case t.queue <- it:
	case <-ctx.Done():
		t.mu.RUnlock()
		return ctx.Err()
	}
	t.mu.RUnlock()
	select {
	case <-it.stored:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stores what is queued and stops the writer; events recorded afterwards
// are written synchronously. It waits for the writer at most until ctx ends.
func (t *Trail) Close(ctx context.Context) error {
	t.mu.Lock()
	if !t.closed {
		t.closed = true
		close(t.queue) // no sender is left: senders hold the read lock
	}
	t.mu.Unlock()
	select {
	case <-t.stopped:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// writer stores queued events: it takes the first waiting event and everything
// queued behind it (up to BatchSize, lingering for more), writes them, and repeats.
func (t *Trail) writer() {
	defer close(t.stopped)
	batch := make([]Event, 0, t.cfg.BatchSize)
	for {
		first, ok := <-t.queue
		if !ok {
			return
		}
		var flushes []chan struct{}
		batch, flushes, ok = t.gather(first, batch[:0])
		t.write(batch)
		for _, f := range flushes {
			close(f)
		}
		if !ok {
			return
		}
	}
}

// gather collects a batch starting with first: what is queued, then what comes
// within the linger, until the batch is full or a flush marker arrives. open is
// false once the queue is closed.
func (t *Trail) gather(first item, batch []Event) (_ []Event, flushes []chan struct{}, open bool) {
	add := func(it item) {
		if it.stored != nil {
			flushes = append(flushes, it.stored)
		} else {
			batch = append(batch, it.e)
		}
	}
	add(first)
	var linger <-chan time.Time
	if t.cfg.Linger > 0 {
		timer := time.NewTimer(t.cfg.Linger)
		defer timer.Stop()
		linger = timer.C
	}
	for len(batch) < t.cfg.BatchSize && flushes == nil {
		var (
			it item
			ok bool
		)
		select { // what is queued first, then (lingering) what comes
		case it, ok = <-t.queue:
		default:
			if linger == nil {
				return batch, flushes, true
			}
			select {
			case it, ok = <-t.queue:
			case <-linger:
				return batch, flushes, true
			}
		}
		if !ok {
			return batch, flushes, false
		}
		add(it)
	}
	return batch, flushes, true
}

// write stores batch in one INSERT, or event by event if that fails.
func (t *Trail) write(batch []Event) {
	if len(batch) == 0 {
		return
	}
	ctx := context.Background()
	recs := make([]*storage.AuditRecord, len(batch))
	for i := range batch {
		recs[i] = toRecord(batch[i])
	}
	if err := t.cfg.Store.AddAuditEvents(ctx, recs); err != nil {
		if len(recs) == 1 {
			t.lost(ctx, batch[0], err)
		} else {
			for i, r := range recs {
				if err := t.cfg.Store.AddAuditEvent(ctx, r); err != nil {
					t.lost(ctx, batch[i], err)
				}
			}
		}
	}
	t.stored()
}

func (t *Trail) stored() {
	if t.cfg.Stored != nil {
		t.cfg.Stored()
	}
}

// lost counts and logs an event the store refused: a real loss, so one line each.
func (t *Trail) lost(ctx context.Context, e Event, err error) {
	t.cfg.Metrics.addLost()
	if t.cfg.Log != nil {
		t.cfg.Log.ErrorContext(ctx, "audit event not stored", "event", e.Event, "id", e.ID,
			"request_id", e.RequestID, "error", err.Error())
	}
}
