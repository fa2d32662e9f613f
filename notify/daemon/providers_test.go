package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/twofactor/twofactor/internal/testfix"
	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/channels"
	"github.com/twofactor/twofactor/notify/channels/signal"
	"github.com/twofactor/twofactor/notify/channels/smtp"
	"github.com/twofactor/twofactor/notify/channels/telegram"
	"github.com/twofactor/twofactor/notify/natstest"
)

// provider is a fake provider speaking one channel's real protocol: it can be down
// (a temporary failure) for a number of requests, refuse every message (a permanent
// one), and counts each message it accepted by destination and text.
type provider struct {
	mu       sync.Mutex
	down     int
	refuse   bool
	accepted map[string]int
	build    func(t *testing.T) channels.Sender
	secret   string // the provider credential, which must appear nowhere ("" if none)
}

// answer decides one request: "down", "refuse" or "ok" (then counted).
func (p *provider) answer(dest, text string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.down > 0:
		p.down--
		return "down"
	case p.refuse:
		return "refuse"
	}
	p.accepted[dest+"\x00"+text]++
	return "ok"
}

func (p *provider) total() (n int, dup []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return tally(p.accepted)
}

// A channel under test: its fake provider and a destination.
type channelCase struct {
	channel, dest string
	fake          func(t *testing.T) *provider
}

var channelCases = []channelCase{
	{notify.ChannelEmail, "dana.secret@example.org", newMailProvider},
	{notify.ChannelSMS, "+15550201", newTwilioProvider},
	{notify.ChannelSignal, "+15550202", newSignalProvider},
	{notify.ChannelTelegram, "5550203", newTelegramProvider},
}

// newTwilioProvider is Twilio's Messages API: 503 down, 400 (21211) refused.
func newTwilioProvider(t *testing.T) *provider {
	api := newSMSAPI(t)
	p := &provider{accepted: map[string]int{}, secret: twilioToken}
	api.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if u, pw, _ := r.BasicAuth(); u != twilioSID || pw != twilioToken {
			w.WriteHeader(401)
			return
		}
		switch p.answer(r.FormValue("To"), r.FormValue("Body")) {
		case "down":
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(503)
			_, _ = w.Write([]byte(`{"code":20503,"message":"Service Unavailable","status":503}`))
		case "refuse":
			w.WriteHeader(400)
			_, _ = fmt.Fprintf(w, `{"code":21211,"message":"The 'To' number %s is not a valid phone number.","status":400}`, r.FormValue("To"))
		default:
			w.WriteHeader(201)
			_, _ = w.Write([]byte(`{"sid":"SM00000000000000000000000000000001","status":"queued"}`))
		}
	})
	p.build = api.sender
	return p
}

// newSignalProvider is signal-cli-rest-api's POST /v2/send: 503 down, 400 refused.
func newSignalProvider(t *testing.T) *provider {
	p := &provider{accepted: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Message    string   `json:"message"`
			Recipients []string `json:"recipients"`
		}
		if r.URL.Path != "/v2/send" || json.NewDecoder(r.Body).Decode(&req) != nil || len(req.Recipients) != 1 {
			w.WriteHeader(404)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch p.answer(req.Recipients[0], req.Message) {
		case "down":
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(503)
		case "refuse":
			w.WriteHeader(400)
			_, _ = fmt.Fprintf(w, `{"error":"Failed to send message: %s is not registered"}`, req.Recipients[0])
		default:
			w.WriteHeader(201)
			_, _ = w.Write([]byte(`{"timestamp":"1772366400000"}`))
		}
	}))
	t.Cleanup(srv.Close)
	p.build = func(t *testing.T) channels.Sender {
		s, err := signal.New(signal.Config{BaseURL: srv.URL, Number: "+15550100"})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	return p
}

