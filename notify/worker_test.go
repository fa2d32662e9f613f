package notify_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/natstest"
)

type workerEnv struct {
	js       jetstream.JetStream
	names    notify.Names
	pub      *notify.Publisher
	outcomes chan notify.Outcome
	key      *notify.DeliveryKey
}

func newWorkerEnv(t *testing.T) *workerEnv {
	nc, js, names := natstest.Start(t)
	key, err := notify.GenerateDeliveryKey()
	if err != nil {
		t.Fatal(err)
	}
	return &workerEnv{js: js, names: names, pub: notify.NewPublisher(js, nc, names).WithDeliveryKey(key),
		outcomes: make(chan notify.Outcome, 100), key: key}
}

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// start runs a worker for the sms channel with a 1ms backoff and the fixed clock.
func (e *workerEnv) start(t *testing.T, mod func(*notify.WorkerConfig), h notify.Handler, hook func(*notify.Worker)) {
	t.Helper()
	cfg := notify.WorkerConfig{
		Names:          e.names,
		Stream:         e.names.GatewayStream(),
		Durable:        "notifyd-sms",
		FilterSubjects: []string{e.names.GatewaySend(notify.ChannelSMS)},
		MaxDeliver:     3,
		Backoff:        func(int) time.Duration { return time.Millisecond },
		Now:            func() time.Time { return testNow },
		Observe:        func(o notify.Outcome) { e.outcomes <- o },
	}
	if mod != nil {
		mod(&cfg)
	}
	w, err := notify.NewWorker(context.Background(), e.js, cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	if hook != nil {
		hook(w)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func (e *workerEnv) send(t *testing.T, id string) notify.GatewaySend {
	t.Helper()
	g := notify.GatewaySend{ChallengeID: id, Channel: notify.ChannelSMS, UserID: "u-1", Destination: "+15550100",
		Code: "424242", ExpiresAt: testNow.Add(10 * time.Minute)}
	if err := e.pub.PublishGatewaySend(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	g.V, g.Kind = notify.GatewaySendVersion, notify.KindCode
	return g
}

// expect waits for the next outcomes and checks their results and attempts.
func (e *workerEnv) expect(t *testing.T, results ...string) []notify.Outcome {
	t.Helper()
	var got []notify.Outcome
	for _, want := range results {
		select {
		case o := <-e.outcomes:
			got = append(got, o)
			if o.Result != want {
				t.Fatalf("outcome %d: %s (attempt %d, err %v), want %s", len(got), o.Result, o.Message.Attempt, o.Err, want)
			}
		case <-time.After(waitLimit):
			t.Fatalf("timed out waiting for outcome %d (%s)", len(got)+1, want)
		}
	}
	return got
}

func (e *workerEnv) streamMsgs(t *testing.T, stream string) uint64 {
	t.Helper()
	s, err := e.js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestWorkerDeliversAndAcks(t *testing.T) {
	e := newWorkerEnv(t)
	got := make(chan notify.GatewaySend, 1)
	e.start(t, func(c *notify.WorkerConfig) { c.ReportDelivered = true }, func(ctx context.Context, m notify.Message) error {
		g, err := notify.DecodeGatewaySend(m.Data)
		if err == nil {
			g, err = e.key.OpenGatewaySend(g)
		}
		if err != nil {
			return notify.Permanent{Err: err}
		}
		g.KeyID, g.Sealed = "", nil
		if m.ID != g.ChallengeID || m.Attempt != 1 {
			return fmt.Errorf("message id %q attempt %d", m.ID, m.Attempt)
		}
		got <- g
		return nil
	}, nil)
	want := e.send(t, "ch-ok")
	e.expect(t, notify.OutcomeDelivered)
	if g := <-got; !reflect.DeepEqual(g, want) {
		t.Fatalf("handler got %+v, want %+v", g, want)
	}
	if n := e.streamMsgs(t, e.names.GatewayStream()); n != 0 {
		t.Fatalf("work queue still holds %d messages after ack", n)
	}
	st := lastStatus(t, e)
	if st.State != notify.StatusDelivered || st.ChallengeID != "ch-ok" || st.Channel != "sms" || st.Attempts != 1 || !st.Time.Equal(testNow) {
		t.Fatalf("status %+v", st)
	}
}

func lastStatus(t *testing.T, e *workerEnv) notify.GatewayStatus {
	t.Helper()
	s, err := e.js.Stream(context.Background(), e.names.GatewayStatusStream())
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(context.Background(), e.names.GatewayStatus())
	if err != nil {
		t.Fatalf("no gateway status: %v", err)
	}
	st, err := notify.DecodeGatewayStatus(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestWorkerRetriesThenSucceeds(t *testing.T) {
	e := newWorkerEnv(t)
	var calls atomic.Int32
	var backoffAttempts []int
	var mu sync.Mutex
	e.start(t, func(c *notify.WorkerConfig) {
		c.MaxDeliver = 5
		c.Backoff = func(n int) time.Duration {
			mu.Lock()
			backoffAttempts = append(backoffAttempts, n)
			mu.Unlock()
			return time.Millisecond
		}
	}, func(ctx context.Context, m notify.Message) error {
		if calls.Add(1) < 3 {
			return errors.New("provider unavailable")
		}
		return nil
	}, nil)
	e.send(t, "ch-retry")
	out := e.expect(t, notify.OutcomeRetry, notify.OutcomeRetry, notify.OutcomeDelivered)
	for i, o := range out {
		if o.Message.Attempt != i+1 {
			t.Errorf("outcome %d at attempt %d", i, o.Message.Attempt)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(backoffAttempts) != "[1 2]" {
		t.Errorf("backoff asked for attempts %v, want [1 2]", backoffAttempts)
	}
	if n := e.streamMsgs(t, e.names.GatewayStream()); n != 0 {
		t.Fatalf("work queue holds %d messages", n)
	}
}

func TestWorkerHonoursRetryAfter(t *testing.T) {
	e := newWorkerEnv(t)
	const delay = 300 * time.Millisecond
	var mu sync.Mutex
	var at []time.Time
	e.start(t, nil, func(ctx context.Context, m notify.Message) error {
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
		if m.Attempt == 1 {
			return notify.RetryAfter{D: delay, Err: errors.New("429 from provider")}
		}
		return nil
	}, nil)
	e.send(t, "ch-429")
	out := e.expect(t, notify.OutcomeRetry, notify.OutcomeDelivered)
	if out[0].Delay != delay {
		t.Errorf("retry delay %v, want %v", out[0].Delay, delay)
	}
	mu.Lock()
	defer mu.Unlock()
	// The injected backoff is 1ms: only the server honouring the nak delay explains a gap
	// of at least `delay` between the attempts.
	if gap := at[1].Sub(at[0]); gap < delay {
		t.Fatalf("second attempt %v after the first, want ≥ %v", gap, delay)
	}
}

func TestWorkerDeadLettersAfterMaxDeliver(t *testing.T) {
	e := newWorkerEnv(t)
	var calls atomic.Int32
	e.start(t, nil, func(ctx context.Context, m notify.Message) error {
		calls.Add(1)
		return errors.New("provider said 503")
	}, nil)
	e.send(t, "ch-dead")
	e.expect(t, notify.OutcomeRetry, notify.OutcomeRetry, notify.OutcomeDeadLettered)
	if c := calls.Load(); c != 3 {
		t.Fatalf("handler called %d times, want MaxDeliver=3", c)
	}
	checkDeadLetter(t, e, "ch-dead", 3, "provider said 503")
}

func checkDeadLetter(t *testing.T, e *workerEnv, id string, attempts int, errText string) {
	t.Helper()
	ctx := context.Background()
	subject := e.names.GatewaySend(notify.ChannelSMS)
	s, err := e.js.Stream(ctx, e.names.DeadLetterStream())
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(ctx, e.names.DeadLetter(subject))
	if err != nil {
		t.Fatalf("no dead letter on %s: %v", e.names.DeadLetter(subject), err)
	}
	for h, want := range map[string]string{
		notify.HeaderOriginalSubject: subject,
		notify.HeaderAttempts:        fmt.Sprint(attempts),
		notify.HeaderError:           errText,
	} {
		if got := m.Header.Get(h); !strings.Contains(got, want) {
			t.Errorf("dead letter header %s = %q, want %q", h, got, want)
		}
	}
	if strings.Contains(string(m.Data), "424242") {
		t.Errorf("dead letter keeps the one-time code: %s", m.Data)
	}
	var body map[string]any
	if err := json.Unmarshal(m.Data, &body); err != nil || body["challenge_id"] != id || body["sealed"] != "[redacted]" ||
		strings.Contains(string(m.Data), "+15550100") {
		t.Errorf("dead letter body %s (err %v)", m.Data, err)
	}
	st := lastStatus(t, e)
	if st.State != notify.StatusFailed || st.ChallengeID != id || st.Channel != notify.ChannelSMS ||
		st.Attempts != attempts || !strings.Contains(st.Error, errText) || !st.Time.Equal(testNow) {
		t.Errorf("failure status %+v", st)
	}
	if n := e.streamMsgs(t, e.names.GatewayStream()); n != 0 {
		t.Errorf("work queue still holds %d messages after dead-lettering", n)
	}
}

func TestWorkerPermanentErrorDeadLettersAtOnce(t *testing.T) {
	e := newWorkerEnv(t)
	e.start(t, nil, func(ctx context.Context, m notify.Message) error {
		return notify.Permanent{Err: errors.New("unknown destination")}
	}, nil)
	e.send(t, "ch-perm")
	e.expect(t, notify.OutcomeDeadLettered)
	checkDeadLetter(t, e, "ch-perm", 1, "unknown destination")
}

func TestWorkerPanicIsAFailure(t *testing.T) {
	e := newWorkerEnv(t)
	e.start(t, func(c *notify.WorkerConfig) { c.MaxDeliver = 1 }, func(ctx context.Context, m notify.Message) error {
		panic("nil map")
	}, nil)
	e.send(t, "ch-panic")
	o := e.expect(t, notify.OutcomeDeadLettered)[0]
	if o.Err == nil || !strings.Contains(o.Err.Error(), "panic") {
		t.Fatalf("err %v", o.Err)
	}
}

// A worker that delivered a message and recorded its id, then died before acknowledging,
// must not deliver it again when the server redelivers it.
func TestWorkerNoDoubleDeliveryAfterCrash(t *testing.T) {
	e := newWorkerEnv(t)
	var calls atomic.Int32
	var crashed atomic.Bool
	e.start(t, func(c *notify.WorkerConfig) { c.AckWait = 300 * time.Millisecond },
		func(ctx context.Context, m notify.Message) error {
			calls.Add(1)
			return nil
		},
		func(w *notify.Worker) {
			notify.SetAfterRemember(w, func(notify.Message) bool { return !crashed.Swap(true) })
		})
	e.send(t, "ch-crash")
	out := e.expect(t, notify.OutcomeAbandoned, notify.OutcomeDuplicate)
	if out[1].Message.Attempt != 2 || out[1].Message.ID != "ch-crash" {
		t.Fatalf("duplicate outcome %+v", out[1].Message)
	}
	if c := calls.Load(); c != 1 {
		t.Fatalf("handler called %d times, want 1", c)
	}
	if n := e.streamMsgs(t, e.names.GatewayStream()); n != 0 {
		t.Fatalf("work queue holds %d messages", n)
	}
}

// Two replicas on one durable share the work: each message is handled exactly once.
func TestWorkerReplicasShareWork(t *testing.T) {
	e := newWorkerEnv(t)
	var mu sync.Mutex
	seen := map[string]int{}
	h := func(ctx context.Context, m notify.Message) error {
		mu.Lock()
		seen[m.ID]++
		mu.Unlock()
		return nil
	}
	e.start(t, func(c *notify.WorkerConfig) { c.Concurrency = 2 }, h, nil)
	e.start(t, func(c *notify.WorkerConfig) { c.Concurrency = 2 }, h, nil)
	const n = 40
	for i := 0; i < n; i++ {
		e.send(t, fmt.Sprintf("ch-%d", i))
	}
	results := make([]string, n)
	for i := range results {
		results[i] = notify.OutcomeDelivered
	}
	e.expect(t, results...)
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != n {
		t.Fatalf("%d distinct messages handled, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("%s handled %d times", id, c)
		}
	}
}

func TestNewWorkerRejects(t *testing.T) {
	_, js, names := natstest.Start(t)
	h := func(context.Context, notify.Message) error { return nil }
	good := notify.WorkerConfig{Names: names, Stream: names.GatewayStream(), Durable: "w", FilterSubjects: []string{names.GatewaySend("sms")}}
	for name, mod := range map[string]func(*notify.WorkerConfig){
		"no stream":      func(c *notify.WorkerConfig) { c.Stream = "" },
		"no filter":      func(c *notify.WorkerConfig) { c.FilterSubjects = nil },
		"dotted name":    func(c *notify.WorkerConfig) { c.Durable = "a.b" },
		"unknown stream": func(c *notify.WorkerConfig) { c.Stream = "NOPE_GATEWAY" },
		"no slots":       func(c *notify.WorkerConfig) { c.Slots = make(chan struct{}) },
	} {
		cfg := good
		mod(&cfg)
		if _, err := notify.NewWorker(context.Background(), js, cfg, h); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := notify.NewWorker(context.Background(), js, good, nil); err == nil {
		t.Error("nil handler accepted")
	}
	if err := js.DeleteKeyValue(context.Background(), names.DeliveredBucket()); err != nil {
		t.Fatal(err)
	}
	if _, err := notify.NewWorker(context.Background(), js, good, h); err == nil || !strings.Contains(err.Error(), "EnsureStreams") {
		t.Errorf("without the delivered-ids bucket: err = %v", err)
	}
}

func TestExponentialBackoff(t *testing.T) {
	b := notify.ExponentialBackoff(time.Second, 10*time.Second)
	for attempt, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 5: 10 * time.Second, 60: 10 * time.Second} {
		if got := b(attempt); got != want {
			t.Errorf("attempt %d: %v, want %v", attempt, got, want)
		}
	}
}

func BenchmarkWorkerDeliver(b *testing.B) {
	nc, js, names := natstest.Start(b)
	key, err := notify.GenerateDeliveryKey()
	if err != nil {
		b.Fatal(err)
	}
	pub := notify.NewPublisher(js, nc, names).WithDeliveryKey(key)
	done := make(chan struct{}, 1024)
	w, err := notify.NewWorker(context.Background(), js, notify.WorkerConfig{
		Names: names, Stream: names.GatewayStream(), Durable: "bench", FilterSubjects: []string{names.GatewaySend("email")},
		Concurrency: 4,
	}, func(context.Context, notify.Message) error { done <- struct{}{}; return nil })
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	i := 0
	for b.Loop() {
		i++
		if err := pub.PublishGatewaySend(ctx, notify.GatewaySend{ChallengeID: fmt.Sprint("b", i), Channel: "email", UserID: "u", Destination: "u@example.com", Code: "123456", ExpiresAt: time.Now().Add(time.Minute)}); err != nil {
			b.Fatal(err)
		}
		<-done
	}
}

// Stopping a worker lets a send in flight finish within DrainTimeout: it is delivered and
// acknowledged, not cut off and handed back.
func TestWorkerDrainsOnStop(t *testing.T) {
	e := newWorkerEnv(t)
	started := make(chan struct{})
	release := make(chan struct{})
	cfg := notify.WorkerConfig{Names: e.names, Stream: e.names.GatewayStream(), Durable: "notifyd-sms",
		FilterSubjects: []string{e.names.GatewaySend(notify.ChannelSMS)}, DrainTimeout: 5 * time.Second,
		Observe: func(o notify.Outcome) { e.outcomes <- o }}
	w, err := notify.NewWorker(context.Background(), e.js, cfg, func(ctx context.Context, m notify.Message) error {
		close(started)
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	e.send(t, "ch-drain")
	<-started
	cancel() // SIGTERM while the provider call is in flight
	select {
	case <-done:
		t.Fatal("Run returned before the send in flight finished")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	e.expect(t, notify.OutcomeDelivered)
	if n := e.streamMsgs(t, e.names.GatewayStream()); n != 0 {
		t.Fatalf("work queue holds %d messages", n)
	}
}
