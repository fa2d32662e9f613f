package otpcode

import (
	"errors"
	"fmt"
	"net/mail"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
)

// Channels: a factor's method is its channel's name.
const (
	Email    = "email"
	SMS      = "sms"
	Telegram = "telegram"
	Signal   = "signal"
)

// Channels lists every channel, in a stable order.
var Channels = []string{Email, SMS, Telegram, Signal}

// ValidChannel tells whether ch names a channel.
func ValidChannel(ch string) bool {
	switch ch {
	case Email, SMS, Telegram, Signal:
		return true
	}
	return false
}

// Bounds of a destination's input and normal form.
const (
	// MaxInputLen bounds any destination as typed.
	MaxInputLen = 320
	// MaxEmailLen is RFC 5321 §4.5.3.1.3's path limit less the angle brackets.
	MaxEmailLen = 254
	// maxLocalLen is RFC 5321 §4.5.3.1.1's local-part limit.
	maxLocalLen = 64
)

// ErrDestination wraps every reason a destination is refused.
var ErrDestination = errors.New("invalid destination")

// Destination is a parsed, normalised destination. Address is the clear form a
// channel sends to (an address, an E.164 number, a chat id): a secret at rest,
// kept only sealed and in memory.
type Destination struct {
	Channel string
	Address string
}

// Masked is the destination as it may be shown: a•••@example.com, +49 •••• ••12.
func (d Destination) Masked() string { return Mask(d.Channel, d.Address) }

// String never shows the address in clear (a Destination may reach a log line).
func (d Destination) String() string { return d.Channel + ":" + d.Masked() }

// ParseDestination checks and normalises a destination typed for channel.
// defaultRegion (ISO 3166-1 alpha-2, or "") lets phone numbers omit their
// country code. Telegram chats are not typed: they are bound through a link
// (ParseTelegramChat reads the chat id the binding carries).
func ParseDestination(channel, input, defaultRegion string) (Destination, error) {
	if len(input) > MaxInputLen {
		return Destination{}, fmt.Errorf("%w: longer than %d bytes", ErrDestination, MaxInputLen)
	}
	var (
		addr string
		err  error
	)
	switch channel {
	case Email:
		addr, err = NormalizeEmail(input)
	case SMS:
		addr, err = NormalizePhone(input, defaultRegion, true)
	case Signal:
		addr, err = NormalizePhone(input, defaultRegion, false)
	case Telegram:
		addr, err = ParseTelegramChat(input)
	default:
		return Destination{}, fmt.Errorf("%w: unknown channel %q", ErrDestination, channel)
	}
	if err != nil {
		return Destination{}, err
	}
	return Destination{Channel: channel, Address: addr}, nil
}

