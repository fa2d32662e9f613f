package webpush_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/channels/webpush"
	"github.com/twofactor/twofactor/notify/channels/webpush/webpushtest"
	"github.com/twofactor/twofactor/notify/egress"
)

func newSender(t *testing.T, ps **webpushtest.Service) *webpush.Sender {
	t.Helper()
	priv, pub, err := webpush.GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	*ps = webpushtest.New(t, pub, "mailto:ops@auth.example")
	s, err := webpush.New(webpush.Config{VAPIDPublicKey: pub, VAPIDPrivateKey: priv, Subscriber: "ops@auth.example",
		HTTPClient: (*ps).Client(), Now: func() time.Time { return time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSendDecryptsAtThePushService(t *testing.T) {
	var ps *webpushtest.Service
	s := newSender(t, &ps)
	payload := []byte(`{"v":1,"challenge_id":"c-1","device_id":"d-1"}`)
	if err := s.Send(context.Background(), ps.Subscription(), payload); err != nil {
		t.Fatalf("send: %v (push service saw %v)", err, ps.Errors())
	}
	if got := ps.Received(); len(got) != 1 || string(got[0]) != string(payload) {
		t.Fatalf("push service decrypted %q", got)
	}
	// Encrypted for another auth secret: the push service cannot open it.
	sub := ps.Subscription()
	sub.Auth = base64.RawURLEncoding.EncodeToString(make([]byte, 16))
	if err := s.Send(context.Background(), sub, payload); !isPermanent(err) || len(ps.Errors()) != 1 || !strings.Contains(ps.Errors()[0], "decrypt") {
		t.Fatalf("wrong auth secret: %v, service saw %v", err, ps.Errors())
	}
}

func TestSendAnswers(t *testing.T) {
	var ps *webpushtest.Service
	s := newSender(t, &ps)
	cases := []struct {
		status int
		retry  string
		check  func(error) bool
	}{
		{http.StatusGone, "", func(err error) bool { return errors.Is(err, webpush.ErrGone) && isPermanent(err) }},
		{http.StatusNotFound, "", func(err error) bool { return errors.Is(err, webpush.ErrGone) }},
		{http.StatusTooManyRequests, "7", func(err error) bool { return retryOf(err) == 7*time.Second }},
		{http.StatusTooManyRequests, "Wed, 02 Dec 2026 09:00:30 GMT", func(err error) bool { return retryOf(err) == 30*time.Second }},
		{http.StatusServiceUnavailable, "", func(err error) bool { return retryOf(err) == 5*time.Second }},
		{http.StatusRequestEntityTooLarge, "", func(err error) bool { return isPermanent(err) && !errors.Is(err, webpush.ErrGone) }},
		{http.StatusInternalServerError, "", func(err error) bool { return err != nil && !isPermanent(err) && retryOf(err) == 0 }},
		{http.StatusFound, "", func(err error) bool {
			return isPermanent(err) && strings.Contains(err.Error(), "redirect not followed")
		}},
		{http.StatusOK, "", func(err error) bool { return err == nil }},
	}
	for _, c := range cases {
		ps.Answer(c.status, c.retry)
		err := s.Send(context.Background(), ps.Subscription(), []byte("x"))
		if !c.check(err) {
			t.Errorf("HTTP %d: %v", c.status, err)
		}
		if err != nil && strings.Contains(err.Error(), "sub-abc123") {
			t.Errorf("error quotes the endpoint: %v", err)
		}
	}
	// Push service down: a retryable error without the endpoint.
	ps.Close()
	err := s.Send(context.Background(), ps.Subscription(), []byte("x"))
	if err == nil || isPermanent(err) || strings.Contains(err.Error(), "sub-abc123") {
		t.Fatalf("service down: %v", err)
	}
}

func TestNewRefusesBadKeys(t *testing.T) {
	priv, pub, _ := webpush.GenerateVAPIDKeys()
	priv2, _, _ := webpush.GenerateVAPIDKeys()
	for name, cfg := range map[string]webpush.Config{
		"no public":  {VAPIDPrivateKey: priv, Subscriber: "a@b"},
		"mismatch":   {VAPIDPublicKey: pub, VAPIDPrivateKey: priv2, Subscriber: "a@b"},
		"no contact": {VAPIDPublicKey: pub, VAPIDPrivateKey: priv},
		"bad public": {VAPIDPublicKey: "AAAA", VAPIDPrivateKey: priv, Subscriber: "a@b"},
	} {
		if _, err := webpush.New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func isPermanent(err error) bool {
	var p notify.Permanent
	return errors.As(err, &p)
}

func retryOf(err error) time.Duration {
	var r notify.RetryAfter
	if errors.As(err, &r) {
		return r.D
	}
	return 0
}

// The default client is notify/egress's: a push service on loopback is refused
// before any request, as a permanent failure naming neither the endpoint's path.
func TestDefaultClientRefusesInternal(t *testing.T) {
	priv, pub, err := webpush.GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	ps := webpushtest.New(t, pub, "mailto:ops@auth.example")
	s, err := webpush.New(webpush.Config{VAPIDPublicKey: pub, VAPIDPrivateKey: priv, Subscriber: "ops@auth.example"})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Send(context.Background(), ps.Subscription(), []byte("x"))
	if !errors.Is(err, egress.ErrRefused) || !isPermanent(err) || strings.Contains(err.Error(), "sub-abc123") {
		t.Fatalf("send to loopback = %v, want a permanent refusal without the endpoint", err)
	}
	if len(ps.Received())+len(ps.Errors()) != 0 {
		t.Fatalf("the refused push service saw %d pushes, errors %v", len(ps.Received()), ps.Errors())
	}
}
