package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Message is one JetStream message handed to a worker's Handler.
type Message struct {
	// ID is the publisher's message id (Nats-Msg-Id: the challenge id for gateway sends
	// and push requests), or "<stream>-<sequence>" when the publisher set none.
	ID        string
	Subject   string
	Data      []byte
	Header    nats.Header
	Attempt   int // 1 for the first delivery
	StreamSeq uint64
	Published time.Time
}

// Handler delivers one message. Returning nil acknowledges it; RetryAfter chooses the
// retry delay; Permanent dead-letters at once; any other error retries with backoff.
// Error texts end up in dead-letter headers and status events: never put a code,
// destination credential or token in them.
type Handler func(ctx context.Context, m Message) error

// RetryAfter is a Handler error asking for the next attempt no sooner than D, as when a
// provider answers HTTP 429 with Retry-After (RFC 9110 §10.2.3).
type RetryAfter struct {
	D   time.Duration
	Err error // optional cause
}

func (r RetryAfter) Error() string {
	if r.Err != nil {
		return fmt.Sprintf("retry after %v: %v", r.D, r.Err)
	}
	return fmt.Sprintf("retry after %v", r.D)
}

func (r RetryAfter) Unwrap() error { return r.Err }

// Permanent is a Handler error saying that retrying cannot help (unknown destination,
// undecodable payload): the message is dead-lettered at once. Reason, one of the Reason*
// constants (default ReasonRejected), goes into the failed GatewayStatus, so that an
// operator alert such as ReasonCaptchaRequired can be told apart.
type Permanent struct {
	Err    error
	Reason string
}

func (p Permanent) Error() string { return "permanent failure: " + p.Err.Error() }
func (p Permanent) Unwrap() error { return p.Err }

// Expired is a Handler error saying that the message is no longer worth delivering (its
// one-time code expired): the message is removed without a dead letter, and a
// StatusFailed with ReasonExpired is published.
type Expired struct{ At time.Time }

func (e Expired) Error() string { return "expired at " + e.At.UTC().Format(time.RFC3339) }

// Outcome results reported through WorkerConfig.Observe.
const (
	OutcomeDelivered    = "delivered"     // handler succeeded, message acknowledged
	OutcomeDuplicate    = "duplicate"     // id already delivered: acknowledged without handler
	OutcomeRetry        = "retry"         // handed back for another attempt after Delay
	OutcomeDeadLettered = "dead_lettered" // published to the dead-letter subject, terminated
	OutcomeExpired      = "expired"       // handler said Expired: removed, not delivered
	OutcomeAbandoned    = "abandoned"     // left unacknowledged (test crash hook, shutdown)
)

// Outcome describes what a worker did with one delivery.
type Outcome struct {
	Result  string
	Message Message
	Delay   time.Duration // for OutcomeRetry
	Err     error         // the handler error, if any
}

// WorkerConfig configures a Worker. Stream, Durable and FilterSubjects are required.
type WorkerConfig struct {
	Names          Names
	Stream         string   // e.g. names.GatewayStream()
	Durable        string   // durable consumer shared by every replica, e.g. "notifyd-email"
	FilterSubjects []string // e.g. names.GatewaySend("email")
	// MaxDeliver is the number of attempts before dead-lettering; default 5.
	MaxDeliver int
	// Backoff gives the delay after failed attempt n (1-based); default
	// ExponentialBackoff(time.Second, 5*time.Minute).
	Backoff func(attempt int) time.Duration
	// AckWait is how long the server waits for an ack before redelivering; the worker
	// extends it while the handler runs. Default 30s.
	AckWait time.Duration
	// Concurrency is the number of messages handled at once; default 1.
	Concurrency int
	// Slots, when set, bounds the handlers in flight instead of Concurrency: a
	// semaphore (a buffered channel, one token per running handler) shared with
	// other workers, so that several consumers of one channel (notifyd's codes and
	// notices) together run at most cap(Slots) handlers. Concurrency still sizes
	// the pulls.
	Slots chan struct{}
	// DrainTimeout is how long handlers in flight may go on after Run's context ended
	// (graceful stop: a code being sent is sent, not cut off); their context is
	// cancelled after it. Default 0: cancelled at once.
	DrainTimeout time.Duration
	// Now is the clock for status events and delivered-id records; default time.Now.
	Now func() time.Time
	// ReportDelivered also publishes a StatusDelivered GatewayStatus after each success.
	ReportDelivered bool
	// NoStatus publishes no GatewayStatus at all (consumers of non-gateway subjects, and
	// of the status subject itself).
	NoStatus bool
	// DeadLetterPayload returns the body stored in the dead-letter stream. The default
	// blanks the code of a GatewaySend and keeps other payloads as they are.
	DeadLetterPayload func(Message) []byte
	// Observe, if set, is called after each delivery is settled (metrics, tests).
	Observe func(Outcome)
	// AfterRecord is fault injection for tests (nil in production): it runs after the
	// delivered id is recorded and before the acknowledgement; returning true simulates
	// a crash at that point (the message is left unacknowledged).
	AfterRecord func(Message) bool
	// Logger receives operational errors; default slog.Default().
	Logger *slog.Logger
}

