package notify_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/natstest"
)

const waitLimit = 10 * time.Second

func fullEvent(i int) notify.AuditEvent {
	return notify.AuditEvent{
		ID:        fmt.Sprintf("ev-%03d", i),
		Time:      time.Date(2026, 3, 1, 12, 0, i, 123456789, time.UTC),
		Event:     notify.AuditEvents[i%len(notify.AuditEvents)],
		UserID:    fmt.Sprintf("user-%d", i),
		Actor:     "alice",
		Caller:    "webapp",
		Method:    "totp",
		Result:    "accepted",
		ClientIP:  "2001:db8::1",
		UserAgent: "Mozilla/5.0 \"quoted\"\nnewline",
		RequestID: fmt.Sprintf("req-%d", i),
		Details:   map[string]string{"factor_id": fmt.Sprint(i), "ünïcode": "✓"},
	}
}

// tail runs TailAudit in the background and returns the events it receives; stop ends it
// and returns TailAudit's result.
func tail(t *testing.T, js jetstream.JetStream, names notify.Names, durable string, fromStart bool, fn func(notify.AuditEvent) error) (<-chan notify.AuditEvent, func() error) {
	return tailWith(t, js, names, durable, fromStart, fn)
}

func tailWith(t *testing.T, js jetstream.JetStream, names notify.Names, durable string, fromStart bool, fn func(notify.AuditEvent) error, opts ...notify.TailOption) (<-chan notify.AuditEvent, func() error) {
	t.Helper()
	ch := make(chan notify.AuditEvent, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- notify.TailAudit(ctx, js, names, durable, fromStart, func(e notify.AuditEvent) error {
			if fn != nil {
				if err := fn(e); err != nil {
					return err
				}
			}
			ch <- e
			return nil
		}, opts...)
	}()
	var result error
	stopped := false
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			result = <-done
		}
		return result
	}
	t.Cleanup(func() { _ = stop() })
	return ch, stop
}

func receive(t *testing.T, ch <-chan notify.AuditEvent, n int) []notify.AuditEvent {
	t.Helper()
	var got []notify.AuditEvent
	timeout := time.After(waitLimit)
	for len(got) < n {
		select {
		case e := <-ch:
			got = append(got, e)
		case <-timeout:
			t.Fatalf("received %d of %d events before timeout", len(got), n)
		}
	}
	return got
}

func TestAuditPublishTailInOrder(t *testing.T) {
	nc, js, names := natstest.Start(t)
	pub := notify.NewPublisher(js, nc, names)
	ctx := context.Background()
	const n = 25
	var want []notify.AuditEvent
	for i := 0; i < n; i++ {
		ev := fullEvent(i)
		if err := pub.PublishAudit(ctx, ev); err != nil {
			t.Fatal(err)
		}
		ev.V = notify.SchemaVersion
		want = append(want, ev)
	}
	ch, stop := tail(t, js, names, "siem", true, nil)
	got := receive(t, ch, n)
	if err := stop(); err != nil {
		t.Fatalf("TailAudit: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		for i := range got {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Fatalf("event %d:\n got  %#v\n want %#v", i, got[i], want[i])
			}
		}
	}
	// Subjects carry the event name.
	s, _ := js.Stream(ctx, names.AuditStream())
	m, err := s.GetLastMsgForSubject(ctx, names.Audit(want[n-1].Event))
	if err != nil {
		t.Fatalf("no message on %s: %v", names.Audit(want[n-1].Event), err)
	}
	if m.Header.Get(jetstream.MsgIDHeader) == "" {
		t.Error("audit message has no message id")
	}
}

func TestAuditFillsDefaults(t *testing.T) {
	nc, js, names := natstest.Start(t)
	now := time.Date(2026, 5, 1, 8, 0, 0, 0, time.FixedZone("CEST", 2*3600))
	pub := notify.NewPublisher(js, nc, names).WithClock(func() time.Time { return now })
	if err := pub.PublishAudit(context.Background(), notify.AuditEvent{Event: notify.EventLockout, UserID: "u"}); err != nil {
		t.Fatal(err)
	}
	ch, _ := tail(t, js, names, "defaults", true, nil)
	e := receive(t, ch, 1)[0]
	if e.V != notify.SchemaVersion || len(e.ID) != 36 || !e.Time.Equal(now) || e.Time.Location() != time.UTC {
		t.Fatalf("defaults not filled: %+v", e)
	}
}