// newTelegramProvider is the Bot API's sendMessage: 502 down, 400 "chat not found".
func newTelegramProvider(t *testing.T) *provider {
	p := &provider{accepted: map[string]int{}, secret: tgToken}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			ChatID json.Number `json:"chat_id"`
			Text   string      `json:"text"`
		}
		if r.URL.Path != "/bot"+tgToken+"/sendMessage" || json.NewDecoder(r.Body).Decode(&req) != nil {
			w.WriteHeader(401)
			_, _ = w.Write([]byte(`{"ok":false,"error_code":401,"description":"Unauthorized"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch p.answer(req.ChatID.String(), req.Text) {
		case "down":
			w.WriteHeader(502)
			_, _ = w.Write([]byte(`{"ok":false,"error_code":502,"description":"Bad Gateway"}`))
		case "refuse":
			w.WriteHeader(400)
			_, _ = w.Write([]byte(`{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}`))
		default:
			_, _ = w.Write([]byte(`{"ok":true,"result":{"message_id":1}}`))
		}
	}))
	t.Cleanup(srv.Close)
	p.build = func(t *testing.T) channels.Sender {
		b, err := telegram.New(telegram.Config{BaseURL: srv.URL, Token: tgToken})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return p
}

// mailSession is one SMTP session of newMailProvider: 451 down, 550 refused (at
// RCPT), counted at DATA.
type mailSession struct {
	p  *provider
	to string
}

func (s *mailSession) Reset()                                      {}
func (s *mailSession) Logout() error                               { return nil }
func (s *mailSession) Mail(string, *gosmtp.MailOptions) error      { return nil }
func (s *mailSession) Rcpt(to string, _ *gosmtp.RcptOptions) error { s.to = to; return nil }
func (s *mailSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, body, _ := strings.Cut(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n\n")
	switch s.p.answer(s.to, body) {
	case "down":
		return &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	case "refuse":
		return &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "<" + s.to + ">: Recipient address rejected"}
	}
	return nil
}

// newMailProvider is a real SMTP server in this process (go-smtp, plain like a
// local relay).
func newMailProvider(t *testing.T) *provider {
	p := &provider{accepted: map[string]int{}}
	port := testfix.ServeSMTP(t, func() gosmtp.Session { return &mailSession{p: p} })
	p.build = func(t *testing.T) channels.Sender {
		s, err := smtp.New(smtp.Config{Host: "127.0.0.1", Port: port, TLS: smtp.TLSNone, From: "twofactor@example.org"})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	return p
}

// Every channel through its provider's protocol: a provider down twice then up
// delivers once with a delivered status; a refusal dead-letters at once with a
// failed status (reason rejected) that authd's subscription receives; a notifyd
// killed between sending and acknowledging does not send again; two notifyd replicas
// and two publishers send each message once. No code, destination or credential is
// in the logs, dead letters or status events.
func TestEveryChannelDeliveryCases(t *testing.T) {
	for _, cc := range channelCases {
		t.Run(cc.channel, func(t *testing.T) {
			t.Run("down then up", func(t *testing.T) { downThenUp(t, cc) })
			t.Run("refused", func(t *testing.T) { refusedDeadLetters(t, cc) })
			t.Run("killed mid-delivery", func(t *testing.T) { killedMidDelivery(t, cc) })
			t.Run("two replicas", func(t *testing.T) { twoReplicas(t, cc) })
		})
	}
}

func downThenUp(t *testing.T, cc channelCase) {
	e := newEnv(t)
	p := cc.fake(t)
	p.down = 2
	e.start(t, map[string]channels.Sender{cc.channel: p.build(t)}, nil)
	e.publish(t, "ch-updown", cc.channel, cc.dest, "731902")
	e.expect(t, notify.OutcomeRetry, notify.OutcomeRetry, notify.OutcomeDelivered)
	if n, dup := p.total(); n != 1 || len(dup) != 0 {
		t.Fatalf("provider accepted %d messages (duplicates %q), want 1", n, dup)
	}
	if st := e.lastStatus(t, "ch-updown"); st.State != notify.StatusDelivered || st.Channel != cc.channel || st.Attempts != 3 {
		t.Fatalf("status %+v", st)
	}
	assertNoSecrets(t, e, nonEmpty("731902", cc.dest, p.secret)...)
}

func refusedDeadLetters(t *testing.T, cc channelCase) {
	e := newEnv(t)
	p := cc.fake(t)
	p.refuse = true
	statuses := make(chan notify.GatewayStatus, 4)
	stop, err := notify.SubscribeGatewayStatus(context.Background(), e.js, e.names, func(_ context.Context, s notify.GatewayStatus) error {
		statuses <- s
		return nil
	}, notify.SubscribeOptions{Logger: e.log})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	e.start(t, map[string]channels.Sender{cc.channel: p.build(t)}, nil)
	e.publish(t, "ch-refused", cc.channel, cc.dest, "550123")
	e.expect(t, notify.OutcomeDeadLettered)
	checkDeadLetterRedacted(t, e, "ch-refused")
	select {
	case s := <-statuses:
		if s.State != notify.StatusFailed || s.Reason != notify.ReasonRejected || s.ChallengeID != "ch-refused" || s.Attempts != 1 {
			t.Fatalf("status %+v", s)
		}
	case <-time.After(waitLimit):
		t.Fatal("no failed status reached the subscription")
	}
	assertNoSecrets(t, e, nonEmpty("550123", cc.dest, p.secret)...)
}

// checkDeadLetterRedacted finds the dead letter of id: it names the challenge and
// its sealed part is redacted.
func checkDeadLetterRedacted(t *testing.T, e *env, id string) {
	t.Helper()
	s, err := e.js.Stream(context.Background(), e.names.DeadLetterStream())
	if err != nil {
		t.Fatal(err)
	}
	info, _ := s.Info(context.Background())
	if info.State.Msgs != 1 {
		t.Fatalf("%d dead letters, want 1", info.State.Msgs)
	}
	m, err := s.GetMsg(context.Background(), info.State.LastSeq)
	if err != nil || !strings.Contains(string(m.Data), `"challenge_id":"`+id+`"`) || !strings.Contains(string(m.Data), `"sealed":"[redacted]"`) {
		t.Fatalf("dead letter %s (%v)", m.Data, err)
	}
}

func killedMidDelivery(t *testing.T, cc channelCase) {
	nc, js, names := natstest.Start(t)
	e := newEnvOn(t, js, names)
	p := cc.fake(t)
	var crashed atomic.Bool
	a := e.start(t, map[string]channels.Sender{cc.channel: p.build(t)}, func(o *Options) {
		o.AckWait = 500 * time.Millisecond
		o.afterRecord = func(notify.Message) bool { return !crashed.Swap(true) }
	})
	e.publish(t, "ch-kill", cc.channel, cc.dest, "777111")
	e.expect(t, notify.OutcomeAbandoned)
	a.Stop()
	js2, err := jetstream.New(natstest.Dial(t, nc))
	if err != nil {
		t.Fatal(err)
	}
	e2 := newEnvOn(t, js2, names)
	e2.key, e2.outcomes = e.key, e.outcomes
	e2.start(t, map[string]channels.Sender{cc.channel: p.build(t)}, func(o *Options) { o.AckWait = 500 * time.Millisecond })
	e.expect(t, notify.OutcomeDuplicate)
	if n, dup := p.total(); n != 1 || len(dup) != 0 {
		t.Fatalf("provider accepted %d messages (duplicates %q), want 1", n, dup)
	}
}

func twoReplicas(t *testing.T, cc channelCase) {
	p := cc.fake(t)
	e, pub2 := twoNotifyd(t, cc.channel, p.build, Limits{Concurrency: 3})
	const n = 12
	results := make([]string, n)
	for i := range n {
		code := fmt.Sprintf("%06d", 200000+i)
		g := notify.GatewaySend{ChallengeID: fmt.Sprintf("ch-r%d", i), Channel: cc.channel, UserID: "u", Destination: cc.dest,
			Code: code, Text: "code " + code, ExpiresAt: t0.Add(time.Minute)}
		for _, pub := range []*notify.Publisher{e.pub, pub2}[:1+i%2] { // every other send published by both authd
			if err := pub.PublishGatewaySend(context.Background(), g); err != nil {
				t.Fatal(err)
			}
		}
		results[i] = notify.OutcomeDelivered
	}
	e.expect(t, results...)
	if got, dup := p.total(); got != n || len(dup) != 0 {
		t.Fatalf("provider accepted %d messages (duplicates %q), want %d", got, dup, n)
	}
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
