// Package ntfy delivers a push login's opaque wake-up to a device's ntfy or
// UnifiedPush topic: an HTTP POST of the payload to the topic URL (ntfy's publish
// API; a UnifiedPush endpoint served by ntfy takes the same request), with an
// optional access token.
//
// # Security properties
//
//   - The payload is opaque (challenge id and device id only): ntfy stores and
//     relays it in clear, so it must carry nothing of the login; the device fetches
//     the context over the authenticated device API.
//   - The topic URL is a capability (whoever knows it may publish and, on public
//     servers, subscribe) and the token a credential: errors quote neither, nor the
//     server's answer body; transport errors are stripped of the URL (OWASP ASVS 4.0
//     V7.1.1).
//   - 404 and 410 report ErrGone (the topic or UnifiedPush registration is gone), so
//     the caller retires the endpoint and the device keeps polling; 429 and 503
//     honour Retry-After (RFC 9110 §10.2.3) through notify.RetryAfter; 401, 403 and
//     other 4xx are notify.Permanent, and so are a 3xx (a redirect is not followed)
//     and a destination address notify/egress refuses (not public, not allowed).
package ntfy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/channels"
	"github.com/twofactor/twofactor/notify/egress"
)

// ErrGone reports that the topic or UnifiedPush endpoint no longer exists (404/410).
var ErrGone = errors.New("ntfy: topic gone")

// Config tunes delivery.
type Config struct {
	// Title is the notification's title a plain ntfy subscriber shows (default
	// "Sign-in request"). It must not name the login.
	Title string
	// NoCache sends "Cache: no": the server keeps no copy, so only connected
	// subscribers get the message. Off by default: a device that polls its topic
	// needs the cached message.
	NoCache bool
	// HTTPClient sends the requests (default: notify/egress's client, which reaches
	// public addresses only, with a 10 s timeout).
	HTTPClient *http.Client
	// Now is the clock for Retry-After dates (default time.Now).
	Now func() time.Time
}

// Sender publishes to ntfy topics. It is safe for concurrent use.
type Sender struct{ cfg Config }

// New returns a Sender.
func New(cfg Config) *Sender {
	if cfg.Title == "" {
		cfg.Title = "Sign-in request"
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = egress.NewClient(egress.Config{})
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Sender{cfg: cfg}
}

// Send posts payload to topicURL, with token as a Bearer access token when not
// empty. It returns nil once the server accepted the message (2xx).
func (s *Sender) Send(ctx context.Context, topicURL, token string, payload []byte) error {
	if strings.ContainsAny(token, "\r\n") {
		return notify.Permanent{Err: errors.New("ntfy: token is not one line")}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, topicURL, bytes.NewReader(payload))
	if err != nil {
		return notify.Permanent{Err: errors.New("ntfy: topic URL does not parse")}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Title", s.cfg.Title)
	req.Header.Set("Priority", "high")
	req.Header.Set("Tags", "key")
	if s.cfg.NoCache {
		req.Header.Set("Cache", "no")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("ntfy: request: %w", err)
		}
		if errors.Is(err, egress.ErrRefused) {
			// Not a public address (notify/egress): trying again will not change it.
			return notify.Permanent{Err: fmt.Errorf("ntfy: %w", err), Reason: notify.ReasonRejected}
		}
		return fmt.Errorf("ntfy: request failed: %v", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return statusError(resp, s.cfg.Now())
}

func statusError(resp *http.Response, now time.Time) error {
	c := resp.StatusCode
	switch {
	case c >= 200 && c < 300:
		return nil
	case c == http.StatusNotFound || c == http.StatusGone:
		return notify.Permanent{Err: fmt.Errorf("%w: HTTP %d", ErrGone, c)}
	case c >= 300 && c < 400:
		// The delivery client follows no redirect (notify/egress).
		return notify.Permanent{Err: fmt.Errorf("ntfy: HTTP %d: redirect not followed", c), Reason: notify.ReasonRejected}
	}
	// 429/503 with Retry-After, 401/403, other 4xx, 5xx: as every channel maps them.
	return channels.StatusError("ntfy", resp, "", now)
}
