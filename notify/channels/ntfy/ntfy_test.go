package ntfy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/channels/ntfy"
)

// ntfyServer speaks ntfy's publish API (POST /<topic>) and its poll API
// (GET /<topic>/json?poll=1), with one access-controlled topic, a rate limit and
// UnifiedPush-style topics that can be unregistered.
type ntfyServer struct {
	srv *httptest.Server

	mu        sync.Mutex
	messages  map[string][]message
	limited   bool
	gone      map[string]bool
	lastHeads http.Header
}

type message struct {
	ID      string `json:"id"`
	Time    int64  `json:"time"`
	Event   string `json:"event"`
	Topic   string `json:"topic"`
	Title   string `json:"title,omitempty"`
	Message string `json:"message"`
}

func newNtfyServer(t *testing.T) *ntfyServer {
	n := &ntfyServer{messages: map[string][]message{}, gone: map[string]bool{}}
	n.srv = httptest.NewServer(http.HandlerFunc(n.serve))
	t.Cleanup(n.srv.Close)
	return n
}

func ntfyError(w http.ResponseWriter, code, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"code":%d,"http":%d,"error":%q,"link":"https://ntfy.sh/docs/publish/"}`+"\n", code, status, msg)
}

func (n *ntfyServer) serve(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	defer n.mu.Unlock()
	topic, poll := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/"), "/json")
	switch {
	case n.gone[topic]:
		ntfyError(w, 40401, http.StatusNotFound, "page not found")
	case r.Method == http.MethodGet && poll && r.URL.Query().Get("poll") == "1":
		for _, m := range n.messages[topic] {
			json.NewEncoder(w).Encode(m)
		}
	case r.Method != http.MethodPost && r.Method != http.MethodPut:
		ntfyError(w, 40501, http.StatusMethodNotAllowed, "method not allowed")
	case strings.HasPrefix(topic, "private-") && r.Header.Get("Authorization") != "Bearer tk_good":
		if r.Header.Get("Authorization") == "" {
			ntfyError(w, 40101, http.StatusUnauthorized, "unauthorized")
		} else {
			ntfyError(w, 40301, http.StatusForbidden, "forbidden")
		}
	case n.limited:
		w.Header().Set("Retry-After", "12")
		ntfyError(w, 42901, http.StatusTooManyRequests, "limit reached: too many requests")
	default:
		body, _ := io.ReadAll(io.LimitReader(r.Body, 4096))
		m := message{ID: fmt.Sprintf("m%d", len(n.messages[topic])), Time: time.Now().Unix(), Event: "message",
			Topic: topic, Title: r.Header.Get("Title"), Message: string(body)}
		n.messages[topic] = append(n.messages[topic], m)
		n.lastHeads = r.Header.Clone()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(m)
	}
}

// poll reads a topic's cached messages as a polling device does.
func (n *ntfyServer) poll(t *testing.T, topic string) []message {
	t.Helper()
	resp, err := http.Get(n.srv.URL + "/" + topic + "/json?poll=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []message
	dec := json.NewDecoder(resp.Body)
	for dec.More() {
		var m message
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func TestPublishAndPoll(t *testing.T) {
	n := newNtfyServer(t)
	s := ntfy.New(ntfy.Config{HTTPClient: n.srv.Client()})
	payload := `{"v":1,"challenge_id":"c-1","device_id":"d-1"}`
	if err := s.Send(context.Background(), n.srv.URL+"/upAbC123?up=1", "", []byte(payload)); err != nil {
		t.Fatal(err)
	}
	got := n.poll(t, "upAbC123")
	if len(got) != 1 || got[0].Message != payload || got[0].Title != "Sign-in request" {
		t.Fatalf("polled %+v", got)
	}
	if n.lastHeads.Get("Authorization") != "" || n.lastHeads.Get("Priority") != "high" || n.lastHeads.Get("Cache") != "" {
		t.Fatalf("headers %v", n.lastHeads)
	}
	// A protected topic with its token.
	if err := s.Send(context.Background(), n.srv.URL+"/private-xyz", "tk_good", []byte(payload)); err != nil {
		t.Fatal(err)
	}
	if got := n.poll(t, "private-xyz"); len(got) != 1 {
		t.Fatalf("polled %+v", got)
	}
}

func TestPublishRefusals(t *testing.T) {
	n := newNtfyServer(t)
	s := ntfy.New(ntfy.Config{HTTPClient: n.srv.Client(), NoCache: true})
	ctx := context.Background()
	for name, c := range map[string]struct {
		url, token string
		check      func(error) bool
	}{
		"no token":    {n.srv.URL + "/private-xyz", "", isPermanent},
		"wrong token": {n.srv.URL + "/private-xyz", "tk_secret_bad", isPermanent},
		"bad token":   {n.srv.URL + "/private-xyz", "tk\r\nX: y", isPermanent},
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
	n.mu.Lock()
	n.gone["upGone"] = true
	n.mu.Unlock()
	if err := s.Send(ctx, n.srv.URL+"/upGone?up=1", "", []byte("x")); !errors.Is(err, ntfy.ErrGone) || !isPermanent(err) {
		t.Fatalf("gone: %v", err)
	}
	n.mu.Lock()
	n.limited = true
	n.mu.Unlock()
	err := s.Send(ctx, n.srv.URL+"/topic", "", []byte("x"))
	var ra notify.RetryAfter
	if !errors.As(err, &ra) || ra.D != 12*time.Second {
		t.Fatalf("rate limited: %v", err)
	}
	n.srv.Close()
	if err := s.Send(ctx, n.srv.URL+"/topic", "", []byte("x")); err == nil || isPermanent(err) || strings.Contains(err.Error(), "/topic") {
		t.Fatalf("server down: %v", err)
	}
}

func isPermanent(err error) bool {
	var p notify.Permanent
	return errors.As(err, &p)
}
