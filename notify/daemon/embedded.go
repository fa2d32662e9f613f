package daemon

import (
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/channels"
)

// EmbeddedOptions prepares the workers authd runs in-process in embedded mode: the
// delivery key keyFile (created, mode 0600, if missing; by default
// <data-dir>/delivery.key) and the development outbox outboxDir (by default
// <data-dir>/outbox/) for every channel. Pass the result to Start
// (after replacing Senders with real channels if the operator configured some), and
// give its Key to the publisher: notify.Publisher.WithDeliveryKey(o.Key).
func EmbeddedOptions(js jetstream.JetStream, names notify.Names, keyFile, outboxDir string, log *slog.Logger) (Options, error) {
	created, err := notify.EnsureDeliveryKeyFile(keyFile)
	if err != nil {
		return Options{}, err
	}
	if created {
		log.Info("generated a delivery key (shared with notifyd)", "path", keyFile)
	}
	key, err := notify.LoadDeliveryKey(keyFile)
	if err != nil {
		return Options{}, err
	}
	dir := outboxDir
	senders, err := OutboxSenders(dir, log)
	if err != nil {
		return Options{}, err
	}
	log.Warn("codes are delivered to the development outbox: files in clear, one per message", "dir", dir)
	return Options{JS: js, Names: names, Key: key, Senders: senders, TelegramReplies: senders[notify.ChannelTelegram], Logger: log}, nil
}

// ApplyChannels puts the channels c configures into o: a channel with a provider gets
// it, a channel left at "none" keeps o's sender (the outbox in embedded mode); c's
// limits, attempts, drain timeout and Telegram bot (polled unless a webhook listens)
// replace o's. authd's embedded mode reads c from its notify-config file.
func (c *Config) ApplyChannels(o *Options, log *slog.Logger) error {
	senders, bot, err := c.Senders(log)
	if err != nil {
		return err
	}
	if o.Senders == nil {
		o.Senders = map[string]channels.Sender{}
	}
	o.Limits = map[string]Limits{}
	for ch, cc := range c.Channels {
		if s, ok := senders[ch]; ok {
			o.Senders[ch] = s
		}
		o.Limits[ch] = cc.Limits
	}
	o.MaxDeliver, o.DrainTimeout = c.MaxDeliver, c.DrainTimeout
	if bot != nil {
		o.Telegram, o.TelegramPoll = bot, c.TelegramPoll && c.TelegramWebhookListen == ""
	}
	return nil
}
