// Package sevenio sends codes by SMS through seven.io: POST {base}/api/sms with the
// X-Api-Key header and a form body (to, text, from), answered 200 with a JSON body whose
// "success" field is seven's return code ("100": accepted).
//
// Security properties: see package channels. Errors carry seven's return code only.
package sevenio

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/channels"
)

// DefaultBaseURL is seven's gateway.
const DefaultBaseURL = "https://gateway.seven.io"

// Config configures a Sender.
type Config struct {
	BaseURL    string // default DefaultBaseURL
	APIKey     string // required
	From       string // sender id (optional)
	HTTPClient *http.Client
	Now        func() time.Time
}

// Sender is a seven.io SMS channel.
type Sender struct{ cfg Config }

// New checks cfg and returns a Sender.
func New(cfg Config) (*Sender, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if cfg.APIKey == "" {
		return nil, errors.New("sevenio: API key is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Sender{cfg: cfg}, nil
}

// answer is seven's JSON answer (the code may also come alone as the body).
type answer struct {
	Success json.RawMessage `json:"success"`
}

// Send posts one message.
func (s *Sender) Send(ctx context.Context, m channels.Message) error {
	form := url.Values{"to": {m.Destination}, "text": {m.TextOrDefault()}}
	if s.cfg.From != "" {
		form.Set("from", s.cfg.From)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, channels.JoinURL(s.cfg.BaseURL, "/api/sms"), strings.NewReader(form.Encode()))
	if err != nil {
		return notify.Permanent{Err: errors.New("sevenio: bad base URL")}
	}
	req.Header.Set("X-Api-Key", s.cfg.APIKey)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, body, err := channels.Do(s.cfg.HTTPClient, "sevenio", req)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return channels.StatusError("sevenio", resp, "", s.cfg.Now())
	}
	return returnCode(returnCodeOf(body))
}

func returnCodeOf(body []byte) string {
	var a answer
	if json.Unmarshal(body, &a) == nil && len(a.Success) > 0 {
		return strings.Trim(string(a.Success), `"`)
	}
	return strings.TrimSpace(string(body)) // the plain-text answer form
}

// returnCode maps seven's return codes (docs.seven.io, SMS, return codes).
func returnCode(code string) error {
	if len(code) > 8 {
		code = code[:8]
	}
	err := errors.New("sevenio: return code " + code)
	switch code {
	case "100":
		return nil
	case "202", "301", "403": // invalid recipient, recipient missing, daily limit for it
		return notify.Permanent{Err: err, Reason: notify.ReasonRejected}
	case "201", "305", "401", "902", "903": // sender, text or account settings
		return notify.Permanent{Err: err, Reason: notify.ReasonRejected}
	case "900", "901": // authentication failed
		return notify.Permanent{Err: err, Reason: notify.ReasonProviderAuth}
	case "402": // the same text to the same number within 180 s
		return channels.RetryHint(180*time.Second, err)
	}
	return err // 101 partial, 500 credit, 600 carrier, 700 unknown: retry
}
