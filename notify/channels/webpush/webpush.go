// Package webpush delivers a push login's opaque wake-up to a browser or app through
// its Web Push subscription: the payload is encrypted for the subscription (RFC 8291,
// aes128gcm) and the request is signed with the operator's VAPID key (RFC 8292), using
// github.com/SherClockHolmes/webpush-go.
//
// # Security properties
//
//   - The payload is encrypted end to end for the subscription's p256dh key and auth
//     secret (RFC 8291 §3), so the push service relays ciphertext; and it is opaque
//     anyway (challenge id and device id only): the device fetches the login's
//     context over the authenticated device API.
//   - The VAPID JWT (ES256) names the push service's origin as aud and expires (at
//     most 24 h, RFC 8292 §2), so a captured header cannot be used elsewhere.
//   - An error never quotes the endpoint URL (a capability: whoever knows it may push
//     to the device) nor the keys; transport errors are stripped of the URL
//     (OWASP ASVS 4.0 V7.1.1).
//   - 404 and 410 report ErrGone (RFC 8030 §7.3: the subscription expired), so the
//     caller retires the endpoint and the device keeps working by polling; 429 and
//     503 honour Retry-After (RFC 9110 §10.2.3) through notify.RetryAfter; other 4xx
//     are notify.Permanent, and so are a 3xx (a redirect is not followed) and a
//     destination address notify/egress refuses (not public, not allowed).
package webpush

import (
	"context"
	"crypto/ecdh"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	wp "github.com/SherClockHolmes/webpush-go"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/channels"
	"github.com/twofactor/twofactor/notify/egress"
)

// ErrGone reports that the push service no longer knows the subscription (404/410).
var ErrGone = errors.New("webpush: subscription gone")

// Config is the operator's VAPID identity and the delivery's parameters.
type Config struct {
	// VAPIDPublicKey and VAPIDPrivateKey are base64url, as GenerateVAPIDKeys returns
	// them; the public key is the applicationServerKey a browser subscribes with.
	VAPIDPublicKey, VAPIDPrivateKey string
	// Subscriber is the operator's contact for the JWT's sub: an e-mail address or
	// an https: URL (RFC 8292 §2.1).
	Subscriber string
	// TTL is how long the push service keeps an undelivered push (default 2 min,
	// the challenge lifetime: a later wake-up is of no use).
	TTL time.Duration
	// HTTPClient sends the requests (default: notify/egress's client, which reaches
	// public addresses only, with a 10 s timeout).
	HTTPClient *http.Client
	// Now is the clock for Retry-After dates (default time.Now).
	Now func() time.Time
}

// Sender sends Web Push messages. It is safe for concurrent use.
type Sender struct{ cfg Config }

// GenerateVAPIDKeys makes a VAPID key pair (P-256), base64url.
func GenerateVAPIDKeys() (privateKey, publicKey string, err error) { return wp.GenerateVAPIDKeys() }

// New checks cfg and returns a Sender.
func New(cfg Config) (*Sender, error) {
	pub, err := decodeKey(cfg.VAPIDPublicKey)
	if err != nil {
		return nil, errors.New("webpush: VAPID public key: not base64url")
	}
	if _, err := ecdh.P256().NewPublicKey(pub); err != nil {
		return nil, errors.New("webpush: VAPID public key: not an uncompressed P-256 point")
	}
	priv, err := decodeKey(cfg.VAPIDPrivateKey)
	if err != nil || len(priv) != 32 {
		return nil, errors.New("webpush: VAPID private key: want 32 bytes in base64url")
	}
	if k, err := ecdh.P256().NewPrivateKey(priv); err != nil || string(k.PublicKey().Bytes()) != string(pub) {
		return nil, errors.New("webpush: VAPID private key does not match the public key")
	}
	if cfg.Subscriber == "" || strings.ContainsAny(cfg.Subscriber, "\r\n") {
		return nil, errors.New("webpush: subscriber: want a contact e-mail address or https URL")
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 2 * time.Minute
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = egress.NewClient(egress.Config{})
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Sender{cfg: cfg}, nil
}

func decodeKey(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// Subscription is a browser's PushSubscription: endpoint and keys (base64url).
type Subscription struct {
	Endpoint, P256dh, Auth string
}

// Send encrypts payload for sub and posts it to the push service. It returns nil
// once the service accepted it (2xx, normally 201 Created), an error wrapping
// ErrGone for 404/410, notify.RetryAfter for 429/503 and notify.Permanent for
// other refusals.
func (s *Sender) Send(ctx context.Context, sub Subscription, payload []byte) error {
	if len(payload) > 3000 {
		return notify.Permanent{Err: errors.New("webpush: payload over 3000 bytes")}
	}
	resp, err := wp.SendNotificationWithContext(ctx, payload, &wp.Subscription{
		Endpoint: sub.Endpoint, Keys: wp.Keys{P256dh: sub.P256dh, Auth: sub.Auth},
	}, &wp.Options{
		HTTPClient: s.cfg.HTTPClient, Subscriber: s.cfg.Subscriber, TTL: int(s.cfg.TTL / time.Second),
		Urgency: wp.UrgencyHigh, VAPIDPublicKey: s.cfg.VAPIDPublicKey, VAPIDPrivateKey: s.cfg.VAPIDPrivateKey,
	})
	if err != nil {
		return transportError(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return statusError(resp, s.cfg.Now())
}

// transportError drops the request URL (the endpoint) from err.
func transportError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("webpush: request: %w", err)
	}
	if errors.Is(err, egress.ErrRefused) {
		// Not a public address (notify/egress): trying again will not change it.
		return notify.Permanent{Err: fmt.Errorf("webpush: %w", err), Reason: notify.ReasonRejected}
	}
	// The library's own errors (bad keys) name no secret.
	return fmt.Errorf("webpush: request failed: %v", err)
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
		return notify.Permanent{Err: fmt.Errorf("webpush: HTTP %d: redirect not followed", c), Reason: notify.ReasonRejected}
	}
	// 429/503 with Retry-After, 401/403, other 4xx, 5xx: as every channel maps them.
	return channels.StatusError("webpush", resp, "", now)
}
