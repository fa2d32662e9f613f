package server

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/twofactor/twofactor/notify"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/storage"
)

// AuditEvent is one security-relevant event. It never holds a secret. Event is one
// of notify's Event* names; the fields are those of notify.AuditEvent (schema v1).
type AuditEvent struct {
	ID        string // filled by the server: one id in the store and on NATS
	Time      time.Time
	Event     string // e.g. notify.EventChallengeAccepted
	UserID    string
	Actor     string // the human admin acting, if any
	Caller    string // the API key that called
	Method    string
	Result    string
	ClientIP  string
	UserAgent string
	RequestID string
	Details   map[string]string
}

// Auditor records audit events (to the store and NATS, or a log).
type Auditor interface {
	Record(ctx context.Context, e AuditEvent)
}

// LogAuditor writes audit events as structured log lines.
type LogAuditor struct{ Log *slog.Logger }

// Record logs e.
func (a LogAuditor) Record(ctx context.Context, e AuditEvent) {
	attrs := []slog.Attr{
		slog.String("event", e.Event), slog.String("id", e.ID), slog.String("user", e.UserID), slog.String("caller", e.Caller),
		slog.String("method", e.Method), slog.String("result", e.Result), slog.String("client_ip", e.ClientIP),
		slog.String("request_id", e.RequestID),
	}
	if e.Actor != "" {
		attrs = append(attrs, slog.String("actor", e.Actor))
	}
	for k, v := range e.Details {
		attrs = append(attrs, slog.String("detail."+k, v))
	}
	a.Log.LogAttrs(ctx, slog.LevelInfo, "audit", attrs...)
}

// TrailAuditor keeps the audit trail: every event is written to the store (where
// ListAuditEvents reads it) and published on NATS as <prefix>.audit.<event> (where
// SIEMs and `authctl audit tail` follow it), and logged. The event id is the row's
// primary key and the JetStream message id, so a retried publish is stored once.
//
// The log line is written before Record returns. Storing and publishing happen off
// the request path: Record queues the event for one writer goroutine, which stores
// whatever has queued up meanwhile, and what joins within Linger (2 ms), in one
// multi-row INSERT (at most BatchSize events) and then publishes each event
// without waiting for JetStream's acknowledgement; the acknowledgements are
// checked in order in the background. Events therefore reach the store and NATS
// in the order they were recorded, at most Linger plus one write after Record
// (Flush does not wait for the linger). When the queue
// (QueueSize) is full, Record stores and publishes the event itself, synchronously,
// rather than dropping it.
//
// Durability bound: an event is in the store once Flush (or Close) has returned
// after its Record, normally within a few milliseconds. A crash of the process
// (not a graceful stop: Server.Close flushes) loses the events still queued or
// in the batch being written — at most QueueSize plus BatchSize events, in practice
// those of the last few milliseconds. The action an event records (a login, a
// revocation) is never undone by that loss.
//
// A failure to store or publish never fails the RPC whose event it is (the action
// has happened): it is logged and counted in twofactor_audit_failures_total
// (sink "store" or "nats"). A batch the store refuses is retried event by event,
// so one bad event costs only itself.
type TrailAuditor struct {
	Store   *storage.Store
	Events  *notify.Publisher // nil: store and log only
	Log     *slog.Logger
	Metrics *Metrics
	// PublishTimeout bounds the wait for one event's JetStream acknowledgement
	// (default 2 s), and a synchronous publish.
	PublishTimeout time.Duration
	// BatchSize caps the events one INSERT writes (default 256).
	BatchSize int
	// QueueSize is how many events may wait for the writer (default 8192).
	QueueSize int
	// Linger is how long the writer waits for more events to join a batch that
	// is not full (default 2 ms; negative: not at all). A flush ends the wait. Under
	// load it turns many one-event commits into few larger ones: each commit
	// writes the table's and its three indexes' pages again.
	Linger time.Duration

	once    sync.Once
	mu      sync.RWMutex // held for reading while queueing; for writing by Close
	closed  bool
	queue   chan auditItem
	acks    chan auditAck
	stopped chan struct{}
}

// auditItem is one queued event, or (flushed != nil) a flush marker: stored is
// closed once the events before it are in the store, flushed once their
// publications are acknowledged too.
type auditItem struct {
	e       AuditEvent
	stored  chan struct{}
	flushed chan struct{}
}

// auditAck is one pending JetStream acknowledgement, or (flushed != nil) the
// marker of a flush, closed once every acknowledgement before it is checked.
type auditAck struct {
	e       AuditEvent
	ack     *notify.AuditAck
	sent    time.Time
	flushed chan struct{}
}