// ExponentialBackoff returns base·2^(n-1) for attempt n, capped at max.
func ExponentialBackoff(base, max time.Duration) func(attempt int) time.Duration {
	return func(attempt int) time.Duration {
		d := base
		for i := 1; i < attempt && d < max; i++ {
			d *= 2
		}
		if d > max {
			d = max
		}
		return d
	}
}

// Worker is a durable pull consumer that delivers each message at most once per
// remembered id and at least once otherwise: it acknowledges only after the handler
// succeeded, retries with backoff, dead-letters after MaxDeliver attempts, and records
// delivered ids in the DeliveredBucket so that a redelivery after a crash between
// delivery and acknowledgement is acknowledged without delivering again.
type Worker struct {
	js   jetstream.JetStream
	cons jetstream.Consumer
	kv   jetstream.KeyValue
	cfg  WorkerConfig
	h    Handler
	pub  *Publisher
	log  *slog.Logger

	// afterRemember is a test hook run after the delivered id is recorded and before the
	// acknowledgement; returning true simulates a crash at that point.
	afterRemember func(Message) bool
}

func (cfg *WorkerConfig) defaults() {
	if cfg.MaxDeliver <= 0 {
		cfg.MaxDeliver = 5
	}
	if cfg.Backoff == nil {
		cfg.Backoff = ExponentialBackoff(time.Second, 5*time.Minute)
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = 30 * time.Second
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 1
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.DeadLetterPayload == nil {
		names := cfg.Names
		cfg.DeadLetterPayload = func(m Message) []byte { return redactGatewayCode(names, m) }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
}

// NewWorker creates or binds the durable consumer and opens the delivered-ids bucket
// (created by EnsureStreams).
func NewWorker(ctx context.Context, js jetstream.JetStream, cfg WorkerConfig, h Handler) (*Worker, error) {
	if cfg.Stream == "" || len(cfg.FilterSubjects) == 0 {
		return nil, errors.New("notify: worker: Stream and FilterSubjects are required")
	}
	if err := validToken("worker durable name", cfg.Durable); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errors.New("notify: worker: handler is nil")
	}
	if cfg.Slots != nil && cap(cfg.Slots) == 0 {
		return nil, errors.New("notify: worker: Slots needs room for one handler at least")
	}
	cfg.defaults()
	cc := jetstream.ConsumerConfig{
		Durable:       cfg.Durable,
		Description:   "twofactor delivery worker",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		// The worker counts attempts itself so that the last one is dead-lettered; the
		// server must not silently stop redelivering first.
		MaxDeliver:    -1,
		MaxAckPending: 4 * cfg.Concurrency,
	}
	if len(cfg.FilterSubjects) == 1 {
		cc.FilterSubject = cfg.FilterSubjects[0]
	} else {
		cc.FilterSubjects = cfg.FilterSubjects
	}
	cons, err := durableConsumer(ctx, js, cfg.Stream, cc)
	if err != nil {
		return nil, err
	}
	kv, err := js.KeyValue(ctx, cfg.Names.DeliveredBucket())
	if err != nil {
		return nil, fmt.Errorf("notify: worker %s: delivered-ids bucket %s (run EnsureStreams first): %w", cfg.Durable, cfg.Names.DeliveredBucket(), err)
	}
	return &Worker{
		js: js, cons: cons, kv: kv, cfg: cfg, h: h,
		pub: NewPublisher(js, nil, cfg.Names).WithClock(cfg.Now),
		log: cfg.Logger.With("worker", cfg.Durable),
	}, nil
}

// Run handles messages until ctx ends, then stops taking new ones and waits for the
// handlers in flight, which keep their context for DrainTimeout.
func (w *Worker) Run(ctx context.Context) error {
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hcancel()
	sem := w.cfg.Slots
	if sem == nil {
		sem = make(chan struct{}, w.cfg.Concurrency)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var handBack []jetstream.Msg // received while stopping; naked once unsubscribed
	cc, err := w.cons.Consume(func(msg jetstream.Msg) {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			mu.Lock()
			handBack = append(handBack, msg)
			mu.Unlock()
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			w.process(hctx, msg)
		}()
	}, jetstream.PullMaxMessages(2*w.cfg.Concurrency))
	if err != nil {
		return fmt.Errorf("notify: worker %s: consume: %w", w.cfg.Durable, err)
	}
	<-ctx.Done()
	stopDrain := time.AfterFunc(w.cfg.DrainTimeout, hcancel)
	defer stopDrain.Stop()
	cc.Drain() // buffered messages reach the callback, which sets them aside
	<-cc.Closed()
	wg.Wait()
	_ = w.js.Conn().Flush() // the server has dropped our pull requests
	// Hand set-aside messages back at once so another replica takes them now rather
	// than after AckWait.
	mu.Lock()
	for _, m := range handBack {
		_ = m.Nak()
	}
	mu.Unlock()
	_ = w.js.Conn().Flush()
	return nil
}

func (w *Worker) observe(o Outcome) {
	if w.cfg.Observe != nil {
		w.cfg.Observe(o)
	}
}

func (w *Worker) key(id string) string {
	sum := sha256.Sum256([]byte(id))
	return w.cfg.Durable + "." + hex.EncodeToString(sum[:16])
}

func toMessage(msg jetstream.Msg, md *jetstream.MsgMetadata) Message {
	m := Message{
		Subject:   msg.Subject(),
		Data:      msg.Data(),
		Header:    msg.Headers(),
		Attempt:   int(md.NumDelivered),
		StreamSeq: md.Sequence.Stream,
		Published: md.Timestamp,
	}
	m.ID = m.Header.Get(jetstream.MsgIDHeader)
	if m.ID == "" {
		m.ID = md.Stream + "-" + strconv.FormatUint(md.Sequence.Stream, 10)
	}
	return m
}

// settleTimeout bounds the NATS calls made after the handler returned.
const settleTimeout = 10 * time.Second

func (w *Worker) process(ctx context.Context, msg jetstream.Msg) {
	md, err := msg.Metadata()
	if err != nil {
		w.log.Error("message without JetStream metadata", "subject", msg.Subject(), "err", err)
		_ = msg.TermWithReason("no metadata")
		return
	}
	m := toMessage(msg, md)
	key := w.key(m.ID)
	// Settling (ids, acks, dead letters) must finish even when Run is being stopped.
	hctx := ctx
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()

	switch _, err := w.kv.Get(ctx, key); {
	case err == nil:
		w.ack(ctx, msg, m)
		w.observe(Outcome{Result: OutcomeDuplicate, Message: m})
		return
	case !errors.Is(err, jetstream.ErrKeyNotFound):
		// Unsure whether it was delivered: wait rather than risk a second delivery.
		d := w.cfg.Backoff(m.Attempt)
		w.log.Warn("cannot read delivered ids; retrying later", "msg_id", m.ID, "err", err)
		_ = msg.NakWithDelay(d)
		w.observe(Outcome{Result: OutcomeRetry, Message: m, Delay: d, Err: err})
		return
	}

	if m.Attempt > w.cfg.MaxDeliver {
		// Earlier deliveries were never settled (crashes or timeouts).
		w.deadLetter(ctx, msg, m, fmt.Errorf("%d deliveries without acknowledgement", m.Attempt-1))
		return
	}

	herr := w.handle(hctx, msg, m)
	if herr == nil {
		w.delivered(ctx, msg, m, key)
		return
	}
	w.failed(ctx, hctx, msg, m, herr)
}

// delivered records the id, acknowledges and reports a successful delivery.
func (w *Worker) delivered(ctx context.Context, msg jetstream.Msg, m Message, key string) {
	val, _ := json.Marshal(struct {
		At  time.Time `json:"at"`
		Seq uint64    `json:"seq"`
	}{w.cfg.Now().UTC(), m.StreamSeq})
	if _, err := w.kv.Put(ctx, key, val); err != nil {
		// Delivered regardless; acknowledging is still right.
		w.log.Error("cannot record delivered id", "msg_id", m.ID, "err", err)
	}
	if (w.afterRemember != nil && w.afterRemember(m)) || (w.cfg.AfterRecord != nil && w.cfg.AfterRecord(m)) {
		w.observe(Outcome{Result: OutcomeAbandoned, Message: m})
		return
	}
	w.ack(ctx, msg, m)
	if w.cfg.ReportDelivered {
		w.publishStatus(ctx, m, StatusDelivered, nil)
	}
	w.observe(Outcome{Result: OutcomeDelivered, Message: m})
}

// failed settles a failed delivery: handed back when stopping, removed when expired,
// dead-lettered when permanent or out of attempts, otherwise retried after a delay.
func (w *Worker) failed(ctx, hctx context.Context, msg jetstream.Msg, m Message, herr error) {
	if hctx.Err() != nil {
		// Shutting down: hand it back at once so another replica can take it.
		_ = msg.Nak()
		w.observe(Outcome{Result: OutcomeAbandoned, Message: m, Err: herr})
		return
	}
	var exp Expired
	if errors.As(herr, &exp) {
		w.expire(ctx, msg, m, herr)
		return
	}
	var perm Permanent
	if errors.As(herr, &perm) || m.Attempt >= w.cfg.MaxDeliver {
		w.deadLetter(ctx, msg, m, herr)
		return
	}
	d := w.cfg.Backoff(m.Attempt)
	var ra RetryAfter
	if errors.As(herr, &ra) && ra.D > 0 {
		d = ra.D
	}
	if err := msg.NakWithDelay(d); err != nil {
		w.log.Error("cannot nak", "msg_id", m.ID, "err", err)
	}
	w.observe(Outcome{Result: OutcomeRetry, Message: m, Delay: d, Err: herr})
}

// handle runs the handler, keeping the message in progress and turning a panic into an
// error.
func (w *Worker) handle(ctx context.Context, msg jetstream.Msg, m Message) error {
	return inProgressWhile(msg, w.cfg.AckWait, func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("handler panic: %v", r)
			}
		}()
		return w.h(ctx, m)
	})
}

