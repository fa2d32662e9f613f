package ntfy_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/channels/ntfy"
	"github.com/twofactor/twofactor/notify/channels/ntfy/ntfytest"
	"github.com/twofactor/twofactor/notify/egress"
)

func TestPublishAndPoll(t *testing.T) {
	n := ntfytest.New(t)
	s := ntfy.New(ntfy.Config{HTTPClient: http.DefaultClient})
	payload := `{"v":1,"challenge_id":"c-1","device_id":"d-1"}`
	if err := s.Send(context.Background(), n.URL()+"/upAbC123?up=1", "", []byte(payload)); err != nil {
		t.Fatal(err)
	}
	got := n.Poll(t, "upAbC123")
	if len(got) != 1 || got[0].Message != payload || got[0].Title != "Sign-in request" {
		t.Fatalf("polled %+v", got)
	}
	if n.LastHeaders().Get("Authorization") != "" || n.LastHeaders().Get("Priority") != "high" || n.LastHeaders().Get("Cache") != "" {
		t.Fatalf("headers %v", n.LastHeaders())
	}
	// A protected topic with its token.
	if err := s.Send(context.Background(), n.URL()+"/private-xyz", "tk_good", []byte(payload)); err != nil {
		t.Fatal(err)
	}
	if got := n.Poll(t, "private-xyz"); len(got) != 1 {
		t.Fatalf("polled %+v", got)
	}
}

func TestPublishRefusals(t *testing.T) {
	n := ntfytest.New(t)
	s := ntfy.New(ntfy.Config{HTTPClient: http.DefaultClient, NoCache: true})
	ctx := context.Background()
	for name, c := range map[string]struct {
		url, token string
		check      func(error) bool
	}{
		"no token":    {n.URL() + "/private-xyz", "", isPermanent},
		"wrong token": {n.URL() + "/private-xyz", "tk_secret_bad", isPermanent},
		"bad token":   {n.URL() + "/private-xyz", "tk\r\nX: y", isPermanent},
		"bad url":     {"http://[::1", "", isPermanent},
	} {
		err := s.Send(ctx, c.url, c.token, []byte("x"))
		if !c.check(err) {
			t.Errorf("%s: %v", name, err)
		}
		if err != nil && (strings.Contains(err.Error(), "tk_secret_bad") || strings.Contains(err.Error(), "private-xyz")) {
			t.Errorf("%s: error quotes a secret: %v", name, err)
		}
	}
	n.Unregister("upGone")
	if err := s.Send(ctx, n.URL()+"/upGone?up=1", "", []byte("x")); !errors.Is(err, ntfy.ErrGone) || !isPermanent(err) {
		t.Fatalf("gone: %v", err)
	}
	n.SetLimited(true)
	err := s.Send(ctx, n.URL()+"/topic", "", []byte("x"))
	var ra notify.RetryAfter
	if !errors.As(err, &ra) || ra.D != 12*time.Second {
		t.Fatalf("rate limited: %v", err)
	}
	n.Close()
	if err := s.Send(ctx, n.URL()+"/topic", "", []byte("x")); err == nil || isPermanent(err) || strings.Contains(err.Error(), "/topic") {
		t.Fatalf("server down: %v", err)
	}
}

func isPermanent(err error) bool {
	var p notify.Permanent
	return errors.As(err, &p)
}

// The default client is notify/egress's: a topic on a loopback server is refused
// before any request (a permanent failure, not a retry), and the error names the
// host, not the topic. A redirect is a permanent refusal, not followed.
func TestDefaultClientRefusesInternalAndRedirects(t *testing.T) {
	n := ntfytest.New(t)
	err := ntfy.New(ntfy.Config{}).Send(context.Background(), n.URL()+"/upSecretTopic", "", []byte(`{}`))
	var perm notify.Permanent
	if !errors.Is(err, egress.ErrRefused) || !errors.As(err, &perm) || strings.Contains(err.Error(), "upSecretTopic") {
		t.Fatalf("send to loopback = %v, want a permanent refusal without the topic", err)
	}
	if got := n.Poll(t, "upSecretTopic"); len(got) != 0 {
		t.Fatalf("the refused server got %+v", got)
	}

	redirect := httptest.NewServer(http.RedirectHandler(n.URL()+"/upSecretTopic", http.StatusFound))
	defer redirect.Close()
	a, _ := egress.ParseAllow("127.0.0.1")
	err = ntfy.New(ntfy.Config{HTTPClient: egress.NewClient(egress.Config{Allow: a})}).Send(context.Background(), redirect.URL+"/t", "", []byte(`{}`))
	if !errors.As(err, &perm) || !strings.Contains(err.Error(), "redirect not followed") {
		t.Fatalf("send to a redirect = %v, want a permanent refusal", err)
	}
	if got := n.Poll(t, "upSecretTopic"); len(got) != 0 {
		t.Fatalf("the redirect was followed: %+v", got)
	}
}
