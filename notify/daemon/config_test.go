package daemon

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/channels"
	"github.com/twofactor/twofactor/notify/channels/signal"
)

func getenv(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParse(t *testing.T) {
	dir := t.TempDir()
	yml := filepath.Join(dir, "notifyd.yaml")
	if err := os.WriteFile(yml, []byte("smtp-host: mail.example.org\nsmtp-from: no-reply@example.org\nsms-rate: 5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Parse("notifyd", []string{"--config", yml, "--sms-concurrency", "8"}, getenv(map[string]string{
		"TWOFACTOR_NATS_URL": "nats://a:4222,nats://b:4222", "TWOFACTOR_SEVENIO_API_KEY": "k", "TWOFACTOR_SMS_RATE": "2",
		"TWOFACTOR_DATA_DIR": dir,
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.NATSURL != "nats://a:4222,nats://b:4222" || c.DeliveryKeyFile != filepath.Join(dir, "delivery.key") ||
		c.OutboxDir != filepath.Join(dir, "outbox") || c.MetricsListen != "127.0.0.1:9465" {
		t.Fatalf("config %+v", c)
	}
	want := map[string]string{"email": "smtp", "sms": "sevenio", "telegram": "none", "signal": "none"}
	for ch, p := range want {
		if c.Channels[ch].Provider != p {
			t.Errorf("%s provider %q, want %q", ch, c.Channels[ch].Provider, p)
		}
	}
	if l := c.Channels["sms"].Limits; l.Concurrency != 8 || l.Rate != 2 {
		t.Errorf("sms limits %+v: flag over env over file", l)
	}
	c, err = Parse("notifyd", []string{"--outbox"}, getenv(nil))
	if err != nil || c.Channels["signal"].Provider != "outbox" {
		t.Fatalf("outbox: %+v, %v", c, err)
	}
}

func TestParseRejects(t *testing.T) {
	for name, args := range map[string][]string{
		"bad provider":      {"--sms-provider", "carrier-pigeon"},
		"email over twilio": {"--email-provider", "twilio"},
		"concurrency":       {"--email-concurrency", "0"},
		"burst":             {"--sms-burst", "0"},
		"max deliver":       {"--max-deliver", "0"},
		"prefix":            {"--nats-prefix", "A.B"},
		"metrics":           {"--metrics-listen", "9465"},
		"webhook no secret": {"--telegram-webhook-listen", "127.0.0.1:0"},
		"argument":          {"extra"},
		"allow internal":    {"--push-allow-internal", "10.0.0.0/33"},
		"allow a URL":       {"--push-allow-internal", "http://ntfy"},
	} {
		if _, err := Parse("notifyd", args, getenv(nil)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	dir := t.TempDir()
	yml := filepath.Join(dir, "bad.yaml")
	_ = os.WriteFile(yml, []byte("smtp-pasword: hunter2-secret\n"), 0o600)
	if _, err := Parse("notifyd", []string{"--config", yml}, getenv(nil)); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("unknown YAML key: %v", err)
	}
	_ = os.WriteFile(yml, []byte("smtp-password: [hunter2-secret\n"), 0o600)
	if _, err := Parse("notifyd", []string{"--config", yml}, getenv(nil)); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("bad YAML: %v", err)
	}
}

func TestScrubKeepsKind(t *testing.T) {
	secret := "+15550199"
	for _, err := range []error{
		notify.RetryAfter{D: time.Second, Err: errors.New("busy for " + secret)},
		notify.Permanent{Err: errors.New("bad number " + secret), Reason: notify.ReasonRejected},
		errors.New("plain " + secret),
	} {
		got := Scrub(err, secret, "")
		if strings.Contains(got.Error(), secret) || !strings.Contains(got.Error(), "[redacted]") {
			t.Errorf("Scrub(%v) = %v", err, got)
		}
		if notify.FailureReason(got) != notify.FailureReason(err) {
			t.Errorf("Scrub changed the kind of %v: %v", err, got)
		}
		var ra notify.RetryAfter
		if errors.As(err, &ra) && (!errors.As(got, &ra) || ra.D != time.Second) {
			t.Errorf("Scrub lost the retry delay of %v", err)
		}
	}
	if Scrub(nil, secret) != nil {
		t.Error("Scrub(nil) is not nil")
	}
}

// Signal's captcha demand raises the operator alert (metric and status reason) and is
// not retried; /healthz and /metrics answer, and `notifyd healthcheck` sees it.
func TestCaptchaAlertMetricsAndHealth(t *testing.T) {
	e := newEnv(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"error":"Failed to send message due to rate limiting.","challenge_tokens":["c0ffee"],"account":"+4915550199"}`)
	}))
	defer srv.Close()
	sig, err := signal.New(signal.Config{BaseURL: srv.URL, Number: "+4915550199"})
	if err != nil {
		t.Fatal(err)
	}
	m := NewMetrics()
	d := e.start(t, map[string]channels.Sender{notify.ChannelSignal: sig}, func(o *Options) { o.Metrics = m })
	e.publish(t, "ch-captcha", notify.ChannelSignal, "+4915550100", "135790")
	e.expect(t, notify.OutcomeDeadLettered)
	if st := e.lastStatus(t, "ch-captcha"); st.Reason != notify.ReasonCaptchaRequired || st.Attempts != 1 {
		t.Fatalf("status %+v", st)
	}
	if v := testutil.ToFloat64(m.Alert.WithLabelValues("signal", notify.ReasonCaptchaRequired)); v != 1 {
		t.Errorf("alert gauge %v", v)
	}
	if v := testutil.ToFloat64(m.Failed.WithLabelValues("signal", notify.KindCode, notify.ReasonCaptchaRequired)); v != 1 {
		t.Errorf("failed counter %v", v)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: d.ObserveHandler(m)}
	go func() { _ = hs.Serve(lis) }()
	defer hs.Close()
	if err := Healthcheck(context.Background(), lis.Addr().String()); err != nil {
		t.Fatalf("healthcheck: %v", err)
	}
	resp, err := http.Get("http://" + lis.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`notifyd_operator_alert{channel="signal",reason="captcha_required"} 1`, "notifyd_send_duration_seconds_bucket", `notifyd_send_attempts_total{channel="signal",kind="code",result="permanent"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	hs.Close()
	if err := Healthcheck(context.Background(), lis.Addr().String()); err == nil {
		t.Error("healthcheck passed with nothing listening")
	}
	assertNoSecrets(t, e, "135790", "+4915550100", "c0ffee")
}