func (w *Worker) ack(ctx context.Context, msg jetstream.Msg, m Message) {
	if err := msg.DoubleAck(ctx); err != nil {
		w.log.Error("cannot ack", "msg_id", m.ID, "err", err)
	}
}

// Dead-letter headers.
const (
	HeaderOriginalSubject = "Twofactor-Original-Subject"
	HeaderOriginalSeq     = "Twofactor-Original-Stream-Seq"
	HeaderAttempts        = "Twofactor-Attempts"
	HeaderError           = "Twofactor-Error"
)

func errText(err error) string {
	if err == nil {
		return ""
	}
	s := strings.ToValidUTF8(strings.NewReplacer("\r", " ", "\n", " ").Replace(err.Error()), "?")
	if len(s) > 512 {
		s = s[:512]
	}
	return s
}

func (w *Worker) deadLetter(ctx context.Context, msg jetstream.Msg, m Message, cause error) {
	attempts := min(m.Attempt, w.cfg.MaxDeliver)
	dl := &nats.Msg{
		Subject: w.cfg.Names.DeadLetter(m.Subject),
		Data:    w.cfg.DeadLetterPayload(m),
		Header:  nats.Header{},
	}
	dl.Header.Set(HeaderOriginalSubject, m.Subject)
	dl.Header.Set(HeaderOriginalSeq, strconv.FormatUint(m.StreamSeq, 10))
	dl.Header.Set(HeaderAttempts, strconv.Itoa(attempts))
	dl.Header.Set(HeaderError, errText(cause))
	_, err := w.js.PublishMsg(ctx, dl, jetstream.WithMsgID("deadletter-"+m.ID))
	if err == nil {
		err = w.publishStatus(ctx, m, StatusFailed, cause)
	}
	if err != nil {
		// Keep the message; both publishes dedupe by id when retried.
		d := w.cfg.Backoff(m.Attempt)
		w.log.Error("cannot dead-letter; retrying later", "msg_id", m.ID, "err", err)
		_ = msg.NakWithDelay(d)
		w.observe(Outcome{Result: OutcomeRetry, Message: m, Delay: d, Err: cause})
		return
	}
	// Acknowledge (not Term): every server version removes an acknowledged message from
	// a work queue, and the dead letter now holds it.
	w.ack(ctx, msg, m)
	w.observe(Outcome{Result: OutcomeDeadLettered, Message: m, Err: cause})
}

