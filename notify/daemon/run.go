package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/channels"
	"github.com/twofactor/twofactor/notify/channels/outbox"
	"github.com/twofactor/twofactor/notify/channels/sevenio"
	"github.com/twofactor/twofactor/notify/channels/signal"
	"github.com/twofactor/twofactor/notify/channels/sipgate"
	"github.com/twofactor/twofactor/notify/channels/smtp"
	"github.com/twofactor/twofactor/notify/channels/telegram"
	"github.com/twofactor/twofactor/notify/channels/twilio"
	"github.com/twofactor/twofactor/notify/channels/webhook"
)

// OutboxSenders returns an outbox sender (files in dir) for every gateway channel: what
// authd's embedded mode runs when no real channel is configured.
func OutboxSenders(dir string, log *slog.Logger) (map[string]channels.Sender, error) {
	ob, err := outbox.New(outbox.Config{Dir: dir, Logger: log})
	if err != nil {
		return nil, err
	}
	m := map[string]channels.Sender{}
	for _, ch := range notify.GatewayChannels {
		m[ch] = ob
	}
	return m, nil
}

// Senders builds the configured provider of every channel ("none" has no sender), and
// the Telegram bot when a token is set (also used for chat binding).
func (c *Config) Senders(log *slog.Logger) (map[string]channels.Sender, *telegram.Bot, error) {
	var bot *telegram.Bot
	if c.TelegramToken != "" {
		b, err := telegram.New(telegram.Config{BaseURL: c.TelegramURL, Token: c.TelegramToken})
		if err != nil {
			return nil, nil, err
		}
		bot = b
	}
	m := map[string]channels.Sender{}
	for _, ch := range notify.GatewayChannels {
		s, err := c.sender(c.Channels[ch].Provider, bot, log)
		if err != nil {
			return nil, nil, fmt.Errorf("%s-provider: %w", ch, err)
		}
		if s != nil {
			m[ch] = s
		}
	}
	return m, bot, nil
}

func (c *Config) sender(provider string, bot *telegram.Bot, log *slog.Logger) (channels.Sender, error) {
	switch provider {
	case "smtp":
		return smtp.New(smtp.Config{Host: c.SMTPHost, Port: c.SMTPPort, TLS: c.SMTPTLS,
			Username: c.SMTPUsername, Password: c.SMTPPassword, From: c.SMTPFrom})
	case "twilio":
		return twilio.New(twilio.Config{BaseURL: c.TwilioURL, AccountSID: c.TwilioAccountSID, Username: c.TwilioUsername,
			Password: c.TwilioAuthToken, From: c.TwilioFrom, MessagingServiceSID: c.TwilioMessagingService})
	case "sevenio":
		return sevenio.New(sevenio.Config{BaseURL: c.SevenURL, APIKey: c.SevenAPIKey, From: c.SevenFrom})
	case "sipgate":
		return sipgate.New(sipgate.Config{BaseURL: c.SipgateURL, TokenID: c.SipgateTokenID, Token: c.SipgateToken, SMSID: c.SipgateSMSID})
	case "webhook":
		return webhook.New(webhook.Config{URL: c.WebhookURL, Secret: []byte(c.WebhookSecret)})
	case "telegram":
		if bot == nil {
			return nil, errors.New("telegram-token is required")
		}
		return bot, nil
	case "signal":
		return signal.New(signal.Config{BaseURL: c.SignalURL, Number: c.SignalNumber})
	case "outbox":
		log.Warn("development outbox: codes are written in clear to files", "dir", c.OutboxDir)
		return outbox.New(outbox.Config{Dir: c.OutboxDir, Logger: log})
	}
	return nil, nil
}