func TestAuditOfflineConsumerCatchesUp(t *testing.T) {
	nc, js, names := natstest.Start(t)
	pub := notify.NewPublisher(js, nc, names)
	ctx := context.Background()
	publish := func(from, to int) {
		for i := from; i < to; i++ {
			if err := pub.PublishAudit(ctx, fullEvent(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish(0, 3)
	ch, stop := tail(t, js, names, "offline", true, nil)
	first := receive(t, ch, 3)
	// The handler hands an event over before TailAudit acks it: stop only once
	// the server has the three acks, or the last one is (rightly) redelivered.
	waitAckFloor(t, js, names.AuditStream(), "offline", 3)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	publish(3, 7) // while the consumer is away

	// fromStart=false must not matter for an existing durable: it resumes.
	ch2, stop2 := tail(t, js, names, "offline", false, nil)
	missed := receive(t, ch2, 4)
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range append(first, missed...) {
		ids = append(ids, e.ID)
	}
	if want := "ev-000 ev-001 ev-002 ev-003 ev-004 ev-005 ev-006"; strings.Join(ids, " ") != want {
		t.Fatalf("ids %v, want %s", ids, want)
	}
	select {
	case e := <-ch2:
		t.Fatalf("extra event %s after catching up", e.ID)
	default:
	}

	// A new durable with fromStart=false sees only what comes next.
	ch3, _ := tail(t, js, names, "latecomer", false, nil)
	waitConsumer(t, js, names.AuditStream(), "latecomer")
	publish(7, 8)
	if e := receive(t, ch3, 1)[0]; e.ID != "ev-007" {
		t.Fatalf("latecomer got %s first, want ev-007", e.ID)
	}
}

// waitAckFloor polls until durable's ack floor reaches seq (its seq-th delivery).
func waitAckFloor(t *testing.T, js jetstream.JetStream, stream, durable string, seq uint64) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		c, err := js.Consumer(context.Background(), stream, durable)
		if err == nil {
			if info, err := c.Info(context.Background()); err == nil && info.AckFloor.Consumer >= seq {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer %s never acked %d deliveries", durable, seq)
		}
		time.Sleep(5 * time.Millisecond) // polling for a condition, not waiting for luck
	}
}

func waitConsumer(t *testing.T, js jetstream.JetStream, stream, durable string) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		if _, err := js.Consumer(context.Background(), stream, durable); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer %s never appeared", durable)
		}
		time.Sleep(5 * time.Millisecond) // polling for a condition, not waiting for luck
	}
}