// expire removes a message whose code can no longer be used and reports it failed.
func (w *Worker) expire(ctx context.Context, msg jetstream.Msg, m Message, cause error) {
	if err := w.publishStatus(ctx, m, StatusFailed, cause); err != nil {
		d := w.cfg.Backoff(m.Attempt)
		w.log.Error("cannot publish expiry status; retrying later", "msg_id", m.ID, "err", err)
		_ = msg.NakWithDelay(d)
		w.observe(Outcome{Result: OutcomeRetry, Message: m, Delay: d, Err: cause})
		return
	}
	// Acknowledged rather than terminated: every server version removes an acknowledged
	// message from a work queue.
	w.ack(ctx, msg, m)
	w.observe(Outcome{Result: OutcomeExpired, Message: m, Err: cause})
}

// reasonOf classifies a failure for GatewayStatus.Reason.
func reasonOf(state string, cause error) string {
	if state != StatusFailed {
		return ""
	}
	return FailureReason(cause)
}

// FailureReason classifies the error a message failed with into one of the Reason*
// constants, as in GatewayStatus.Reason (metrics use it too).
func FailureReason(cause error) string {
	var perm Permanent
	var exp Expired
	switch {
	case errors.As(cause, &exp):
		return ReasonExpired
	case errors.As(cause, &perm) && perm.Reason != "":
		return perm.Reason
	case errors.As(cause, &perm):
		return ReasonRejected
	}
	return ReasonMaxDeliveries
}

