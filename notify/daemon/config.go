package daemon

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/channels/webpush"
	"github.com/twofactor/twofactor/notify/egress"
)

// Config is notifyd's configuration. Every field has a flag (--kebab-case), an
// environment variable (TWOFACTOR_UPPER_SNAKE) and a key in the optional YAML file
// (kebab-case); flags win over the environment, which wins over the file. Put
// credentials in the environment or the file (mode 0600), not on the command line.
type Config struct {
	DataDir         string
	NATSURL         string
	NATSPrefix      string
	NATSTokenFile   string
	DeliveryKeyFile string
	MetricsListen   string
	LogLevel        string
	LogFormat       string
	MaxDeliver      int
	DrainTimeout    time.Duration
	// Outbox sends every channel without a provider to files in OutboxDir (development).
	Outbox    bool
	OutboxDir string

	// DatabaseURL, KeyFile, VAPIDKeyFile and VAPIDSubscriber run push delivery
	// (pushdelivery): authd's store and key ring open the devices' endpoints.
	DatabaseURL, KeyFile, VAPIDKeyFile, VAPIDSubscriber string
	// PushAllowInternal lists what a device's push endpoint may reach although not a
	// public address (notify/egress.ParseAllow: CIDRs, IPs, host names, .domain
	// suffixes), e.g. the deployment's own ntfy; PushAllow is it parsed.
	PushAllowInternal string
	PushAllow         egress.Allow

	Channels map[string]*ChannelConfig // by gateway channel

	SMTPHost, SMTPTLS, SMTPUsername, SMTPPassword, SMTPFrom string
	SMTPPort                                                int

	TwilioURL, TwilioAccountSID, TwilioUsername, TwilioAuthToken, TwilioFrom, TwilioMessagingService string
	SevenURL, SevenAPIKey, SevenFrom                                                                 string
	SipgateURL, SipgateTokenID, SipgateToken, SipgateSMSID                                           string
	WebhookURL, WebhookSecret                                                                        string

	TelegramURL, TelegramToken, TelegramWebhookListen, TelegramWebhookSecret string
	TelegramPoll                                                             bool

	SignalURL, SignalNumber string
}

// ChannelConfig is one channel's provider and limits.
type ChannelConfig struct {
	Provider string // see providers; "" picks the configured one, "none" disables
	Limits
}

// providers lists the provider names each channel accepts.
var providers = map[string][]string{
	notify.ChannelEmail:    {"smtp", "outbox", "none"},
	notify.ChannelSMS:      {"twilio", "sevenio", "sipgate", "webhook", "outbox", "none"},
	notify.ChannelTelegram: {"telegram", "outbox", "none"},
	notify.ChannelSignal:   {"signal", "outbox", "none"},
}

// Parse reads flags from args, then fills what they leave unset from the environment
// and from the YAML file named by --config / TWOFACTOR_CONFIG.
func Parse(name string, args []string, getenv func(string) string) (*Config, error) {
	c := &Config{Channels: map[string]*ChannelConfig{}}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	configFile := fs.String("config", "", "optional YAML configuration file")
	c.flags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *configFile == "" {
		*configFile = getenv("TWOFACTOR_CONFIG")
	}
	if err := fillUnset(fs, *configFile, getenv); err != nil {
		return nil, err
	}
	return c, c.finish()
}

