package telegram

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/twofactor/twofactor/notify"
)

// Update is the part of a Telegram update notifyd uses: a text message in a chat.
type Update struct {
	UpdateID int64
	ChatID   string
	ChatType string // private, group, supergroup, channel
	Text     string
}

type wireUpdate struct {
	UpdateID int64 `json:"update_id"`
	Message  *struct {
		Text string `json:"text"`
		Chat struct {
			ID   int64  `json:"id"`
			Type string `json:"type"`
		} `json:"chat"`
	} `json:"message"`
}

func (w wireUpdate) update() (Update, bool) {
	if w.Message == nil || w.Message.Chat.ID == 0 {
		return Update{UpdateID: w.UpdateID}, false
	}
	return Update{UpdateID: w.UpdateID, ChatID: strconv.FormatInt(w.Message.Chat.ID, 10),
		ChatType: w.Message.Chat.Type, Text: w.Message.Text}, true
}

// UpdateHandler handles one update. An error stops the batch: the update is fetched
// again at the next poll (or Telegram redelivers the webhook call).
type UpdateHandler func(ctx context.Context, u Update) error

// Poll long-polls getUpdates until ctx ends, calling fn for each text message in order.
// The offset advances past an update only once fn returned nil, so an update is not lost
// when fn fails (at-least-once: fn must tolerate a repeat). A 409 (another poller, or a
// webhook is set) and transport failures are logged and retried after ConflictWait; a
// 429 after its retry_after; a 401 (wrong token) ends Poll with the error.
func (b *Bot) Poll(ctx context.Context, log *slog.Logger, fn UpdateHandler) error {
	if log == nil {
		log = slog.Default()
	}
	client := b.pollClient()
	var offset int64
	for ctx.Err() == nil {
		ups, err := b.getUpdates(ctx, client, offset)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			wait, fatal := b.pollWait(err)
			if fatal {
				return err
			}
			log.Warn("telegram getUpdates failed; retrying", "err", err, "wait", wait)
			if !sleep(ctx, wait) {
				break
			}
			continue
		}
		for _, w := range ups {
			if u, ok := w.update(); ok {
				if err := fn(ctx, u); err != nil {
					log.Warn("telegram update not handled; fetching it again", "update_id", w.UpdateID, "err", err)
					sleep(ctx, b.cfg.ConflictWait)
					break
				}
			}
			offset = w.UpdateID + 1
		}
	}
	return nil
}

func (b *Bot) pollClient() *http.Client {
	c := http.Client{Timeout: b.cfg.PollTimeout + 15*time.Second}
	if b.cfg.HTTPClient != nil {
		c = *b.cfg.HTTPClient
		if c.Timeout != 0 && c.Timeout < b.cfg.PollTimeout+5*time.Second {
			c.Timeout = b.cfg.PollTimeout + 15*time.Second
		}
	}
	return &c
}

func (b *Bot) getUpdates(ctx context.Context, client *http.Client, offset int64) ([]wireUpdate, error) {
	req := map[string]any{"timeout": int(b.cfg.PollTimeout / time.Second), "allowed_updates": []string{"message"}}
	if offset != 0 {
		req["offset"] = offset
	}
	raw, err := b.call(ctx, client, "getUpdates", req)
	if err != nil {
		return nil, err
	}
	var ups []wireUpdate
	if err := json.Unmarshal(raw, &ups); err != nil {
		return nil, errors.New("telegram getUpdates: result is not a list of updates")
	}
	return ups, nil
}

// pollWait chooses the pause after a failed poll, or reports a failure retrying cannot
// fix (a wrong token).
func (b *Bot) pollWait(err error) (time.Duration, bool) {
	var ra notify.RetryAfter
	if errors.As(err, &ra) {
		return ra.D, false
	}
	var perm notify.Permanent
	if errors.As(err, &perm) && perm.Reason == notify.ReasonProviderAuth {
		return 0, true
	}
	return b.cfg.ConflictWait, false
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// SecretHeader carries the secret_token given to setWebhook.
const SecretHeader = "X-Telegram-Bot-Api-Secret-Token"

// WebhookHandler receives updates Telegram posts to a webhook set with a secret_token:
// a request without the right X-Telegram-Bot-Api-Secret-Token is refused (401). An
// update fn fails on is answered 500, so Telegram retries it.
func WebhookHandler(secret string, log *slog.Logger, fn UpdateHandler) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := r.Header.Get(SecretHeader)
		if r.Method != http.MethodPost || secret == "" || subtle.ConstantTimeCompare([]byte(got), []byte(secret)) != 1 {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		var wu wireUpdate
		if err != nil || json.Unmarshal(body, &wu) != nil {
			http.Error(w, "bad update", http.StatusBadRequest)
			return
		}
		if u, ok := wu.update(); ok {
			if err := fn(r.Context(), u); err != nil {
				log.Warn("telegram webhook update not handled", "update_id", u.UpdateID, "err", err)
				http.Error(w, "try again", http.StatusInternalServerError)
				return
			}
		}
		w.WriteHeader(http.StatusOK)
	})
}