func (a *TrailAuditor) start() {
	a.once.Do(func() {
		size := a.QueueSize
		if size <= 0 {
			size = 8192
		}
		a.queue = make(chan auditItem, size)
		a.acks = make(chan auditAck, size)
		a.stopped = make(chan struct{})
		go a.writer()
		go a.acker()
	})
}

// Record logs e and queues it for the store and NATS.
func (a *TrailAuditor) Record(ctx context.Context, e AuditEvent) {
	ctx = context.WithoutCancel(ctx) // the event outlives a caller that hung up
	if a.Log != nil {
		LogAuditor{Log: a.Log}.Record(ctx, e)
	}
	if a.Store == nil && a.Events == nil {
		return
	}
	a.start()
	a.mu.RLock()
	queued := false
	if !a.closed {
		select {
		case a.queue <- auditItem{e: e}:
			queued = true
		default: // full: write it ourselves rather than drop it
		}
	}
	a.mu.RUnlock()
	if !queued {
		a.recordSync(ctx, e)
	}
}

// Flush returns once every event recorded before it was called is stored and its
// publication acknowledged (or counted as failed), or when ctx ends.
func (a *TrailAuditor) Flush(ctx context.Context) error { return a.flush(ctx, false) }

// FlushStore returns once every event recorded before it was called is stored (or
// counted as failed), without waiting for NATS, or when ctx ends.
func (a *TrailAuditor) FlushStore(ctx context.Context) error { return a.flush(ctx, true) }