// WaitStreams waits until authd has created the streams and the delivered-ids bucket
// (notifyd never creates or changes them: their limits are authd's settings).
func WaitStreams(ctx context.Context, js jetstream.JetStream, names notify.Names, log *slog.Logger) error {
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		missing := ""
		for _, s := range []string{names.GatewayStream(), names.NoticeStream(), names.GatewayStatusStream(), names.DeadLetterStream(),
			names.BindingStream(), names.PushStream(), "KV_" + names.DeliveredBucket()} {
			if _, err := js.Stream(ctx, s); err != nil {
				missing = s
				break
			}
		}
		if missing == "" {
			return nil
		}
		log.Info("waiting for authd to create the NATS streams", "missing", missing)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// Run is notifyd: it loads the delivery key, connects to NATS, waits for the streams,
// runs the workers and the HTTP endpoints until ctx ends, then drains.
func Run(ctx context.Context, c *Config, log *slog.Logger) error {
	key, err := notify.LoadDeliveryKey(c.DeliveryKeyFile)
	if err != nil {
		return err
	}
	if c.NATSURL == "" {
		return errors.New("nats-url is required")
	}
	names, _ := notify.NewNames(c.NATSPrefix)
	opts := []nats.Option{nats.Name("notifyd"), nats.RetryOnFailedConnect(true)}
	if tokenFile := c.natsTokenFile(); tokenFile != "" {
		tok, err := notify.TokenOption(tokenFile)
		if err != nil {
			return fmt.Errorf("nats-token-file: %w", err)
		}
		opts = append(opts, tok)
	}
	nc, err := notify.Connect(c.NATSURL, opts...)
	if err != nil {
		return fmt.Errorf("nats-url: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	senders, bot, err := c.Senders(log)
	if err != nil {
		return err
	}
	if err := WaitStreams(ctx, js, names, log); err != nil {
		return err
	}
	pushDeps, closeStore, err := c.PushDeps(ctx, log)
	if err != nil {
		return err
	}
	defer closeStore()
	limits := map[string]Limits{}
	for ch, cc := range c.Channels {
		limits[ch] = cc.Limits
	}
	m := NewMetrics()
	d, err := Start(ctx, Options{JS: js, Names: names, Key: key, Senders: senders, Limits: limits,
		MaxDeliver: c.MaxDeliver, DrainTimeout: c.DrainTimeout, Telegram: bot,
		TelegramPoll: c.TelegramPoll && c.TelegramWebhookListen == "", Push: pushDeps, Logger: log, Metrics: m})
	if err != nil {
		return err
	}
	stopHTTP, err := c.serveHTTP(d, m, log)
	if err != nil {
		d.Stop()
		return err
	}
	log.Info("notifyd started", "metrics", c.MetricsListen, "providers", providerList(c), "push", pushDeps != nil)
	<-ctx.Done()
	log.Info("notifyd stopping: draining sends in flight", "drain_timeout", c.DrainTimeout)
	stopHTTP()
	d.Stop()
	return nil
}

func providerList(c *Config) map[string]string {
	out := map[string]string{}
	for ch, cc := range c.Channels {
		out[ch] = cc.Provider
	}
	return out
}

// serveHTTP serves /metrics and /healthz on MetricsListen, and the Telegram webhook when
// configured.
func (c *Config) serveHTTP(d *Daemon, m *Metrics, log *slog.Logger) (func(), error) {
	var servers []*http.Server
	serve := func(addr string, h http.Handler) error {
		lis, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		hs := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		servers = append(servers, hs)
		go func() {
			if err := hs.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("http server", "addr", addr, "err", err)
			}
		}()
		return nil
	}
	stop := func() {
		for _, hs := range servers {
			_ = hs.Close()
		}
	}
	if c.MetricsListen != "" {
		if err := serve(c.MetricsListen, d.ObserveHandler(m)); err != nil {
			return nil, fmt.Errorf("metrics-listen: %w", err)
		}
	}
	if c.TelegramWebhookListen != "" {
		mux := http.NewServeMux()
		mux.Handle("POST /telegram", d.TelegramWebhook(c.TelegramWebhookSecret))
		if err := serve(c.TelegramWebhookListen, mux); err != nil {
			stop()
			return nil, fmt.Errorf("telegram-webhook-listen: %w", err)
		}
	}
	return stop, nil
}

// ObserveHandler serves GET /metrics and GET /healthz (200 "ok" while NATS answers,
// 503 otherwise).
func (d *Daemon) ObserveHandler(m *Metrics) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := d.Healthy(r.Context()); err != nil {
			http.Error(w, "unhealthy", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	return mux
}

// Healthcheck asks a running notifyd's /healthz at addr (its metrics-listen): nil when it
// answers 200. It is `notifyd healthcheck`, for images without a shell.
func Healthcheck(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthz answered %s", resp.Status)
	}
	return nil
}

// natsTokenFile is the token file to present: the one configured, else the data
// folder's nats-token when there is one (authd's embedded server writes it there).
func (c *Config) natsTokenFile() string {
	if c.NATSTokenFile != "" {
		return c.NATSTokenFile
	}
	p := filepath.Join(c.DataDir, notify.TokenFileName)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return ""
}