func TestAuditHandlerFailureRedelivers(t *testing.T) {
	nc, js, names := natstest.Start(t)
	pub := notify.NewPublisher(js, nc, names)
	for i := 0; i < 3; i++ {
		if err := pub.PublishAudit(context.Background(), fullEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	boom := errors.New("siem down")
	var seen []string
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	// TailAudit returns fn's error by itself, after acknowledging ev-000 only.
	// A short ack wait bounds the wait on servers older than 2.10 (see TailAudit).
	ackWait := notify.TailAckWait(time.Second)
	err := notify.TailAudit(ctx, js, names, "flaky", true, func(e notify.AuditEvent) error {
		seen = append(seen, e.ID)
		if e.ID == "ev-001" {
			return boom
		}
		return nil
	}, ackWait)
	if !errors.Is(err, boom) {
		t.Fatalf("TailAudit returned %v, want %v", err, boom)
	}
	if strings.Join(seen, " ") != "ev-000 ev-001" {
		t.Fatalf("fn saw %v", seen)
	}
	ch3, stop3 := tailWith(t, js, names, "flaky", false, nil, ackWait)
	defer stop3()
	// Delivery is at least once (NATS 2.9 may hand a naked event over twice), in order:
	// with repeats of the same id collapsed, the tail resumes with ev-001 then ev-002.
	var ids []string
	timeout := time.After(waitLimit)
	for len(ids) == 0 || ids[len(ids)-1] != "ev-002" {
		select {
		case e := <-ch3:
			if len(ids) == 0 || ids[len(ids)-1] != e.ID {
				ids = append(ids, e.ID)
			}
		case <-timeout:
			t.Fatalf("after failure got %v before timeout", ids)
		}
	}
	if strings.Join(ids, " ") != "ev-001 ev-002" {
		t.Fatalf("after failure got %v; want ev-001, ev-002", ids)
	}
}

func TestPublishDedupesByMessageID(t *testing.T) {
	nc, js, names := natstest.Start(t)
	key, _ := notify.GenerateDeliveryKey()
	pub := notify.NewPublisher(js, nc, names).WithDeliveryKey(key)
	ctx := context.Background()
	ev := fullEvent(1)
	send := notify.GatewaySend{ChallengeID: "ch-dup", Channel: notify.ChannelEmail, UserID: "u", Destination: "a@example.org", Code: "111111"}
	push := notify.PushRequest{ChallengeID: "ch-push", UserID: "u", DeviceID: "d", Number: 42}
	for i := 0; i < 3; i++ {
		if err := pub.PublishAudit(ctx, ev); err != nil {
			t.Fatal(err)
		}
		if err := pub.PublishGatewaySend(ctx, send); err != nil {
			t.Fatal(err)
		}
		if err := pub.PublishPushRequest(ctx, push); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{names.AuditStream(), names.GatewayStream(), names.PushStream()} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info, _ := s.Info(ctx)
		if info.State.Msgs != 1 {
			t.Errorf("%s holds %d messages after 3 identical publishes, want 1", name, info.State.Msgs)
		}
	}
}

func TestPublishRejectsBadInput(t *testing.T) {
	nc, js, names := natstest.Start(t)
	key, _ := notify.GenerateDeliveryKey()
	bare := notify.NewPublisher(js, nc, names)
	pub := bare.WithDeliveryKey(key)
	ctx := context.Background()
	good := notify.GatewaySend{ChallengeID: "c", Channel: "sms", Destination: "+15550100", Code: "123456"}
	long := func(mod func(*notify.GatewaySend)) notify.GatewaySend { g := good; mod(&g); return g }
	for name, err := range map[string]error{
		"send without key":      bare.PublishGatewaySend(ctx, good),
		"send no code nor text": pub.PublishGatewaySend(ctx, long(func(g *notify.GatewaySend) { g.Code = "" })),
		"send no destination":   pub.PublishGatewaySend(ctx, long(func(g *notify.GatewaySend) { g.Destination = "" })),
		"send long text":        pub.PublishGatewaySend(ctx, long(func(g *notify.GatewaySend) { g.Text = strings.Repeat("x", notify.MaxTextLen+1) })),
		"send long user":        pub.PublishGatewaySend(ctx, long(func(g *notify.GatewaySend) { g.UserID = strings.Repeat("x", 257) })),
		"send bad utf-8":        pub.PublishGatewaySend(ctx, long(func(g *notify.GatewaySend) { g.Subject = "\xff" })),
		"audit wildcard event":  pub.PublishAudit(ctx, notify.AuditEvent{Event: "factor.>"}),
		"audit empty event":     pub.PublishAudit(ctx, notify.AuditEvent{}),
		"send bad channel":      pub.PublishGatewaySend(ctx, notify.GatewaySend{ChallengeID: "c", Channel: "fax"}),
		"send dotted id":        pub.PublishGatewaySend(ctx, notify.GatewaySend{ChallengeID: "a.b", Channel: "sms"}),
		"push empty id":         pub.PublishPushRequest(ctx, notify.PushRequest{}),
		"push response id":      pub.AnnouncePushResponse(ctx, "a.*"),
		"revoked empty":         pub.AnnounceRevoked(ctx, ""),
		"throttle empty key":    pub.AnnounceThrottleFailed(ctx, []notify.ThrottleSubject{{Kind: "user"}}),
		"throttle long key":     pub.AnnounceThrottleFailed(ctx, []notify.ThrottleSubject{{Kind: "user", Key: strings.Repeat("k", 513)}}),
	} {
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestRevocationReachesEveryReplica(t *testing.T) {
	nc, js, names := natstest.Start(t)
	replicas := []*notify.Publisher{
		notify.NewPublisher(js, natstest.Dial(t, nc), names),
		notify.NewPublisher(js, natstest.Dial(t, nc), names),
	}
	got := make(chan string, 10)
	for i, r := range replicas {
		unsub, err := r.SubscribeRevoked(func(id string) { got <- fmt.Sprintf("%d:%s", i, id) })
		if err != nil {
			t.Fatal(err)
		}
		defer unsub()
	}
	if err := notify.NewPublisher(js, nc, names).AnnounceRevoked(context.Background(), "ap-77"); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	timeout := time.After(waitLimit)
	for len(seen) < 2 {
		select {
		case s := <-got:
			seen[s] = true
		case <-timeout:
			t.Fatalf("only %v received the revocation", seen)
		}
	}
	if !seen["0:ap-77"] || !seen["1:ap-77"] {
		t.Fatalf("received %v", seen)
	}
}

func TestThrottleFailureReachesEveryReplica(t *testing.T) {
	nc, js, names := natstest.Start(t)
	replicas := []*notify.Publisher{
		notify.NewPublisher(js, natstest.Dial(t, nc), names),
		notify.NewPublisher(js, natstest.Dial(t, nc), names),
	}
	got := make(chan string, 10)
	for i, r := range replicas {
		unsub, err := r.SubscribeThrottleFailed(func(s notify.ThrottleSubject) { got <- fmt.Sprintf("%d:%s=%s", i, s.Kind, s.Key) })
		if err != nil {
			t.Fatal(err)
		}
		defer unsub()
	}
	subjects := []notify.ThrottleSubject{{Kind: "user", Key: "alice"}, {Kind: "ip", Key: "2001:db8::/56"}}
	if err := notify.NewPublisher(js, nc, names).AnnounceThrottleFailed(context.Background(), subjects); err != nil {
		t.Fatal(err)
	}
	var seen []string
	timeout := time.After(waitLimit)
	for len(seen) < 4 {
		select {
		case s := <-got:
			seen = append(seen, s)
		case <-timeout:
			t.Fatalf("only %v received", seen)
		}
	}
	for _, want := range []string{"0:user=alice", "0:ip=2001:db8::/56", "1:user=alice", "1:ip=2001:db8::/56"} {
		if !slices.Contains(seen, want) {
			t.Fatalf("received %v, want %s among them", seen, want)
		}
	}
}

func TestPushResponseWakeUp(t *testing.T) {
	nc, js, names := natstest.Start(t)
	verifier := notify.NewPublisher(js, natstest.Dial(t, nc), names) // replica running VerifyChallenge
	responder := notify.NewPublisher(js, nc, names)                  // replica handling RespondPush
	ctx := context.Background()

	// Subscribe first, then (check the store, find nothing,) then wait: an answer that
	// lands in between is not lost.
	woke, stop, err := verifier.SubscribePushResponse("ch-9")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	other, stopOther, err := verifier.SubscribePushResponse("ch-other")
	if err != nil {
		t.Fatal(err)
	}
	defer stopOther()
	if err := responder.AnnouncePushResponse(ctx, "ch-9"); err != nil {
		t.Fatal(err)
	}
	if err := responder.AnnouncePushResponse(ctx, "ch-9"); err != nil { // a second one must not panic
		t.Fatal(err)
	}
	select {
	case <-woke:
	case <-time.After(waitLimit):
		t.Fatal("no wake-up")
	}
	// The announcement for ch-9 has been delivered; a flush round trip guarantees any stray
	// delivery to ch-other would have arrived too.
	if err := verifier.AnnouncePushResponse(ctx, "ch-flush"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-other:
		t.Fatal("woke a different challenge")
	default:
	}

	// WaitPushResponse: blocks until announced, honours ctx.
	errc := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		ch, stop, err := verifier.SubscribePushResponse("ch-10")
		if err != nil {
			errc <- err
			return
		}
		defer stop()
		close(ready)
		select {
		case <-ch:
			errc <- nil
		case <-time.After(waitLimit):
			errc <- errors.New("timeout")
		}
	}()
	<-ready
	if err := responder.AnnouncePushResponse(ctx, "ch-10"); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := verifier.WaitPushResponse(cctx, "ch-11"); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitPushResponse on cancelled ctx = %v", err)
	}
}

func BenchmarkPublishAudit(b *testing.B) {
	nc, js, names := natstest.Start(b)
	pub := notify.NewPublisher(js, nc, names)
	ctx := context.Background()
	ev := fullEvent(1)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ev.ID = fmt.Sprint("b-", i)
		i++
		if err := pub.PublishAudit(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
}

// PublishAuditAsync sends in order without waiting; each AuditAck reports the
// store, and a repeated id (a retry) is stored once.
func TestAuditPublishAsyncInOrder(t *testing.T) {
	nc, js, names := natstest.Start(t)
	pub := notify.NewPublisher(js, nc, names)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	const n = 25
	var want []notify.AuditEvent
	var acks []*notify.AuditAck
	for i := 0; i < n; i++ {
		ev := fullEvent(i)
		ack, err := pub.PublishAuditAsync(ev)
		if err != nil {
			t.Fatal(err)
		}
		acks = append(acks, ack)
		ev.V = notify.SchemaVersion
		want = append(want, ev)
	}
	again, err := pub.PublishAuditAsync(fullEvent(0))
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range append(acks, again) {
		if err := a.Wait(ctx); err != nil {
			t.Fatalf("ack %d: %v", i, err)
		}
	}
	ch, stop := tail(t, js, names, "siem-async", true, nil)
	got := receive(t, ch, n)
	if err := stop(); err != nil {
		t.Fatalf("TailAudit: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("events differ:\n got  %#v\n want %#v", got, want)
	}
	s, _ := js.Stream(ctx, names.AuditStream())
	if info, err := s.Info(ctx); err != nil || info.State.Msgs != n {
		t.Fatalf("stream holds %v messages (%v), want %d: the retry was stored twice", info.State.Msgs, err, n)
	}
	if _, err := pub.PublishAuditAsync(notify.AuditEvent{Event: "Bad Name"}); err == nil {
		t.Fatal("an invalid event name was published")
	}
}