func (a *TrailAuditor) flush(ctx context.Context, storeOnly bool) error {
	if a.Store == nil && a.Events == nil {
		return nil
	}
	a.start()
	it := auditItem{stored: make(chan struct{}), flushed: make(chan struct{})}
	a.mu.RLock()
	if a.closed {
		a.mu.RUnlock()
		return nil // Close flushed everything; later events were written synchronously
	}
	select {
	case a.queue <- it:
	case <-ctx.Done():
		a.mu.RUnlock()
		return ctx.Err()
	}
	a.mu.RUnlock()
	done := it.flushed
	if storeOnly {
		done = it.stored
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close flushes the trail and stops its goroutines; events recorded afterwards
// are written synchronously. It waits for the writer at most until ctx ends.
func (a *TrailAuditor) Close(ctx context.Context) error {
	a.start()
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	close(a.queue) // no sender is left: senders hold the read lock
	a.mu.Unlock()
	select {
	case <-a.stopped:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (a *TrailAuditor) batchSize() int {
	if a.BatchSize <= 0 {
		return 256
	}
	return a.BatchSize
}

func (a *TrailAuditor) linger() time.Duration {
	if a.Linger == 0 {
		return 2 * time.Millisecond
	}
	return a.Linger
}

func (a *TrailAuditor) publishTimeout() time.Duration {
	if a.PublishTimeout <= 0 {
		return 2 * time.Second
	}
	return a.PublishTimeout
}

// writer stores and publishes queued events: it takes the first waiting event and
// everything queued behind it (up to BatchSize), writes them, and repeats.
func (a *TrailAuditor) writer() {
	defer func() {
		close(a.acks)
	}()
	max := a.batchSize()
	batch := make([]AuditEvent, 0, max)
	for {
		it, ok := <-a.queue
		if !ok {
			return
		}
		var flushes []auditItem
		add := func(it auditItem) {
			if it.flushed != nil {
				flushes = append(flushes, it)
			} else {
				batch = append(batch, it.e)
			}
		}
		add(it)
		open := true
		var (
			linger <-chan time.Time
			timer  *time.Timer
		)
		if d := a.linger(); d > 0 {
			timer = time.NewTimer(d)
			linger = timer.C
		}
	gather:
		for len(batch) < max && flushes == nil {
			var (
				it auditItem
				ok bool
			)
			select { // what is queued first, then (lingering) what comes
			case it, ok = <-a.queue:
			default:
				if linger == nil {
					break gather
				}
				select {
				case it, ok = <-a.queue:
				case <-linger:
					break gather
				}
			}
			if !ok {
				open = false
				break
			}
			add(it)
		}
		if timer != nil {
			timer.Stop()
		}
		a.write(batch)
		batch = batch[:0]
		for _, f := range flushes {
			close(f.stored)
			a.acks <- auditAck{flushed: f.flushed}
		}
		if !open {
			return
		}
	}
}

// write stores batch (one INSERT; event by event if that fails) and publishes it.
func (a *TrailAuditor) write(batch []AuditEvent) {
	if len(batch) == 0 {
		return
	}
	ctx := context.Background()
	if a.Store != nil {
		recs := make([]*storage.AuditRecord, len(batch))
		for i := range batch {
			recs[i] = auditRecord(batch[i])
		}
		if err := a.Store.AddAuditEvents(ctx, recs); err != nil {
			if len(recs) == 1 {
				a.failed(ctx, "store", batch[0], err)
			} else {
				for i, r := range recs {
					if err := a.Store.AddAuditEvent(ctx, r); err != nil {
						a.failed(ctx, "store", batch[i], err)
					}
				}
			}
		}
	}
	if a.Events != nil {
		now := time.Now()
		for _, e := range batch {
			ack, err := a.Events.PublishAuditAsync(notifyEvent(e))
			if err != nil {
				a.failed(ctx, "nats", e, err)
				continue
			}
			a.acks <- auditAck{e: e, ack: ack, sent: now}
		}
	}
}

// acker checks acknowledgements in order, each against its own deadline.
func (a *TrailAuditor) acker() {
	defer close(a.stopped)
	timeout := a.publishTimeout()
	for p := range a.acks {
		if p.flushed != nil {
			close(p.flushed)
			continue
		}
		ctx, cancel := context.WithDeadline(context.Background(), p.sent.Add(timeout))
		if err := p.ack.Wait(ctx); err != nil {
			a.failed(ctx, "nats", p.e, err)
		}
		cancel()
	}
}

// recordSync stores and publishes e on the caller's goroutine (queue full, or
// the trail closed).
func (a *TrailAuditor) recordSync(ctx context.Context, e AuditEvent) {
	if a.Store != nil {
		if err := a.Store.AddAuditEvent(ctx, auditRecord(e)); err != nil {
			a.failed(ctx, "store", e, err)
		}
	}
	if a.Events != nil {
		pctx, cancel := context.WithTimeout(ctx, a.publishTimeout())
		defer cancel()
		if err := a.Events.PublishAudit(pctx, notifyEvent(e)); err != nil {
			a.failed(ctx, "nats", e, err)
		}
	}
}

func auditRecord(e AuditEvent) *storage.AuditRecord {
	return &storage.AuditRecord{
		ID: e.ID, Time: e.Time, Event: e.Event, UserID: e.UserID, Actor: e.Actor, Caller: e.Caller,
		Method: e.Method, Result: e.Result, ClientIP: e.ClientIP, UserAgent: e.UserAgent,
		RequestID: e.RequestID, Details: e.Details,
	}
}

func notifyEvent(e AuditEvent) notify.AuditEvent {
	return notify.AuditEvent{
		ID: e.ID, Time: e.Time, Event: e.Event, UserID: e.UserID, Actor: e.Actor, Caller: e.Caller,
		Method: e.Method, Result: e.Result, ClientIP: e.ClientIP, UserAgent: e.UserAgent,
		RequestID: e.RequestID, Details: e.Details,
	}
}

func (a *TrailAuditor) failed(ctx context.Context, sink string, e AuditEvent, err error) {
	if a.Metrics != nil {
		a.Metrics.auditFailures.WithLabelValues(sink).Inc()
	}
	if a.Log != nil {
		a.Log.ErrorContext(ctx, "audit event not written", "sink", sink, "event", e.Event, "id", e.ID,
			"request_id", e.RequestID, "error", err.Error())
	}
}

// auditFlusher is an Auditor that buffers (TrailAuditor).
type auditFlusher interface {
	Flush(ctx context.Context) error
	Close(ctx context.Context) error
}

// FlushAudit returns once every audit event recorded so far is in the store and
// acknowledged by NATS (or counted as failed), or when ctx ends. Tests call it
// before they read audit rows straight from the database or count failures.
func (s *Server) FlushAudit(ctx context.Context) error {
	if f, ok := s.auditor.(auditFlusher); ok {
		return f.Flush(ctx)
	}
	return nil
}

// flushAuditStore waits until this replica's audit events so far are in the
// store (not for NATS): ListAuditEvents reads its own writes.
func (s *core) flushAuditStore(ctx context.Context) error {
	if f, ok := s.auditor.(interface{ FlushStore(context.Context) error }); ok {
		return f.FlushStore(ctx)
	}
	return nil
}

// audit fills the fields every event shares and records it.
func (s *core) audit(ctx context.Context, client *pb.ClientContext, e AuditEvent) {
	// A version 7 UUID grows with time, so events of one instant (and of one
	// injected clock) still list in the order they happened.
	id, err := uuid.NewV7()
	if err != nil {
		id = uuid.New()
	}
	e.ID = id.String()
	e.Time = s.now().UTC()
	e.Caller = callerID(ctx)
	e.RequestID = requestIDFrom(ctx)
	if client != nil {
		e.ClientIP, e.UserAgent = client.GetIp(), client.GetUserAgent()
	}
	s.auditor.Record(ctx, e)
}
