// Package webhook delivers codes to an operator's own HTTP endpoint (an SMS gateway of
// their choice, a chat bridge): a JSON POST whose body is signed with HMAC-SHA-256 so
// that the receiver can trust it and reject replays.
//
// Request: POST <url>, Content-Type application/json, Idempotency-Key: <challenge id>,
//
//	Twofactor-Timestamp: <unix seconds>
//	Twofactor-Signature: v1=<hex HMAC-SHA-256(secret, "<timestamp>.<body>")>
//
// and the body {"v":1,"challenge_id","channel","to","subject","text","code","expires_at"}.
// A 2xx answer is acceptance; 429/503 with Retry-After retry later; other 4xx are
// permanent refusals. Receivers call Verify, which checks the signature in constant time
// and refuses a timestamp outside the tolerance (replays), and remember the
// Idempotency-Key for that long to drop a repeated delivery.
//
// Security properties: the HMAC authenticates the body and the time (RFC 2104; OWASP
// ASVS 4.0 V13.1.3 and V9.2: use an https URL so the code is not sent in clear); see
// also package channels.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/channels"
)

// Header names.
const (
	HeaderTimestamp = "Twofactor-Timestamp"
	HeaderSignature = "Twofactor-Signature"
)

// DefaultTolerance is how far a timestamp may be from the receiver's clock.
const DefaultTolerance = 5 * time.Minute

// Config configures a Sender.
type Config struct {
	URL        string // the endpoint (required; https unless on loopback)
	Secret     []byte // the shared HMAC key, at least 32 bytes (required)
	HTTPClient *http.Client
	Now        func() time.Time
}

// Sender is a webhook channel.
type Sender struct{ cfg Config }

// New checks cfg and returns a Sender.
func New(cfg Config) (*Sender, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, errors.New("webhook: URL must be an absolute http(s) URL")
	}
	if u.Scheme == "http" && !loopback(u.Hostname()) {
		return nil, errors.New("webhook: URL must use https (codes would cross the network in clear)")
	}
	if len(cfg.Secret) < 32 {
		return nil, errors.New("webhook: secret must be at least 32 bytes")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Sender{cfg: cfg}, nil
}

func loopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

// Payload is the JSON body. Kind is "code" or "notice"; a notice (a message without a
// code, e.g. a changed destination) has an empty code and its own text, and its
// challenge_id is the notice's id.
type Payload struct {
	V           int       `json:"v"`
	Kind        string    `json:"kind"`
	ChallengeID string    `json:"challenge_id"`
	Channel     string    `json:"channel"`
	To          string    `json:"to"`
	Subject     string    `json:"subject,omitempty"`
	Text        string    `json:"text"`
	Code        string    `json:"code"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// Sign returns the signature header value for body at ts.
func Sign(secret []byte, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(strconv.FormatInt(ts, 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify checks a received request's timestamp and signature headers against body.
// tolerance <= 0 means DefaultTolerance.
func Verify(secret []byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	ts, err := strconv.ParseInt(h.Get(HeaderTimestamp), 10, 64)
	if err != nil {
		return errors.New("webhook: missing or malformed " + HeaderTimestamp)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return errors.New("webhook: timestamp outside the tolerance (replay or clock skew)")
	}
	want := Sign(secret, ts, body)
	for _, got := range strings.Split(h.Get(HeaderSignature), ",") {
		if hmac.Equal([]byte(strings.TrimSpace(got)), []byte(want)) {
			return nil
		}
	}
	return errors.New("webhook: signature does not match")
}

// Send posts one message.
func (s *Sender) Send(ctx context.Context, m channels.Message) error {
	kind := notify.KindCode
	if m.IsNotice() {
		kind = notify.KindNotice
	}
	body, _ := json.Marshal(Payload{V: 1, Kind: kind, ChallengeID: m.ChallengeID, Channel: m.Channel, To: m.Destination,
		Subject: m.Subject, Text: m.TextOrDefault(), Code: m.Code, ExpiresAt: m.ExpiresAt.UTC()})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return notify.Permanent{Err: errors.New("webhook: bad URL")}
	}
	now := s.cfg.Now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", m.ChallengeID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(HeaderSignature, Sign(s.cfg.Secret, now.Unix(), body))
	resp, _, err := channels.Do(s.cfg.HTTPClient, "webhook", req)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	return channels.StatusError("webhook", resp, "", now)
}
