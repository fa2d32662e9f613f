// Package ntfytest runs a server speaking ntfy's publish API (POST /<topic>, JSON
// answers and ntfy's error envelope {code, http, error, link}) and its poll API
// (GET /<topic>/json?poll=1), for tests. Topics named "private-…" need the access
// token "tk_good" (401 without, 403 with another).
package ntfytest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server speaks ntfy's publish API (POST /<topic>) and its poll API
// (GET /<topic>/json?poll=1), with one access-controlled topic, a rate limit and
// UnifiedPush-style topics that can be unregistered.
type Server struct {
	srv *httptest.Server

	mu        sync.Mutex
	messages  map[string][]Message
	limited   bool
	gone      map[string]bool
	lastHeads http.Header
}

// URL is the server's base URL; a topic's URL is URL()+"/"+topic.
func (n *Server) URL() string { return n.srv.URL }

// Close stops the server.
func (n *Server) Close() { n.srv.Close() }

// SetLimited makes publishing answer 429 with Retry-After: 12 (ntfy code 42901).
func (n *Server) SetLimited(on bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.limited = on
}

// Unregister makes a topic answer 404, as a removed UnifiedPush registration does.
func (n *Server) Unregister(topic string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.gone[topic] = true
}

// LastHeaders are the headers of the last message published.
func (n *Server) LastHeaders() http.Header {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.lastHeads.Clone()
}

// Message is a message as ntfy's JSON API shows it.
type Message struct {
	ID      string `json:"id"`
	Time    int64  `json:"time"`
	Event   string `json:"event"`
	Topic   string `json:"topic"`
	Title   string `json:"title,omitempty"`
	Message string `json:"message"`
}

// New starts the server (plain HTTP); it stops when the test ends.
func New(t testing.TB) *Server {
	n := &Server{messages: map[string][]Message{}, gone: map[string]bool{}}
	n.srv = httptest.NewServer(http.HandlerFunc(n.serve))
	t.Cleanup(n.srv.Close)
	return n
}

func ntfyError(w http.ResponseWriter, code, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"code":%d,"http":%d,"error":%q,"link":"https://ntfy.sh/docs/publish/"}`+"\n", code, status, msg)
}

func (n *Server) serve(w http.ResponseWriter, r *http.Request) {
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
		m := Message{ID: fmt.Sprintf("m%d", len(n.messages[topic])), Time: time.Now().Unix(), Event: "message",
			Topic: topic, Title: r.Header.Get("Title"), Message: string(body)}
		n.messages[topic] = append(n.messages[topic], m)
		n.lastHeads = r.Header.Clone()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(m)
	}
}

// Poll reads a topic's cached messages as a polling device does.
func (n *Server) Poll(t testing.TB, topic string) []Message {
	t.Helper()
	resp, err := http.Get(n.srv.URL + "/" + topic + "/json?poll=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []Message
	dec := json.NewDecoder(resp.Body)
	for dec.More() {
		var m Message
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}
