package daemon

import (
	"context"
	"log/slog"
	"net/http"
	"strings"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/channels/telegram"
	"github.com/twofactor/twofactor/notify/tglink"
)

// Replies sent in the chat.
const (
	replyBound   = "Thanks! This chat is now linked. Return to the sign-in page to finish setting up; your codes will arrive here."
	replyInvalid = "This link is not valid. Start the Telegram setup again from the sign-in page."
	replyPrivate = "Please open the link in a private chat with this bot: codes are never sent to groups."
)

// TelegramUpdate handles one bot update: a "/start <token>" in a private chat is
// published as a binding (sealed) for authd, then answered in the chat. Other messages
// are ignored. A failed publish is returned, so the update is fetched again.
func (d *Daemon) TelegramUpdate(ctx context.Context, u telegram.Update) error {
	o := d.opts
	if !strings.HasPrefix(u.Text, "/start") {
		return nil
	}
	token, ok := tglink.ParseStart(u.Text)
	switch {
	case u.ChatType != "" && u.ChatType != "private":
		d.reply(ctx, u.ChatID, replyPrivate)
		return nil
	case !ok:
		d.reply(ctx, u.ChatID, replyInvalid)
		return nil
	}
	b := notify.TelegramBinding{UpdateID: u.UpdateID, Time: o.Now(), Token: token, ChatID: u.ChatID}
	if err := notify.PublishTelegramBinding(ctx, o.JS, o.Names, o.Key, b); err != nil {
		return err
	}
	o.Metrics.Bindings.Inc()
	o.Logger.Info("telegram: chat binding published", "update_id", u.UpdateID)
	d.reply(ctx, u.ChatID, replyBound)
	return nil
}

func (d *Daemon) reply(ctx context.Context, chatID, text string) {
	if d.opts.Telegram == nil {
		return
	}
	if err := d.opts.Telegram.SendText(ctx, chatID, text); err != nil {
		d.opts.Logger.Warn("telegram: cannot answer in the chat", "err", Scrub(err, chatID))
	}
}

// TelegramWebhook is the handler for Telegram's webhook calls (setWebhook with
// secret_token = secret); mount it on a public HTTPS endpoint instead of polling.
func (d *Daemon) TelegramWebhook(secret string) http.Handler {
	return telegram.WebhookHandler(secret, d.opts.Logger.With(slog.String("component", "telegram-webhook")), d.TelegramUpdate)
}
