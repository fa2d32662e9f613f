package channels_test

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/twofactor/twofactor/notify/channels"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"0":                             0,
		"7":                             7 * time.Second,
		" 12 ":                          12 * time.Second,
		"999999999999":                  channels.MaxRetryAfter,
		"Sun, 01 Mar 2026 12:00:30 GMT": 30 * time.Second,
		"Sun, 01 Mar 2026 11:00:00 GMT": 0,
		"Mon, 02 Mar 2026 12:00:00 GMT": channels.MaxRetryAfter,
	} {
		got, ok := channels.ParseRetryAfter(v, now)
		if !ok || got != want {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v", v, got, ok, want)
		}
	}
	for _, v := range []string{"", "-1", "soon", "1.5", strings.Repeat("9", 80)} {
		if _, ok := channels.ParseRetryAfter(v, now); ok {
			t.Errorf("ParseRetryAfter(%q) accepted", v)
		}
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"7", "Sun, 01 Mar 2026 12:00:30 GMT", "-1", ""} {
		f.Add(s)
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := channels.ParseRetryAfter(v, now)
		if ok && (d < 0 || d > channels.MaxRetryAfter) {
			t.Fatalf("ParseRetryAfter(%q) = %v", v, d)
		}
	})
}

func TestTransportErrorDropsURL(t *testing.T) {
	err := &url.Error{Op: "Post", URL: "https://api.telegram.org/bot123:SECRET/sendMessage", Err: errors.New("dial tcp: connection refused")}
	got := channels.TransportError("telegram", err)
	if strings.Contains(got.Error(), "SECRET") || !strings.Contains(got.Error(), "connection refused") {
		t.Fatalf("TransportError = %q", got)
	}
}

func TestStatusErrorKinds(t *testing.T) {
	now := time.Now()
	for code, want := range map[int]string{400: "permanent", 401: "permanent", 404: "permanent", 408: "plain", 429: "retry", 500: "plain", 503: "retry"} {
		err := channels.StatusError("p", &http.Response{StatusCode: code, Header: http.Header{}}, "", now)
		got := "plain"
		switch {
		case strings.HasPrefix(err.Error(), "permanent"):
			got = "permanent"
		case strings.HasPrefix(err.Error(), "retry after"):
			got = "retry"
		}
		if got != want {
			t.Errorf("HTTP %d: %s (%v), want %s", code, got, err, want)
		}
	}
}
