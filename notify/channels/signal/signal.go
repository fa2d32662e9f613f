// Package signal sends codes through signal-cli-rest-api
// (github.com/bbernhard/signal-cli-rest-api): POST {base}/v2/send with a JSON body
// {message, number, recipients}; 201 with a timestamp is acceptance.
//
// A 429 from it means Signal wants the sending account to solve a captcha (the answer
// carries challenge tokens to lift the limit through
// /v1/accounts/{number}/rate-limit-challenge). Retrying cannot help until an operator
// does so, so it is a notify.Permanent with ReasonCaptchaRequired: the backend sees the
// failure at once and can offer another method, and notifyd raises an operator alert
// (status reason and metric).
//
// Security properties: see package channels. Errors never quote the answer's "error"
// text, which names the recipient's number.
package signal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/channels"
)

// Config configures a Sender.
type Config struct {
	BaseURL    string // the REST API, e.g. http://signal-cli:8080 (required)
	Number     string // the registered sending account, E.164 (required)
	HTTPClient *http.Client
	Now        func() time.Time
}

// Sender is a Signal channel.
type Sender struct{ cfg Config }

// ErrCaptchaRequired is wrapped by the error of a send refused until the operator
// solves Signal's rate-limit challenge.
var ErrCaptchaRequired = errors.New("signal: rate limited, the sending account must solve a captcha (see /v1/accounts/{number}/rate-limit-challenge)")

// New checks cfg and returns a Sender.
func New(cfg Config) (*Sender, error) {
	if cfg.BaseURL == "" || cfg.Number == "" {
		return nil, errors.New("signal: base URL and sending number are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Sender{cfg: cfg}, nil
}

// Send posts one message.
func (s *Sender) Send(ctx context.Context, m channels.Message) error {
	body, _ := json.Marshal(struct {
		Message    string   `json:"message"`
		Number     string   `json:"number"`
		Recipients []string `json:"recipients"`
	}{m.TextOrDefault(), s.cfg.Number, []string{m.Destination}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, channels.JoinURL(s.cfg.BaseURL, "/v2/send"), bytes.NewReader(body))
	if err != nil {
		return notify.Permanent{Err: errors.New("signal: bad base URL")}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, answer, err := channels.Do(s.cfg.HTTPClient, "signal", req)
	if err != nil {
		return err
	}
	switch resp.StatusCode {
	case http.StatusCreated, http.StatusOK:
		var ok struct {
			Timestamp json.RawMessage `json:"timestamp"`
		}
		if json.Unmarshal(answer, &ok) != nil || len(ok.Timestamp) == 0 {
			return errors.New("signal: success answer without a timestamp")
		}
		return nil
	case http.StatusTooManyRequests:
		return notify.Permanent{Err: ErrCaptchaRequired, Reason: notify.ReasonCaptchaRequired}
	}
	// 400: unregistered recipient, bad number, untrusted identity; 5xx: signal-cli down.
	return channels.StatusError("signal", resp, "", s.cfg.Now())
}
