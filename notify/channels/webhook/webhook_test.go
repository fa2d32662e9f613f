package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twofactor/twofactor/notify/channels/channeltest"
	"github.com/twofactor/twofactor/notify/channels/webhook"
)

var secret = bytes.Repeat([]byte("k"), 32)

func TestSendSignedAndVerified(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var got webhook.Payload
	status := http.StatusNoContent
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhook.Verify(secret, r.Header, body, now.Add(time.Minute), 0); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		got = webhook.Payload{}
		if json.Unmarshal(body, &got) != nil || r.Header.Get("Idempotency-Key") != got.ChallengeID {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "3")
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	s, err := webhook.New(webhook.Config{URL: srv.URL, Secret: secret, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	m := channeltest.Message("+15550100")
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if got.To != m.Destination || got.Code != "424242" || got.Text != m.Text || got.ChallengeID != "ch-42" || !got.ExpiresAt.Equal(m.ExpiresAt) {
		t.Fatalf("payload %+v", got)
	}
	if got.Kind != "code" {
		t.Fatalf("kind %q", got.Kind)
	}
	for st, want := range map[int]string{429: "retry 3s", 400: "permanent rejected", 500: "error"} {
		status = st
		err := s.Send(context.Background(), m)
		if k := channeltest.Kind(err); k != want {
			t.Errorf("HTTP %d: %s, want %s", st, k, want)
		}
		channeltest.Clean(t, err, "+15550100", "424242", string(secret))
	}
	other, _ := webhook.New(webhook.Config{URL: srv.URL, Secret: bytes.Repeat([]byte("x"), 32), Now: func() time.Time { return now }})
	if err := other.Send(context.Background(), m); channeltest.Kind(err) != "permanent provider_auth" {
		t.Errorf("wrong secret: %v", err)
	}
	status = http.StatusNoContent
	n := channeltest.Notice("+15550100")
	if err := s.Send(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	if got.Kind != "notice" || got.Code != "" || got.Text != n.Text || got.ChallengeID != "n-42" || got.To != n.Destination {
		t.Fatalf("notice payload %+v", got)
	}
}

func TestVerifyRejects(t *testing.T) {
	now := time.Unix(1772366400, 0)
	body := []byte(`{"v":1}`)
	h := http.Header{}
	h.Set(webhook.HeaderTimestamp, "1772366400")
	h.Set(webhook.HeaderSignature, webhook.Sign(secret, now.Unix(), body))
	if err := webhook.Verify(secret, h, body, now, 0); err != nil {
		t.Fatal(err)
	}
	if err := webhook.Verify(secret, h, []byte(`{"v":2}`), now, 0); err == nil {
		t.Error("changed body accepted")
	}
	if err := webhook.Verify(secret, h, body, now.Add(6*time.Minute), 0); err == nil {
		t.Error("replay after the tolerance accepted")
	}
	h2 := h.Clone()
	h2.Set(webhook.HeaderTimestamp, "1772366401")
	if err := webhook.Verify(secret, h2, body, now, 0); err == nil {
		t.Error("moved timestamp accepted")
	}
	h2.Del(webhook.HeaderTimestamp)
	if err := webhook.Verify(secret, h2, body, now, 0); err == nil {
		t.Error("missing timestamp accepted")
	}
}

func TestNewRejects(t *testing.T) {
	for name, cfg := range map[string]webhook.Config{
		"remote http":  {URL: "http://sms.example.org/hook", Secret: secret},
		"relative":     {URL: "/hook", Secret: secret},
		"short secret": {URL: "https://sms.example.org/hook", Secret: []byte("short")},
	} {
		if _, err := webhook.New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzVerify(f *testing.F) {
	f.Add("1772366400", "v1=00", []byte(`{"v":1}`))
	f.Add("", "", []byte(nil))
	now := time.Unix(1772366400, 0)
	f.Fuzz(func(t *testing.T, ts, sig string, body []byte) {
		h := http.Header{}
		h.Set(webhook.HeaderTimestamp, ts)
		h.Set(webhook.HeaderSignature, sig)
		if webhook.Verify(secret, h, body, now, 0) == nil {
			n, _ := strconv.ParseInt(ts, 10, 64)
			if !strings.Contains(sig, webhook.Sign(secret, n, body)) {
				t.Fatalf("forged signature %q accepted", sig)
			}
		}
	})
}
