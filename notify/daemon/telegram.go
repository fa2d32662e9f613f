package daemon

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/channels"
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
		d.reply(ctx, u, replyPrivate)
		return nil
	case !ok:
		d.reply(ctx, u, replyInvalid)
		return nil
	}
	b := notify.TelegramBinding{UpdateID: u.UpdateID, Time: o.Now(), Token: token, ChatID: u.ChatID}
	if err := notify.PublishTelegramBinding(ctx, o.JS, o.Names, o.Key, b); err != nil {
		return err
	}
	o.Metrics.Bindings.Inc()
	o.Logger.Info("telegram: chat binding published", "update_id", u.UpdateID)
	d.reply(ctx, u, replyBound)
	return nil
}

// reply answers in u's chat: through the bot, or (development) as a message of
// TelegramReplies, the outbox, named after the update.
func (d *Daemon) reply(ctx context.Context, u telegram.Update, text string) {
	var err error
	switch {
	case d.opts.Telegram != nil:
		err = d.opts.Telegram.SendText(ctx, u.ChatID, text)
	case d.opts.TelegramReplies != nil:
		err = d.opts.TelegramReplies.Send(ctx, channels.Message{ChallengeID: "tgreply-" + strconv.FormatInt(u.UpdateID, 10),
			Channel: notify.ChannelTelegram, Destination: u.ChatID, Text: text, ExpiresAt: d.opts.Now()})
	default:
		return
	}
	if err != nil {
		d.opts.Logger.Warn("telegram: cannot answer in the chat", "err", Scrub(err, u.ChatID))
	}
}

// SimulateTelegramStart handles "/start <token>" from the private chat chatID as if
// the bot had received it: the same binding event is published, and the answer goes
// to TelegramReplies. It is for development only: authd offers it (DevService) in
// embedded mode when Telegram goes to the outbox, where no bot receives updates.
func (d *Daemon) SimulateTelegramStart(ctx context.Context, token, chatID string) error {
	if d.opts.Telegram != nil {
		return errors.New("notifyd: a Telegram bot is configured: press Start in Telegram")
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	// A random update id: the binding's message id (JetStream de-duplication) must not
	// repeat, and a real bot's ids never reach this process.
	id := int64(binary.BigEndian.Uint64(b[:]) >> 2)
	return d.TelegramUpdate(ctx, telegram.Update{UpdateID: id, ChatID: chatID, ChatType: "private", Text: "/start " + token})
}

// TelegramWebhook is the handler for Telegram's webhook calls (setWebhook with
// secret_token = secret); mount it on a public HTTPS endpoint instead of polling.
func (d *Daemon) TelegramWebhook(secret string) http.Handler {
	return telegram.WebhookHandler(secret, d.opts.Logger.With(slog.String("component", "telegram-webhook")), d.TelegramUpdate)
}
