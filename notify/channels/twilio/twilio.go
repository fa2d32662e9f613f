// Package twilio sends codes by SMS through Twilio's Programmable Messaging API:
// POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json with HTTP basic auth
// (account SID and auth token, or an API key SID and secret) and a form body
// (To, From or MessagingServiceSid, Body). A 201 with a message sid is acceptance.
//
// Security properties: see package channels. Errors carry Twilio's numeric error code,
// never its message, which quotes the number (e.g. 21211 "The 'To' number … is not a
// valid phone number").
package twilio

import (
	"context"
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

// DefaultBaseURL is Twilio's API.
const DefaultBaseURL = "https://api.twilio.com"

// Config configures a Sender.
type Config struct {
	BaseURL    string // default DefaultBaseURL
	AccountSID string // ACxxxxxxxx (required)
	// Username is the basic-auth user: an API key SID (SKxxxx), default AccountSID.
	Username string
	Password string // auth token or API key secret (required)
	// From is the sending number (E.164) or alphanumeric sender id; or set
	// MessagingServiceSID instead.
	From                string
	MessagingServiceSID string
	HTTPClient          *http.Client
	Now                 func() time.Time
}

// Sender is a Twilio SMS channel.
type Sender struct{ cfg Config }

// New checks cfg and returns a Sender.
func New(cfg Config) (*Sender, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if cfg.AccountSID == "" || cfg.Password == "" {
		return nil, errors.New("twilio: account SID and auth token are required")
	}
	if strings.ContainsAny(cfg.AccountSID, "/?#") {
		return nil, errors.New("twilio: account SID has characters outside a path segment")
	}
	if cfg.From == "" && cfg.MessagingServiceSID == "" {
		return nil, errors.New("twilio: From or MessagingServiceSID is required")
	}
	if cfg.Username == "" {
		cfg.Username = cfg.AccountSID
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Sender{cfg: cfg}, nil
}

// apiError is Twilio's error body: {"code":21211,"message":"…","more_info":"…","status":400}.
type apiError struct {
	Code   int `json:"code"`
	Status int `json:"status"`
}

// Send posts one message.
func (s *Sender) Send(ctx context.Context, m channels.Message) error {
	form := url.Values{"To": {m.Destination}, "Body": {m.TextOrDefault()}}
	if s.cfg.MessagingServiceSID != "" {
		form.Set("MessagingServiceSid", s.cfg.MessagingServiceSID)
	} else {
		form.Set("From", s.cfg.From)
	}
	u := channels.JoinURL(s.cfg.BaseURL, "/2010-04-01/Accounts/"+url.PathEscape(s.cfg.AccountSID)+"/Messages.json")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return notify.Permanent{Err: errors.New("twilio: bad base URL")}
	}
	req.SetBasicAuth(s.cfg.Username, s.cfg.Password)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, body, err := channels.Do(s.cfg.HTTPClient, "twilio", req)
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusCreated || resp.StatusCode == http.StatusOK {
		var ok struct {
			SID    string `json:"sid"`
			Status string `json:"status"`
		}
		if json.Unmarshal(body, &ok) != nil || ok.SID == "" {
			return errors.New("twilio: success answer without a message sid")
		}
		if ok.Status == "failed" || ok.Status == "undelivered" {
			return notify.Permanent{Err: errors.New("twilio: message " + ok.Status), Reason: notify.ReasonRejected}
		}
		return nil
	}
	var ae apiError
	_ = json.Unmarshal(body, &ae)
	detail := ""
	if ae.Code != 0 {
		detail = "twilio error " + strconv.Itoa(ae.Code)
	}
	// 400 (21211 invalid number, 21610 unsubscribed, 21614 not a mobile, 21606 From
	// not ours) is permanent; 401 (20003) a credential problem; 429 (20429) and 503 retry.
	return channels.StatusError("twilio", resp, detail, s.cfg.Now())
}
