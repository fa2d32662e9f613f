// Package sipgate sends codes by SMS through sipgate's REST API:
// POST {base}/v2/sessions/sms with HTTP basic auth (personal access token id and token,
// scope sessions:sms:write) and a JSON body {smsId, recipient, message}; 204 or 200 is
// acceptance.
//
// Security properties: see package channels.
package sipgate

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

// DefaultBaseURL is sipgate's API.
const DefaultBaseURL = "https://api.sipgate.com"

// Config configures a Sender.
type Config struct {
	BaseURL    string // default DefaultBaseURL
	TokenID    string // token-XXXXXX (required)
	Token      string // the personal access token (required)
	SMSID      string // the web SMS extension, e.g. s0 (required)
	HTTPClient *http.Client
	Now        func() time.Time
}

// Sender is a sipgate SMS channel.
type Sender struct{ cfg Config }

// New checks cfg and returns a Sender.
func New(cfg Config) (*Sender, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if cfg.TokenID == "" || cfg.Token == "" || cfg.SMSID == "" {
		return nil, errors.New("sipgate: token id, token and SMS extension id are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Sender{cfg: cfg}, nil
}

// Send posts one message.
func (s *Sender) Send(ctx context.Context, m channels.Message) error {
	body, _ := json.Marshal(struct {
		SMSID     string `json:"smsId"`
		Recipient string `json:"recipient"`
		Message   string `json:"message"`
	}{s.cfg.SMSID, m.Destination, m.TextOrDefault()})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, channels.JoinURL(s.cfg.BaseURL, "/v2/sessions/sms"), bytes.NewReader(body))
	if err != nil {
		return notify.Permanent{Err: errors.New("sipgate: bad base URL")}
	}
	req.SetBasicAuth(s.cfg.TokenID, s.cfg.Token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, _, err := channels.Do(s.cfg.HTTPClient, "sipgate", req)
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusOK {
		return nil
	}
	// 400 invalid recipient or message, 401 token, 403 scope or foreign smsId, 429, 5xx.
	return channels.StatusError("sipgate", resp, "", s.cfg.Now())
}
