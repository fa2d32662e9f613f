package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/twofactor/twofactor/internal/testfix"
	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/channels"
	"github.com/twofactor/twofactor/notify/channels/twilio"
	"github.com/twofactor/twofactor/notify/natstest"
)

const waitLimit = 20 * time.Second

type env struct {
	js       jetstream.JetStream
	names    notify.Names
	key      *notify.DeliveryKey
	pub      *notify.Publisher
	logs     *testfix.LogBuffer
	log      *slog.Logger
	outcomes chan notify.Outcome
	now      atomic.Int64 // unix nanos of the injected clock
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newEnv(t *testing.T) *env {
	t.Helper()
	_, js, names := natstest.Start(t)
	return newEnvOn(t, js, names)
}

func newEnvOn(t *testing.T, js jetstream.JetStream, names notify.Names) *env {
	key, err := notify.GenerateDeliveryKey()
	if err != nil {
		t.Fatal(err)
	}
	logs := &testfix.LogBuffer{}
	e := &env{js: js, names: names, key: key, logs: logs,
		log:      logs.Logger(),
		outcomes: make(chan notify.Outcome, 256)}
	e.pub = notify.NewPublisher(js, nil, names).WithDeliveryKey(key)
	e.now.Store(t0.UnixNano())
	return e
}

func (e *env) clock() time.Time { return time.Unix(0, e.now.Load()).UTC() }

// start runs a daemon with 1 ms backoff, the injected clock and every outcome recorded.
func (e *env) start(t *testing.T, senders map[string]channels.Sender, mod func(*Options)) *Daemon {
	t.Helper()
	o := Options{JS: e.js, Names: e.names, Key: e.key, Senders: senders, MaxDeliver: 3,
		Backoff: func(int) time.Duration { return time.Millisecond }, DrainTimeout: 2 * time.Second,
		Now: e.clock, Logger: e.log, Observe: func(o notify.Outcome) { e.outcomes <- o }}
	if mod != nil {
		mod(&o)
	}
	d, err := Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	return d
}

func (e *env) publish(t *testing.T, id, ch, dest, code string) {
	t.Helper()
	g := notify.GatewaySend{ChallengeID: id, Channel: ch, UserID: "u-" + id, Destination: dest, Code: code,
		Text: "Your sign-in code is " + code + ".\n\n@example.org #" + code, ExpiresAt: e.clock().Add(5 * time.Minute)}
	if err := e.pub.PublishGatewaySend(context.Background(), g); err != nil {
		t.Fatal(err)
	}
}

// expect waits for outcomes with these results, in order.
func (e *env) expect(t *testing.T, results ...string) []notify.Outcome {
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

// next waits for the next outcome, whatever it is.
func (e *env) next(t *testing.T) notify.Outcome {
	t.Helper()
	select {
	case o := <-e.outcomes:
		return o
	case <-time.After(waitLimit):
		t.Fatal("timed out waiting for an outcome")
	}
	return notify.Outcome{}
}

func (e *env) lastStatus(t *testing.T, challengeID string) notify.GatewayStatus {
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
	if err != nil || st.ChallengeID != challengeID {
		t.Fatalf("last status %+v (err %v), want one for %s", st, err, challengeID)
	}
	return st
}

// statusOf returns the gateway status published for message id (the first found).
func (e *env) statusOf(t *testing.T, id string) notify.GatewayStatus {
	t.Helper()
	ctx := context.Background()
	s, err := e.js.Stream(ctx, e.names.GatewayStatusStream())
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		if st, err := notify.DecodeGatewayStatus(m.Data); err == nil && st.ChallengeID == id {
			return st
		}
	}
	t.Fatalf("no gateway status for %s", id)
	return notify.GatewayStatus{}
}

// smsAPI is an httptest server speaking Twilio's Messages API; it can be down (503)
// for a number of requests and counts each message it accepted by its body.
type smsAPI struct {
	mu       sync.Mutex
	down     int
	status   int // answer while not down; default 201
	accepted map[string]int
	calls    int
	srv      *httptest.Server
}

const (
	twilioSID   = "AC00000000000000000000000000000001"
	twilioToken = "twilio-token-do-not-log"
)

func newSMSAPI(t *testing.T) *smsAPI {
	a := &smsAPI{accepted: map[string]int{}}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.calls++
		w.Header().Set("Content-Type", "application/json")
		if u, p, _ := r.BasicAuth(); u != twilioSID || p != twilioToken {
			w.WriteHeader(401)
			_, _ = w.Write([]byte(`{"code":20003,"message":"Authenticate","status":401}`))
			return
		}
		if a.down > 0 {
			a.down--
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(503)
			_, _ = w.Write([]byte(`{"code":20503,"message":"Service Unavailable","status":503}`))
			return
		}
		if a.status != 0 && a.status != 201 {
			w.WriteHeader(a.status)
			_, _ = fmt.Fprintf(w, `{"code":21211,"message":"The 'To' number %s is not a valid phone number.","status":400}`, r.FormValue("To"))
			return
		}
		a.accepted[r.FormValue("To")+" "+r.FormValue("Body")]++
		w.WriteHeader(201)
		_, _ = w.Write([]byte(`{"sid":"SM00000000000000000000000000000001","status":"queued"}`))
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *smsAPI) sender(t *testing.T) channels.Sender {
	s, err := twilio.New(twilio.Config{BaseURL: a.srv.URL, AccountSID: twilioSID, Password: twilioToken, From: "+15005550006"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (a *smsAPI) total() (n int, dup []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return tally(a.accepted)
}

// tally sums the counts of accepted messages and names those accepted more than once.
func tally(accepted map[string]int) (n int, dup []string) {
	for k, c := range accepted {
		n += c
		if c > 1 {
			dup = append(dup, k)
		}
	}
	return n, dup
}

// The provider is down for two attempts, then up: the code is delivered exactly once,
// and the delivered status reaches authd's subscription.
func TestProviderDownThenUp(t *testing.T) {
	e := newEnv(t)
	api := newSMSAPI(t)
	api.down = 2
	statuses := make(chan notify.GatewayStatus, 8)
	stop, err := notify.SubscribeGatewayStatus(context.Background(), e.js, e.names, func(_ context.Context, s notify.GatewayStatus) error {
		statuses <- s
		return nil
	}, notify.SubscribeOptions{Logger: e.log})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	e.start(t, map[string]channels.Sender{notify.ChannelSMS: api.sender(t)}, nil)
	e.publish(t, "ch-updown", notify.ChannelSMS, "+15550111", "731902")
	out := e.expect(t, notify.OutcomeRetry, notify.OutcomeRetry, notify.OutcomeDelivered)
	if out[0].Delay != channels.DefaultRetryAfter && out[0].Delay != 0 {
		t.Logf("retry delay %v", out[0].Delay)
	}
	if n, dup := api.total(); n != 1 || len(dup) != 0 {
		t.Fatalf("provider accepted %d messages (duplicates %v), want 1", n, dup)
	}
	select {
	case s := <-statuses:
		if s.State != notify.StatusDelivered || s.ChallengeID != "ch-updown" || s.Channel != notify.ChannelSMS || s.Attempts != 3 {
			t.Fatalf("status %+v", s)
		}
	case <-time.After(waitLimit):
		t.Fatal("no delivered status reached the subscription")
	}
	assertNoSecrets(t, e, "731902", "+15550111", twilioToken)
}

// assertNoSecrets scans the logs, the dead letters and the status events for secrets.
func assertNoSecrets(t *testing.T, e *env, secrets ...string) {
	t.Helper()
	ctx := context.Background()
	var texts []string
	texts = append(texts, e.logs.String())
	for _, stream := range []string{e.names.DeadLetterStream(), e.names.GatewayStatusStream()} {
		s, err := e.js.Stream(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		info, _ := s.Info(ctx)
		for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
			m, err := s.GetMsg(ctx, seq)
			if err != nil {
				continue
			}
			texts = append(texts, string(m.Data), fmt.Sprint(m.Header))
		}
	}
	for _, txt := range texts {
		for _, s := range secrets {
			if strings.Contains(txt, s) {
				t.Errorf("secret %q found in %.300s", s, txt)
			}
		}
	}
}

// A refused number goes to the dead letters at once with a failed status (reason
// rejected), and the provider's answer, which quotes the number, is nowhere.
func TestRefusedNumberDeadLetters(t *testing.T) {
	e := newEnv(t)
	api := newSMSAPI(t)
	api.status = 400
	e.start(t, map[string]channels.Sender{notify.ChannelSMS: api.sender(t)}, nil)
	e.publish(t, "ch-refused", notify.ChannelSMS, "+15550122", "550123")
	e.expect(t, notify.OutcomeDeadLettered)
	st := e.lastStatus(t, "ch-refused")
	if st.State != notify.StatusFailed || st.Reason != notify.ReasonRejected || st.Attempts != 1 {
		t.Fatalf("status %+v", st)
	}
	assertNoSecrets(t, e, "550123", "+15550122", twilioToken)
}

// Garbage and payloads sealed under another key are poison: dead-lettered with a failed
// status (reason undecodable) the backend sees, never retried.
func TestPoisonMessages(t *testing.T) {
	e := newEnv(t)
	api := newSMSAPI(t)
	e.start(t, map[string]channels.Sender{notify.ChannelSMS: api.sender(t)}, nil)
	ctx := context.Background()
	if _, err := e.js.Publish(ctx, e.names.GatewaySend(notify.ChannelSMS), []byte(`{"v":2,"challenge_id":"ch-junk"`), jetstream.WithMsgID("ch-junk")); err != nil {
		t.Fatal(err)
	}
	e.expect(t, notify.OutcomeDeadLettered)
	other, _ := notify.GenerateDeliveryKey()
	g := notify.GatewaySend{ChallengeID: "ch-otherkey", Channel: notify.ChannelSMS, Destination: "+15550133", Code: "889900", ExpiresAt: t0.Add(time.Minute)}
	if err := e.pub.WithDeliveryKey(other).PublishGatewaySend(ctx, g); err != nil {
		t.Fatal(err)
	}
	o := e.expect(t, notify.OutcomeDeadLettered)[0]
	if !strings.Contains(o.Err.Error(), "delivery key") {
		t.Errorf("error %v does not point at the delivery key", o.Err)
	}
	st := e.lastStatus(t, "ch-otherkey")
	if st.State != notify.StatusFailed || st.Reason != notify.ReasonUndecodable {
		t.Fatalf("status %+v", st)
	}
	clear := `{"v":1,"challenge_id":"ch-clear","channel":"sms","destination":"+15550144","code":"121212"}`
	if _, err := e.js.Publish(ctx, e.names.GatewaySend(notify.ChannelSMS), []byte(clear), jetstream.WithMsgID("ch-clear")); err != nil {
		t.Fatal(err)
	}
	e.expect(t, notify.OutcomeDeadLettered)
	if n, _ := api.total(); n != 0 {
		t.Fatalf("provider got %d messages from poison", n)
	}
	assertNoSecrets(t, e, "889900", "+15550133", "121212", "+15550144")
}

// A code that expired before it could be sent is dropped with an expired status: no
// provider call, no dead letter.
func TestExpiredCodeIsNotSent(t *testing.T) {
	e := newEnv(t)
	api := newSMSAPI(t)
	e.start(t, map[string]channels.Sender{notify.ChannelSMS: api.sender(t)}, nil)
	g := notify.GatewaySend{ChallengeID: "ch-old", Channel: notify.ChannelSMS, Destination: "+15550155", Code: "404404",
		ExpiresAt: e.clock().Add(-time.Second)}
	if err := e.pub.PublishGatewaySend(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	e.expect(t, notify.OutcomeExpired)
	st := e.lastStatus(t, "ch-old")
	if st.State != notify.StatusFailed || st.Reason != notify.ReasonExpired {
		t.Fatalf("status %+v", st)
	}
	api.mu.Lock()
	calls := api.calls
	api.mu.Unlock()
	if calls != 0 {
		t.Fatalf("provider called %d times for an expired code", calls)
	}
	if n := streamMsgs(t, e, e.names.DeadLetterStream()); n != 0 {
		t.Fatalf("%d dead letters for an expired code", n)
	}
}

func streamMsgs(t *testing.T, e *env, stream string) uint64 {
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

// A channel without a provider fails its messages at once (reason not_configured).
func TestUnconfiguredChannel(t *testing.T) {
	e := newEnv(t)
	e.start(t, nil, nil)
	e.publish(t, "ch-nosignal", notify.ChannelSignal, "+15550166", "616161")
	e.expect(t, notify.OutcomeDeadLettered)
	if st := e.lastStatus(t, "ch-nosignal"); st.Reason != notify.ReasonNotConfigured || st.Channel != notify.ChannelSignal {
		t.Fatalf("status %+v", st)
	}
}

// A resend of the same code is published under its own id (<id>_<seq>) and delivered
// again; a notice without a code (destination changed) is delivered as text.
func TestResendAndNotice(t *testing.T) {
	e := newEnv(t)
	api := newSMSAPI(t)
	e.start(t, map[string]channels.Sender{notify.ChannelSMS: api.sender(t)}, nil)
	e.publish(t, "ch-re", notify.ChannelSMS, "+15550199", "864200")
	e.publish(t, "ch-re_2", notify.ChannelSMS, "+15550199", "864200")
	notice := notify.GatewaySend{Kind: notify.KindNotice, ChallengeID: "n-1", Channel: notify.ChannelSMS, Destination: "+15550198",
		Text: "Your sign-in phone number was changed.", ExpiresAt: e.clock().Add(24 * time.Hour)}
	if err := e.pub.PublishGatewaySend(context.Background(), notice); err != nil {
		t.Fatal(err)
	}
	e.expect(t, notify.OutcomeDelivered, notify.OutcomeDelivered, notify.OutcomeDelivered)
	api.mu.Lock()
	defer api.mu.Unlock()
	if c := api.accepted["+15550199 Your sign-in code is 864200.\n\n@example.org #864200"]; c != 2 {
		t.Fatalf("code sent %d times, want 2 (send and resend): %v", c, api.accepted)
	}
	if c := api.accepted["+15550198 Your sign-in phone number was changed."]; c != 1 {
		t.Fatalf("notice sent %d times: %v", c, api.accepted)
	}
	if st := e.statusOf(t, "n-1"); st.Kind != notify.KindNotice || st.State != notify.StatusDelivered ||
		st.Subject != e.names.GatewayNotice(notify.ChannelSMS) {
		t.Fatalf("notice status %+v", st)
	}
}

// A notice outlives a code: published with its own 24 h expiry and found by notifyd
// an hour later (past any code's lifetime), it is still delivered; past its expiry it
// is dropped. A notice relabelled as a code on the code subject does not open.
func TestNoticeExpiryAndKind(t *testing.T) {
	e := newEnv(t)
	api := newSMSAPI(t)
	ctx := context.Background()
	for id, exp := range map[string]time.Duration{"n-late": 24 * time.Hour, "n-old": 30 * time.Minute} {
		if err := e.pub.PublishGatewaySend(ctx, notify.GatewaySend{Kind: notify.KindNotice, ChallengeID: id,
			Channel: notify.ChannelSMS, Destination: "+15550197", Text: "notice " + id, ExpiresAt: e.clock().Add(exp)}); err != nil {
			t.Fatal(err)
		}
	}
	sealed, err := e.key.SealGatewaySend(notify.GatewaySend{Kind: notify.KindNotice, ChallengeID: "n-moved",
		Channel: notify.ChannelSMS, Destination: "+15550197", Text: "moved", ExpiresAt: e.clock().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.Publish(ctx, e.names.GatewaySend(notify.ChannelSMS), sealed, jetstream.WithMsgID("n-moved")); err != nil {
		t.Fatal(err)
	}
	e.now.Add(int64(time.Hour))
	e.start(t, map[string]channels.Sender{notify.ChannelSMS: api.sender(t)}, nil)
	got := map[string]string{}
	for range 3 {
		o := e.next(t)
		got[o.Message.ID] = o.Result
	}
	want := map[string]string{"n-late": notify.OutcomeDelivered, "n-old": notify.OutcomeExpired, "n-moved": notify.OutcomeDeadLettered}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("outcomes %v, want %v", got, want)
	}
	if n, _ := api.total(); n != 1 || api.accepted["+15550197 notice n-late"] != 1 {
		t.Fatalf("sent %v", api.accepted)
	}
}

// gatedSender holds each Send until the test releases it, counting the sends in
// flight and the most seen at once.
type gatedSender struct {
	started  chan string // the message id, as each Send begins
	release  chan struct{}
	inFlight atomic.Int32
	most     atomic.Int32
}

func newGatedSender() *gatedSender {
	return &gatedSender{started: make(chan string, 16), release: make(chan struct{})}
}

func (g *gatedSender) Send(ctx context.Context, m channels.Message) error {
	n := g.inFlight.Add(1)
	defer g.inFlight.Add(-1)
	for {
		most := g.most.Load()
		if n <= most || g.most.CompareAndSwap(most, n) {
			break
		}
	}
	g.started <- m.ChallengeID
	select {
	case <-g.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *gatedSender) waitStart(t *testing.T) string {
	t.Helper()
	select {
	case id := <-g.started:
		return id
	case <-time.After(waitLimit):
		t.Fatal("timed out waiting for a send to begin")
	}
	return ""
}

// A channel's concurrency bounds its codes and notices together: with both of its
// sends in flight (two codes), a notice handed to notifyd's notice consumer waits
// for one of them to end instead of making a third. Each kind is counted apart in
// the delivery metrics.
func TestChannelConcurrencyBoundsCodesAndNotices(t *testing.T) {
	e := newEnv(t)
	g := newGatedSender()
	m := NewMetrics()
	e.start(t, map[string]channels.Sender{notify.ChannelSMS: g}, func(o *Options) {
		o.Limits = map[string]Limits{notify.ChannelSMS: {Concurrency: 2}}
		o.Metrics = m
	})
	e.publish(t, "ch-c1", notify.ChannelSMS, "+15550181", "111111")
	e.publish(t, "ch-c2", notify.ChannelSMS, "+15550182", "222222")
	g.waitStart(t)
	g.waitStart(t)
	notice := notify.GatewaySend{Kind: notify.KindNotice, ChallengeID: "n-c3", Channel: notify.ChannelSMS, Destination: "+15550183",
		Text: "A security notice.", ExpiresAt: e.clock().Add(time.Hour)}
	if err := e.pub.PublishGatewaySend(context.Background(), notice); err != nil {
		t.Fatal(err)
	}
	// Once notifyd holds the notice (delivered to its consumer, not acknowledged), it
	// would be sent at once if the notice consumer had slots of its own.
	ctx := context.Background()
	cons, err := e.js.Consumer(ctx, e.names.NoticeStream(), "notifyd-notice-"+notify.ChannelSMS)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(waitLimit); ; {
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumAckPending == 1 && info.NumPending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the notice never reached notifyd: %+v", info)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := g.inFlight.Load(); got != 2 {
		t.Fatalf("%d sends in flight on a channel of concurrency 2", got)
	}
	g.release <- struct{}{} // one code ends: the notice may go
	if id := g.waitStart(t); id != "n-c3" {
		t.Fatalf("send of %s began, want the notice", id)
	}
	g.release <- struct{}{}
	g.release <- struct{}{}
	e.expect(t, notify.OutcomeDelivered, notify.OutcomeDelivered, notify.OutcomeDelivered)
	if most := g.most.Load(); most != 2 {
		t.Fatalf("%d sends were in flight at once, want at most the channel's 2", most)
	}
	for kind, want := range map[string]float64{notify.KindCode: 2, notify.KindNotice: 1} {
		if got := testutil.ToFloat64(m.Sent.WithLabelValues(notify.ChannelSMS, kind)); got != want {
			t.Errorf("notifyd_sent_total{channel=sms,kind=%s} = %v, want %v", kind, got, want)
		}
		if got := testutil.ToFloat64(m.Attempts.WithLabelValues(notify.ChannelSMS, kind, "ok")); got != want {
			t.Errorf("notifyd_send_attempts_total{channel=sms,kind=%s,result=ok} = %v, want %v", kind, got, want)
		}
	}
}