// NormalizeEmail checks a bare address (no display name, no comments, no quoted
// or IP-literal parts) and returns it with its domain in lower case.
func NormalizeEmail(input string) (string, error) {
	s := strings.TrimSpace(input)
	if s == "" {
		return "", fmt.Errorf("%w: empty email address", ErrDestination)
	}
	if !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }) {
		return "", fmt.Errorf("%w: email address has spaces or control characters", ErrDestination)
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return "", fmt.Errorf("%w: not a bare email address", ErrDestination)
	}
	at := strings.LastIndexByte(s, '@')
	local, domain := s[:at], strings.ToLower(s[at+1:])
	if local == "" || len(local) > maxLocalLen || strings.ContainsAny(local, `"\`) {
		return "", fmt.Errorf("%w: email local part must be 1 to %d plain characters", ErrDestination, maxLocalLen)
	}
	if err := checkDomain(domain); err != nil {
		return "", err
	}
	out := local + "@" + domain
	if len(out) > MaxEmailLen {
		return "", fmt.Errorf("%w: email address longer than %d bytes", ErrDestination, MaxEmailLen)
	}
	return out, nil
}

// checkDomain accepts a DNS name of at least two labels of letters, digits and
// inner hyphens (internationalised names in their xn-- form).
func checkDomain(d string) error {
	labels := strings.Split(d, ".")
	if len(d) > 253 || len(labels) < 2 {
		return fmt.Errorf("%w: email domain must be a DNS name with a dot", ErrDestination)
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("%w: email domain has an empty, overlong or hyphen-edged label", ErrDestination)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("%w: email domain has characters other than a-z, 0-9 and - (use the xn-- form of international names)", ErrDestination)
			}
		}
	}
	if tld := labels[len(labels)-1]; strings.Trim(tld, "0123456789") == "" {
		return fmt.Errorf("%w: email domain has a numeric top-level label", ErrDestination)
	}
	return nil
}

// NormalizePhone parses a phone number (E.164 with its +, or national when
// defaultRegion is given) with libphonenumber's metadata and returns its E.164
// form. mobileOnly refuses numbers that cannot receive SMS (fixed lines,
// premium rate, shared cost, …): only mobile and fixed-line-or-mobile pass.
func NormalizePhone(input, defaultRegion string, mobileOnly bool) (string, error) {
	s := strings.TrimSpace(input)
	if s == "" {
		return "", fmt.Errorf("%w: empty phone number", ErrDestination)
	}
	if len(s) > 64 || strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= '0' && r <= '9' || r == '+' || r == ' ' || r == '-' || r == '(' || r == ')' || r == '.' || r == '/')
	}) {
		return "", fmt.Errorf("%w: phone number has characters other than digits, +, spaces, -, (, ), . and /", ErrDestination)
	}
	if !strings.HasPrefix(s, "+") && defaultRegion == "" {
		return "", fmt.Errorf("%w: phone number must start with + and its country code (E.164)", ErrDestination)
	}
	num, err := phonenumbers.Parse(s, strings.ToUpper(defaultRegion))
	if err != nil {
		return "", fmt.Errorf("%w: phone number: %v", ErrDestination, err)
	}
	if !phonenumbers.IsValidNumber(num) {
		return "", fmt.Errorf("%w: not a valid phone number", ErrDestination)
	}
	if mobileOnly {
		switch phonenumbers.GetNumberType(num) {
		case phonenumbers.MOBILE, phonenumbers.FIXED_LINE_OR_MOBILE:
		default:
			return "", fmt.Errorf("%w: not a mobile number (SMS needs one)", ErrDestination)
		}
	}
	return phonenumbers.Format(num, phonenumbers.E164), nil
}

// ParseTelegramChat reads a Telegram chat id as a binding carries it. Only
// private chats (positive ids) are accepted: a code is never sent to a group.
func ParseTelegramChat(input string) (string, error) {
	s := strings.TrimSpace(input)
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != s {
		return "", fmt.Errorf("%w: telegram chat must be a private chat's id (a positive integer)", ErrDestination)
	}
	return s, nil
}

// bullet is the mask character.
const bullet = "•"

// Mask shows a normalised destination without revealing it: the first
// character of an email's local part and its domain (a•••@example.com), a
// phone number's country code and last two digits (+49 •••• ••12), a Telegram
// chat id's last two digits. The mask has a fixed shape, so it does not tell
// the length either.
func Mask(channel, addr string) string {
	switch channel {
	case Email:
		at := strings.LastIndexByte(addr, '@')
		if at < 1 {
			return strings.Repeat(bullet, 3)
		}
		first, _ := utf8.DecodeRuneInString(addr)
		return string(first) + strings.Repeat(bullet, 3) + addr[at:]
	case SMS, Signal:
		num, err := phonenumbers.Parse(addr, "")
		if err != nil || len(addr) < 4 {
			return "+" + strings.Repeat(bullet, 6)
		}
		return fmt.Sprintf("+%d %s %s%s", num.GetCountryCode(), strings.Repeat(bullet, 4), strings.Repeat(bullet, 2), addr[len(addr)-2:])
	case Telegram:
		if len(addr) < 3 {
			return "chat " + strings.Repeat(bullet, 4)
		}
		return "chat " + strings.Repeat(bullet, 4) + addr[len(addr)-2:]
	}
	return strings.Repeat(bullet, 3)
}