func (c *Config) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.DataDir, "data-dir", "data", "folder of the delivery key and the development outbox")
	fs.StringVar(&c.NATSURL, "nats-url", "", "nats://… of the NATS server or cluster (comma-separated list; required)")
	fs.StringVar(&c.NATSTokenFile, "nats-token-file", "", "file holding the NATS client token (authd's <data-dir>/nats-token for its embedded server); default <data-dir>/nats-token when it exists")
	fs.StringVar(&c.NATSPrefix, "nats-prefix", notify.DefaultPrefix, "prefix of every NATS subject and stream")
	fs.StringVar(&c.DeliveryKeyFile, "delivery-key-file", "", "delivery key shared with authd; default <data-dir>/delivery.key")
	fs.StringVar(&c.MetricsListen, "metrics-listen", "127.0.0.1:9465", "address of GET /metrics and GET /healthz")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "json", "json or text")
	fs.IntVar(&c.MaxDeliver, "max-deliver", 5, "attempts per message before it is dead-lettered")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", 10*time.Second, "how long sends in flight may finish on SIGTERM")
	fs.BoolVar(&c.Outbox, "outbox", false, "write messages of channels without a provider to files (development only: codes in clear)")
	fs.StringVar(&c.OutboxDir, "outbox-dir", "", "outbox folder; default <data-dir>/outbox")
	fs.StringVar(&c.DatabaseURL, "database-url", "", "authd's database (postgres://… or sqlite://…), read for the push devices' endpoints; empty: no push delivery")
	fs.StringVar(&c.KeyFile, "key-file", "", "authd's sealing key ring (opens the devices' endpoints); default <data-dir>/keys.json")
	fs.StringVar(&c.VAPIDKeyFile, "vapid-key-file", "", "VAPID key pair of Web Push (RFC 8292, written by `authd init`); default <data-dir>/"+webpush.DefaultVAPIDKeyFile)
	fs.StringVar(&c.PushAllowInternal, "push-allow-internal", "", "comma-separated networks (CIDR or IP) and hosts (or .domain suffixes) a device's push endpoint may reach although not a public address, e.g. ntfy on the deployment's own network (empty: public unicast addresses only)")
	fs.StringVar(&c.VAPIDSubscriber, "vapid-subscriber", "", "operator contact in the VAPID JWT (mailto:… or https://…); empty: Web Push devices poll")
	for _, ch := range notify.GatewayChannels {
		cc := &ChannelConfig{}
		c.Channels[ch] = cc
		fs.StringVar(&cc.Provider, ch+"-provider", "", fmt.Sprintf("%s provider: %s (default: the one configured)", ch, strings.Join(providers[ch], ", ")))
		fs.IntVar(&cc.Concurrency, ch+"-concurrency", 4, ch+" messages sent at once")
		fs.Float64Var(&cc.Rate, ch+"-rate", 0, ch+" sends per second at most (0: unlimited)")
		fs.IntVar(&cc.Burst, ch+"-burst", 1, ch+" sends allowed at once above the rate")
	}
	fs.StringVar(&c.SMTPHost, "smtp-host", "", "SMTP server")
	fs.IntVar(&c.SMTPPort, "smtp-port", 0, "SMTP port (default 587, 465 for tls, 25 for none; Mailpit: 1025 with none)")
	fs.StringVar(&c.SMTPTLS, "smtp-tls", "starttls", "starttls, tls (implicit) or none")
	fs.StringVar(&c.SMTPUsername, "smtp-username", "", "SMTP AUTH user (none: no AUTH)")
	fs.StringVar(&c.SMTPPassword, "smtp-password", "", "SMTP AUTH password")
	fs.StringVar(&c.SMTPFrom, "smtp-from", "", `From address, e.g. "Sign-in <no-reply@example.org>"`)
	fs.StringVar(&c.TwilioURL, "twilio-url", "", "Twilio API base URL (default https://api.twilio.com)")
	fs.StringVar(&c.TwilioAccountSID, "twilio-account-sid", "", "Twilio account SID")
	fs.StringVar(&c.TwilioUsername, "twilio-username", "", "Twilio API key SID (default the account SID)")
	fs.StringVar(&c.TwilioAuthToken, "twilio-auth-token", "", "Twilio auth token or API key secret")
	fs.StringVar(&c.TwilioFrom, "twilio-from", "", "Twilio sending number or sender id")
	fs.StringVar(&c.TwilioMessagingService, "twilio-messaging-service-sid", "", "Twilio messaging service (instead of twilio-from)")
	fs.StringVar(&c.SevenURL, "sevenio-url", "", "seven.io base URL (default https://gateway.seven.io)")
	fs.StringVar(&c.SevenAPIKey, "sevenio-api-key", "", "seven.io API key")
	fs.StringVar(&c.SevenFrom, "sevenio-from", "", "seven.io sender id")
	fs.StringVar(&c.SipgateURL, "sipgate-url", "", "sipgate base URL (default https://api.sipgate.com)")
	fs.StringVar(&c.SipgateTokenID, "sipgate-token-id", "", "sipgate personal access token id (token-…)")
	fs.StringVar(&c.SipgateToken, "sipgate-token", "", "sipgate personal access token")
	fs.StringVar(&c.SipgateSMSID, "sipgate-sms-id", "", "sipgate web SMS extension (e.g. s0)")
	fs.StringVar(&c.WebhookURL, "webhook-url", "", "SMS webhook URL (https)")
	fs.StringVar(&c.WebhookSecret, "webhook-secret", "", "SMS webhook HMAC key (at least 32 bytes)")
	fs.StringVar(&c.TelegramURL, "telegram-url", "", "Telegram Bot API base URL (default https://api.telegram.org)")
	fs.StringVar(&c.TelegramToken, "telegram-token", "", "Telegram bot token")
	fs.BoolVar(&c.TelegramPoll, "telegram-poll", true, "receive the bot's updates by long-polling getUpdates (chat binding)")
	fs.StringVar(&c.TelegramWebhookListen, "telegram-webhook-listen", "", "host:port receiving the bot's webhook calls (POST /telegram) instead of polling")
	fs.StringVar(&c.TelegramWebhookSecret, "telegram-webhook-secret", "", "secret_token given to setWebhook (required with telegram-webhook-listen)")
	fs.StringVar(&c.SignalURL, "signal-url", "", "signal-cli-rest-api base URL")
	fs.StringVar(&c.SignalNumber, "signal-number", "", "registered Signal sending number")
}