func (w *Worker) publishStatus(ctx context.Context, m Message, state string, cause error) error {
	if w.cfg.NoStatus {
		return nil
	}
	ch, _ := w.cfg.Names.ChannelOf(m.Subject)
	s := GatewayStatus{
		Reason:      reasonOf(state, cause),
		ID:          state + "-" + m.ID,
		ChallengeID: m.Header.Get(jetstream.MsgIDHeader),
		Channel:     ch,
		Subject:     m.Subject,
		State:       state,
		Attempts:    min(m.Attempt, w.cfg.MaxDeliver),
		Error:       errText(cause),
	}
	if w.cfg.Names.KindOf(m.Subject) == KindNotice {
		s.Kind = KindNotice
	}
	err := w.pub.PublishGatewayStatus(ctx, s)
	if err != nil && state == StatusDelivered {
		w.log.Error("cannot publish delivery status", "msg_id", m.ID, "err", err)
	}
	return err
}

// redactGatewayCode blanks the secret part of a GatewaySend (the sealed blob, or the clear
// code and destination of a version-1 payload) so that dead letters, kept for days, hold
// no code (NIST SP 800-63B §5.1.3: the secret is for one use only) and no destination.
func redactGatewayCode(names Names, m Message) []byte {
	ch, ok := names.ChannelOf(m.Subject)
	if !ok || ch == ChannelPush {
		if _, isBinding := names.isBinding(m.Subject); !isBinding {
			return m.Data
		}
	}
	var raw map[string]json.RawMessage
	if json.Unmarshal(m.Data, &raw) != nil {
		return nil // undecodable: do not keep bytes that might hold a code
	}
	for _, f := range []string{"code", "destination", "sealed", "token", "chat_id"} {
		if _, ok := raw[f]; ok {
			raw[f] = json.RawMessage(`"[redacted]"`)
		}
	}
	out, err := json.Marshal(raw)
	if err != nil {
		return nil
	}
	return out
}
