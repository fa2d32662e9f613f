// Package smtp sends codes by e-mail with github.com/wneessen/go-mail: STARTTLS
// (required, the default), implicit TLS (port 465) or, for a local relay such as
// Mailpit, none; SMTP AUTH when a user name is set; a plain-text body.
//
// A mail the server refuses (at MAIL FROM, RCPT TO or after DATA) is an error, never
// reported sent: 5xx answers are notify.Permanent, 4xx answers retried.
//
// Security properties: TLS is mandatory unless the operator chooses "none" (OWASP ASVS
// 4.0 V9.2.1; RFC 8314 prefers implicit TLS); credentials go only over TLS, except to a
// loopback server; errors carry the SMTP reply codes, never the server's text (which
// quotes the recipient) nor the credentials. See also package channels.
package smtp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"strconv"
	"time"

	"github.com/wneessen/go-mail"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/channels"
)

// TLS modes.
const (
	TLSStartTLS = "starttls" // STARTTLS required (port 587)
	TLSImplicit = "tls"      // TLS from the first byte (port 465)
	TLSNone     = "none"     // plain SMTP (a local relay or Mailpit on 1025)
)

// Config configures a Sender.
type Config struct {
	Host     string // required
	Port     int    // default 587, 465 for TLSImplicit, 25 for TLSNone
	TLS      string // TLSStartTLS (default), TLSImplicit or TLSNone
	Username string // SMTP AUTH (PLAIN, or LOGIN when PLAIN is not offered) when set
	Password string
	From     string // the From address (required)
	HELO     string // default "localhost"
	// TLSConfig overrides the TLS settings (tests: a private root CA). ServerName
	// defaults to Host.
	TLSConfig *tls.Config
	Timeout   time.Duration // per connection; default 15s
}

// Sender is an SMTP channel. It opens one connection per message.
type Sender struct {
	cfg  Config
	from *netmail.Address
}

// New checks cfg and returns a Sender.
func New(cfg Config) (*Sender, error) {
	if cfg.Host == "" {
		return nil, errors.New("smtp: host is required")
	}
	from, err := netmail.ParseAddress(cfg.From)
	if err != nil {
		return nil, errors.New("smtp: From is not an e-mail address")
	}
	if cfg.TLS == "" {
		cfg.TLS = TLSStartTLS
	}
	if cfg.Port == 0 {
		cfg.Port = map[string]int{TLSStartTLS: 587, TLSImplicit: 465, TLSNone: 25}[cfg.TLS]
	}
	if cfg.Port == 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("smtp: TLS mode %q: want %s, %s or %s", cfg.TLS, TLSStartTLS, TLSImplicit, TLSNone)
	}
	if cfg.TLS == TLSNone && cfg.Username != "" && !loopback(cfg.Host) {
		return nil, errors.New("smtp: refusing to send credentials without TLS to a remote server")
	}
	if cfg.HELO == "" {
		cfg.HELO = "localhost"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 15 * time.Second
	}
	return &Sender{cfg: cfg, from: from}, nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *Sender) client() (*mail.Client, error) {
	opts := []mail.Option{mail.WithPort(s.cfg.Port), mail.WithTimeout(s.cfg.Timeout), mail.WithHELO(s.cfg.HELO)}
	tc := &tls.Config{ServerName: s.cfg.Host, MinVersion: tls.VersionTLS12}
	if s.cfg.TLSConfig != nil {
		tc = s.cfg.TLSConfig.Clone()
		if tc.ServerName == "" {
			tc.ServerName = s.cfg.Host
		}
	}
	switch s.cfg.TLS {
	case TLSImplicit:
		opts = append(opts, mail.WithSSL(), mail.WithTLSConfig(tc))
	case TLSNone:
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	default:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory), mail.WithTLSConfig(tc))
	}
	if s.cfg.Username != "" {
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover),
			mail.WithUsername(s.cfg.Username), mail.WithPassword(s.cfg.Password))
	}
	return mail.NewClient(s.cfg.Host, opts...)
}

// Send delivers one mail to m.Destination.
func (s *Sender) Send(ctx context.Context, m channels.Message) error {
	to, err := netmail.ParseAddress(m.Destination)
	if err != nil {
		return notify.Permanent{Err: errors.New("smtp: destination is not an e-mail address"), Reason: notify.ReasonRejected}
	}
	msg := mail.NewMsg()
	msg.FromMailAddress(s.from)
	msg.ToMailAddress(to)
	msg.Subject(m.SubjectOrDefault())
	msg.SetMessageID()
	msg.SetDate()
	msg.SetBodyString(mail.TypeTextPlain, m.TextOrDefault())
	c, err := s.client()
	if err != nil {
		return notify.Permanent{Err: errors.New("smtp: client settings: " + err.Error())}
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		return classify(err)
	}
	return nil
}

// classify maps a go-mail error without quoting the server's reply text.
func classify(err error) error {
	var se *mail.SendError
	if !errors.As(err, &se) {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return fmt.Errorf("smtp: %w", err)
		}
		// Dial, TLS and AUTH failures: the text names the host or the mechanism only.
		return errors.New("smtp: connection failed: " + connText(err))
	}
	text := "smtp: " + se.Reason.String()
	if code := se.ErrorCode(); code != 0 {
		text += " (reply " + strconv.Itoa(code)
		if esc := se.EnhancedStatusCode(); esc != "" {
			text += ", " + esc
		}
		text += ")"
	}
	if se.IsTemp() {
		return errors.New(text)
	}
	return notify.Permanent{Err: errors.New(text), Reason: notify.ReasonRejected}
}

// connText keeps the kind of a connection-level failure: a network error's operation,
// or the leading reply code of an SMTP answer.
func connText(err error) string {
	var ne *net.OpError
	if errors.As(err, &ne) {
		return ne.Op + " " + ne.Net + ": " + ne.Err.Error()
	}
	s := err.Error()
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
