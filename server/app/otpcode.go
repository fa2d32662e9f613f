package app

import (
	"flag"
	"fmt"
	"slices"
	"time"

	"github.com/twofactor/twofactor/notify/tglink"
	"github.com/twofactor/twofactor/providers/otpcode"
	"github.com/twofactor/twofactor/server"
)

// OTPCodeConfig are the settings of codes sent by email, SMS, Telegram and Signal.
type OTPCodeConfig struct {
	OTPChannels      string
	OTPServiceName   string
	OTPDomain        string
	OTPDigits        int
	OTPCodeTTL       time.Duration
	OTPResendWait    time.Duration
	OTPMaxResends    int
	OTPUserDailyCap  int
	OTPDestDailyCap  int
	OTPTelegramBot   string
	OTPDefaultRegion string
	OTPTemplates     string
}

func otpCodeFlags(fs *flag.FlagSet, c *OTPCodeConfig) {
	fs.StringVar(&c.OTPChannels, "otp-channels", "email,sms,signal,telegram", "comma-separated code channels to offer (telegram also needs --otp-telegram-bot, except in embedded mode with the outbox)")
	fs.StringVar(&c.OTPServiceName, "otp-service-name", "twofactor", "service name in code messages")
	fs.StringVar(&c.OTPDomain, "otp-domain", "", "origin domain of the SMS one-time-code line (@domain #code); default none")
	fs.IntVar(&c.OTPDigits, "otp-digits", otpcode.DefaultDigits, "digits of a sent code (6 to 10)")
	fs.DurationVar(&c.OTPCodeTTL, "otp-code-ttl", otpcode.DefaultCodeTTL, "how long a sent code works (at most 10m)")
	fs.DurationVar(&c.OTPResendWait, "otp-resend-cooldown", otpcode.DefaultResendCooldown, "wait before the first resend, doubled after each")
	fs.IntVar(&c.OTPMaxResends, "otp-max-resends", otpcode.DefaultMaxResends, "resends of one code")
	fs.IntVar(&c.OTPUserDailyCap, "otp-user-daily-cap", otpcode.DefaultUserDailyCap, "codes sent per user per UTC day")
	fs.IntVar(&c.OTPDestDailyCap, "otp-destination-daily-cap", otpcode.DefaultDestDailyCap, "codes sent per destination per UTC day")
	fs.StringVar(&c.OTPTelegramBot, "otp-telegram-bot", "", "Telegram bot username for the enrollment deep link")
	fs.StringVar(&c.OTPDefaultRegion, "otp-default-region", "", "ISO 3166-1 region of phone numbers typed without a country code")
	fs.StringVar(&c.OTPTemplates, "otp-templates", "", "folder of message templates overriding the defaults (<locale>/<name>.txt)")
}

// otpCodeFactors builds the code provider and the factors of its channels.
func (a *App) otpCodeFactors(d *server.Deps) ([]server.Factor, error) {
	c := a.cfg.OTPCodeConfig
	// Embedded mode with Telegram to the outbox and no bot: links name tglink.DevBot.
	if c.OTPTelegramBot == "" && a.devTelegram != nil && slices.Contains(splitList(c.OTPChannels), otpcode.Telegram) {
		c.OTPTelegramBot = tglink.DevBot
		a.log.Warn("telegram goes to the development outbox: deep links name a placeholder bot; simulate pressing Start with `authctl dev telegram-start <link>`",
			"bot", tglink.DevBot)
	}
	p, err := otpcode.New(a.store, d.Keys, otpcode.Config{
		ServiceName: c.OTPServiceName, Domain: c.OTPDomain, Digits: c.OTPDigits, CodeTTL: c.OTPCodeTTL,
		ResendCooldown: c.OTPResendWait, MaxResends: c.OTPMaxResends, UserDailyCap: c.OTPUserDailyCap,
		DestinationDailyCap: c.OTPDestDailyCap, TelegramBot: c.OTPTelegramBot, DefaultRegion: c.OTPDefaultRegion,
		TemplateDir: c.OTPTemplates,
	}, otpcode.Options{})
	if err != nil {
		return nil, err
	}
	var channels []string
	for _, ch := range splitList(c.OTPChannels) {
		if ch == otpcode.Telegram && c.OTPTelegramBot == "" {
			continue
		}
		channels = append(channels, ch)
	}
	if len(channels) == 0 {
		return nil, nil
	}
	out := server.GatewaySender{Events: d.Events}
	d.NotMe = server.OTPNotMeNotifier{Provider: p, Out: out} // a push refused as "not me" is told to these channels
	if err := a.otpCodeEvents(server.OTPCodeEvents{Provider: p, Out: out}, channels); err != nil {
		return nil, err
	}
	return server.OTPCodeFactors(p, out, channels...), nil
}

// otpCodeEvents records notifyd's delivery results on the codes and completes
// Telegram enrollments from the bot's /start bindings.
func (a *App) otpCodeEvents(h server.OTPCodeEvents, channels []string) error {
	if a.js == nil {
		return nil // no NATS: nothing reports back
	}
	if err := a.OnGatewayStatus(h.Status); err != nil {
		return fmt.Errorf("gateway status: %w", err)
	}
	if !slices.Contains(channels, otpcode.Telegram) {
		return nil
	}
	if err := a.OnTelegramBinding(h.Binding); err != nil {
		return fmt.Errorf("telegram bindings: %w", err)
	}
	return nil
}
