// Package telegram sends codes through the Telegram Bot API (sendMessage, plain text:
// no parse mode, so nothing in the text needs escaping) and receives the updates that
// bind a chat without a chat id: a user opens https://t.me/<bot>?start=<token>
// (package tglink), Telegram sends "/start <token>", and Poll (long-polling getUpdates)
// or WebhookHandler hands it over.
//
// Errors follow the Bot API's answer {"ok":false,"error_code":N,"description":"…",
// "parameters":{"retry_after":S}}: 429 honours retry_after; 400 (chat not found) and
// 403 (the user blocked the bot) are permanent refusals; 401 means a wrong bot token.
//
// Security properties: see package channels. The bot token is part of every request
// URL, so no error of this package carries a URL; the webhook handler compares the
// secret-token header in constant time (OWASP ASVS 4.0 V2.9, V13.1).
package telegram

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/channels"
)

// DefaultBaseURL is the Bot API.
const DefaultBaseURL = "https://api.telegram.org"

// Config configures a Bot.
type Config struct {
	BaseURL string // default DefaultBaseURL
	Token   string // the bot token from @BotFather (required)
	// PollTimeout is the long-poll timeout of getUpdates; default 30s.
	PollTimeout time.Duration
	// ConflictWait is the pause after a 409 (another poller or a webhook is set) or a
	// failed poll; default 5s.
	ConflictWait time.Duration
	HTTPClient   *http.Client
	Now          func() time.Time
}

// Bot is a Telegram channel (Send) and update receiver (Poll, WebhookHandler).
type Bot struct{ cfg Config }

// New checks cfg and returns a Bot.
func New(cfg Config) (*Bot, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if cfg.Token == "" {
		return nil, errors.New("telegram: bot token is required")
	}
	if cfg.PollTimeout <= 0 {
		cfg.PollTimeout = 30 * time.Second
	}
	if cfg.ConflictWait <= 0 {
		cfg.ConflictWait = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Bot{cfg: cfg}, nil
}

// apiAnswer is every Bot API answer.
type apiAnswer struct {
	OK          bool            `json:"ok"`
	ErrorCode   int             `json:"error_code"`
	Description string          `json:"description"`
	Result      json.RawMessage `json:"result"`
	Parameters  struct {
		RetryAfter int `json:"retry_after"`
	} `json:"parameters"`
}

// call posts a JSON request to method and returns the result of a successful answer.
func (b *Bot) call(ctx context.Context, client *http.Client, method string, req any) (json.RawMessage, error) {
	body, _ := json.Marshal(req)
	u := channels.JoinURL(b.cfg.BaseURL, "/bot"+b.cfg.Token+"/"+method)
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, notify.Permanent{Err: errors.New("telegram: bad base URL")}
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, raw, err := channels.Do(client, "telegram", hr)
	if err != nil {
		return nil, err
	}
	var a apiAnswer
	if json.Unmarshal(raw, &a) != nil {
		if resp.StatusCode >= 400 {
			return nil, channels.StatusError("telegram "+method, resp, "", b.cfg.Now())
		}
		return nil, errors.New("telegram " + method + ": answer is not JSON")
	}
	if a.OK && resp.StatusCode == http.StatusOK {
		return a.Result, nil
	}
	return nil, b.apiError(method, resp, a)
}

func (b *Bot) apiError(method string, resp *http.Response, a apiAnswer) error {
	code := a.ErrorCode
	if code == 0 {
		code = resp.StatusCode
	}
	desc := a.Description
	if len(desc) > 120 {
		desc = desc[:120]
	}
	err := errors.New("telegram " + method + ": error " + strconv.Itoa(code) + " " + strconv.Quote(desc))
	switch {
	case code == http.StatusTooManyRequests:
		return channels.RetryHint(time.Duration(a.Parameters.RetryAfter)*time.Second, err)
	case code == http.StatusUnauthorized:
		return notify.Permanent{Err: err, Reason: notify.ReasonProviderAuth}
	case code == http.StatusConflict:
		return &ConflictError{err}
	case code >= 400 && code < 500:
		// 400 chat not found, 403 bot blocked by the user or kicked from the group.
		return notify.Permanent{Err: err, Reason: notify.ReasonRejected}
	}
	return err
}

// ConflictError is a 409 from getUpdates: another process polls with this token, or a
// webhook is set.
type ConflictError struct{ err error }

func (c *ConflictError) Error() string { return c.err.Error() }

// Send sends m's text to the chat m.Destination.
func (b *Bot) Send(ctx context.Context, m channels.Message) error {
	return b.SendText(ctx, m.Destination, m.TextOrDefault())
}

// SendText sends a plain-text message to chatID.
func (b *Bot) SendText(ctx context.Context, chatID, text string) error {
	if chatID == "" {
		return notify.Permanent{Err: errors.New("telegram: empty chat id"), Reason: notify.ReasonRejected}
	}
	req := map[string]any{
		"chat_id":              chatID,
		"text":                 text,
		"link_preview_options": map[string]bool{"is_disabled": true},
	}
	_, err := b.call(ctx, b.cfg.HTTPClient, "sendMessage", req)
	return err
}