// fillUnset sets the flags left unset from the environment, then from the YAML file.
func fillUnset(fs *flag.FlagSet, configFile string, getenv func(string) string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	file := map[string]any{}
	if configFile != "" {
		raw, err := os.ReadFile(configFile)
		if err != nil {
			return fmt.Errorf("config file: %w", err)
		}
		if err := yaml.Unmarshal(raw, &file); err != nil {
			// The YAML error may quote a line holding a credential.
			return fmt.Errorf("config file %s is not valid YAML", configFile)
		}
		for k := range file {
			if fs.Lookup(k) == nil || k == "config" {
				return fmt.Errorf("config file %s: unknown setting %q", configFile, k)
			}
		}
	}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || f.Name == "config" {
			return
		}
		env := "TWOFACTOR_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(env); v != "" {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: invalid value", env))
			}
			return
		}
		if v, ok := file[f.Name]; ok {
			if err := f.Value.Set(fmt.Sprint(v)); err != nil {
				errs = append(errs, fmt.Errorf("config file %s: invalid value", f.Name))
			}
		}
	})
	return errors.Join(errs...)
}

func (c *Config) finish() error {
	if c.DataDir == "" {
		return errors.New("data-dir must not be empty")
	}
	if c.DeliveryKeyFile == "" {
		c.DeliveryKeyFile = filepath.Join(c.DataDir, notify.DefaultDeliveryKeyFile)
	}
	if c.OutboxDir == "" {
		c.OutboxDir = filepath.Join(c.DataDir, "outbox")
	}
	if c.KeyFile == "" {
		c.KeyFile = filepath.Join(c.DataDir, "keys.json")
	}
	if c.VAPIDKeyFile == "" {
		c.VAPIDKeyFile = filepath.Join(c.DataDir, webpush.DefaultVAPIDKeyFile)
	}
	if strings.ContainsAny(c.VAPIDSubscriber, "\r\n") {
		return errors.New("vapid-subscriber: want one line")
	}
	allow, err := egress.ParseAllow(c.PushAllowInternal)
	if err != nil {
		return fmt.Errorf("push-allow-internal: %w", err)
	}
	c.PushAllow = allow
	if c.MaxDeliver < 1 || c.MaxDeliver > 100 {
		return fmt.Errorf("max-deliver %d: want 1 to 100", c.MaxDeliver)
	}
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			return fmt.Errorf("metrics-listen %q: want host:port", c.MetricsListen)
		}
	}
	if _, err := notify.NewNames(c.NATSPrefix); err != nil {
		return fmt.Errorf("nats-prefix: %w", err)
	}
	if c.TelegramWebhookListen != "" && len(c.TelegramWebhookSecret) < 16 {
		return errors.New("telegram-webhook-secret: want at least 16 characters with telegram-webhook-listen")
	}
	for _, ch := range notify.GatewayChannels {
		cc := c.Channels[ch]
		if err := c.pickProvider(ch, cc); err != nil {
			return err
		}
		if cc.Concurrency < 1 || cc.Concurrency > 256 {
			return fmt.Errorf("%s-concurrency %d: want 1 to 256", ch, cc.Concurrency)
		}
		if cc.Rate < 0 || cc.Burst < 1 {
			return fmt.Errorf("%s-rate and %s-burst: want a rate ≥ 0 and a burst ≥ 1", ch, ch)
		}
	}
	return nil
}

// pickProvider checks an explicit provider, or picks the one whose settings are given.
func (c *Config) pickProvider(ch string, cc *ChannelConfig) error {
	if cc.Provider == "" {
		configured := map[string]bool{
			"smtp": c.SMTPHost != "", "twilio": c.TwilioAccountSID != "", "sevenio": c.SevenAPIKey != "",
			"sipgate": c.SipgateTokenID != "", "webhook": c.WebhookURL != "", "telegram": c.TelegramToken != "",
			"signal": c.SignalURL != "", "outbox": c.Outbox,
		}
		cc.Provider = "none"
		for _, p := range providers[ch] {
			if configured[p] {
				cc.Provider = p
				break
			}
		}
		return nil
	}
	for _, p := range providers[ch] {
		if cc.Provider == p {
			return nil
		}
	}
	return fmt.Errorf("%s-provider %q: want one of %s", ch, cc.Provider, strings.Join(providers[ch], ", "))
}

// NewLogger returns the logger LogLevel and LogFormat describe, writing to w.
func (c *Config) NewLogger(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return nil, fmt.Errorf("log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch c.LogFormat {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)).With("service", "notifyd"), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)).With("service", "notifyd"), nil
	}
	return nil, fmt.Errorf("log-format %q: want json or text", c.LogFormat)
}
