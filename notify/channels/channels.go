// Package channels defines what every delivery channel implements (Sender) and the
// HTTP error mapping they share; each provider is a small package below it (smtp,
// telegram, signal, twilio, sevenio, sipgate, webhook, outbox) that speaks the
// provider's real API with a configurable base URL and credentials.
//
// # Security properties
//
//   - A Message holds the opened destination and code only in memory; an error a Sender
//     returns never quotes them, nor a credential, nor a provider's answer body (which
//     may echo the number), only status codes and provider error codes: errors end up
//     in logs, dead letters and status events (OWASP ASVS 4.0 V7.1.1, V8.3.5).
//   - Errors of the HTTP client are stripped of the request URL, which for the Telegram
//     Bot API holds the bot token (ASVS V7.1.1).
//   - A provider's refusal is an error, never a success: the worker acknowledges a
//     message only after Send returned nil (NIST SP 800-63B §5.1.3.1: the code must reach
//     the device; a message reported sent but refused leaves the user waiting).
//   - Retry-After (RFC 9110 §10.2.3) and provider retry hints become notify.RetryAfter,
//     refusals notify.Permanent, so a provider is not hammered and a bad number does not
//     cost five paid attempts.
package channels

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/twofactor/twofactor/notify"
)

// Message is one code, or one notice without a code, to deliver, opened from its
// sealed GatewaySend.
type Message struct {
	// Kind is notify.KindCode or notify.KindNotice (a message without a code, such as
	// a changed destination; "" is a code). A notice is sent with its own text and
	// subject and never carries a code.
	Kind        string
	ChallengeID string // the challenge's message id, or the notice's own id
	Channel     string // notify.ChannelEmail, ...
	Destination string // e-mail address, E.164 number, chat id
	Subject     string // e-mail subject
	Text        string // plain-text body, the code included (a notice's whole text)
	Code        string // the code alone (for webhooks and tests; "" in a notice)
	ExpiresAt   time.Time
	Locale      string
}

// Sender delivers a Message through one provider. It returns nil only once the provider
// accepted the message; notify.RetryAfter to ask for a later attempt; notify.Permanent
// when retrying cannot help; any other error to retry with backoff.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// SenderFunc adapts a function to Sender.
type SenderFunc func(ctx context.Context, m Message) error

// Send calls f.
func (f SenderFunc) Send(ctx context.Context, m Message) error { return f(ctx, m) }

// MaxRetryAfter caps a provider's retry hint: past it the code has expired anyway.
const MaxRetryAfter = 10 * time.Minute

// DefaultRetryAfter is used for a 429 or 503 without a usable Retry-After.
const DefaultRetryAfter = 5 * time.Second

// ParseRetryAfter reads a Retry-After value: delay-seconds or an HTTP date (RFC 9110
// §10.2.3), relative to now. It reports false for anything else.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" || len(v) > 64 {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		if n > int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter, true
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return min(max(t.Sub(now), 0), MaxRetryAfter), true
}

// RetryHint turns a retry hint into notify.RetryAfter (capped; DefaultRetryAfter when
// d <= 0).
func RetryHint(d time.Duration, cause error) error {
	if d <= 0 {
		d = DefaultRetryAfter
	}
	return notify.RetryAfter{D: min(d, MaxRetryAfter), Err: cause}
}

// StatusError maps a provider's HTTP answer that is not a success: 429 and 503 to
// notify.RetryAfter (Retry-After honoured), 401 and 403 to notify.Permanent with
// ReasonProviderAuth, other 4xx to notify.Permanent with ReasonRejected, 5xx and the
// rest to a plain error (retried with backoff). detail, a provider error code, must not
// hold the destination.
func StatusError(provider string, resp *http.Response, detail string, now time.Time) error {
	msg := provider + ": HTTP " + strconv.Itoa(resp.StatusCode)
	if detail != "" {
		msg += " (" + detail + ")"
	}
	err := errors.New(msg)
	switch c := resp.StatusCode; {
	case c == http.StatusTooManyRequests || c == http.StatusServiceUnavailable:
		if d, ok := ParseRetryAfter(resp.Header.Get("Retry-After"), now); ok {
			// "0" means at once: the worker's own backoff then applies.
			return notify.RetryAfter{D: d, Err: err}
		}
		return RetryHint(0, err)
	case c == http.StatusUnauthorized || c == http.StatusForbidden:
		return notify.Permanent{Err: err, Reason: notify.ReasonProviderAuth}
	case c == http.StatusRequestTimeout:
		return err
	case c >= 400 && c < 500:
		return notify.Permanent{Err: err, Reason: notify.ReasonRejected}
	}
	return err
}

// TransportError reports a failed HTTP exchange without the request URL (which may carry
// a token) as a retryable error.
func TransportError(provider string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: request: %w", provider, err)
	}
	return fmt.Errorf("%s: request failed: %v", provider, err)
}

// MaxBody bounds a provider answer read by ReadBody.
const MaxBody = 64 << 10

// ReadBody reads at most MaxBody bytes of resp's body and closes it.
func ReadBody(resp *http.Response) []byte {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, MaxBody))
	return b
}

// Do sends req with client (http.DefaultClient if nil) and returns the answer with its
// body read, mapping transport failures through TransportError.
func Do(client *http.Client, provider string, req *http.Request) (*http.Response, []byte, error) {
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, TransportError(provider, err)
	}
	return resp, ReadBody(resp), nil
}

// JoinURL appends path to a configured base URL ("https://api.example.com" or with a
// trailing slash).
func JoinURL(base, path string) string {
	return strings.TrimRight(base, "/") + path
}

// IsNotice reports whether m is a notice (no code).
func (m Message) IsNotice() bool { return m.Kind == notify.KindNotice }

// TextOrDefault returns m.Text, or a plain fallback when authd rendered none: naming the
// code, or for a notice a generic security notice.
func (m Message) TextOrDefault() string {
	switch {
	case m.Text != "":
		return m.Text
	case m.IsNotice():
		return "A security setting of your account was changed. If this was not you, tell your administrator."
	}
	return "Your verification code is " + m.Code + ". Do not share it with anyone."
}

// SubjectOrDefault returns m.Subject, or a plain e-mail subject for its kind.
func (m Message) SubjectOrDefault() string {
	switch {
	case m.Subject != "":
		return m.Subject
	case m.IsNotice():
		return "Security notice"
	}
	return "Your verification code"
}
