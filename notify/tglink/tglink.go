// Package tglink builds the Telegram deep links that bind a chat to a user without the
// user ever looking up a chat id: enrollment shows https://t.me/<bot>?start=<token>, the
// user opens it and presses Start, Telegram sends "/start <token>" to the bot, and
// notifyd (notify/channels/telegram) reports the chat that sent it.
//
// It has no dependencies, so that a factor package can import it without NATS.
//
// # Security properties
//
//   - The token is 32 random bytes from crypto/rand (256 bits, above the 112 bits of
//     NIST SP 800-63B §5.1.1.2 for look-up secrets), in base64url: 43 characters of
//     [A-Za-z0-9_-], within the 64 characters Telegram allows for a start parameter
//     (Telegram Bot API, "Deep linking").
//   - The token is a bearer secret until it is used: store it only as a keyed hash, make
//     it single use and short-lived (OWASP ASVS 4.0 V2.7.2, V3.5).
package tglink

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// DevBot is the placeholder bot username of the deep links an embedded authd makes
// when Telegram goes to the development outbox and no bot is configured: no bot
// answers the link; DevService.SimulateTelegramStart (`authctl dev telegram-start`)
// presses Start instead.
const DevBot = "twofactor_outbox_dev_bot"

// MaxTokenLen is the longest start parameter Telegram accepts.
const MaxTokenLen = 64

// NewToken returns a fresh random binding token (43 characters of [A-Za-z0-9_-]).
func NewToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ValidToken checks a start parameter: 1 to 64 characters of [A-Za-z0-9_-].
func ValidToken(token string) error {
	if len(token) == 0 || len(token) > MaxTokenLen {
		return fmt.Errorf("token: want 1 to %d characters, got %d", MaxTokenLen, len(token))
	}
	for i := 0; i < len(token); i++ {
		if c := token[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("token: character at %d not in [A-Za-z0-9_-]", i)
		}
	}
	return nil
}

// ValidBotName checks a bot username: 5 to 32 characters of [A-Za-z0-9_] (Telegram
// requires it to end in "bot", which is not checked here).
func ValidBotName(bot string) error {
	if len(bot) < 5 || len(bot) > 32 {
		return fmt.Errorf("bot: want 5 to 32 characters, got %d", len(bot))
	}
	for i := 0; i < len(bot); i++ {
		if c := bot[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return fmt.Errorf("bot: character at %d not in [A-Za-z0-9_]", i)
		}
	}
	return nil
}

// DeepLink returns https://t.me/<bot>?start=<token>. bot is the bot's username without
// the "@".
func DeepLink(bot, token string) (string, error) {
	if err := ValidBotName(bot); err != nil {
		return "", err
	}
	if err := ValidToken(token); err != nil {
		return "", err
	}
	u := url.URL{Scheme: "https", Host: "t.me", Path: "/" + bot, RawQuery: "start=" + token}
	return u.String(), nil
}

// ParseStart returns the token of a "/start <token>" message text (also "/start@<bot>
// <token>"), and false for any other text or an invalid token.
func ParseStart(text string) (string, bool) {
	const cmd = "/start"
	if len(text) < len(cmd) || text[:len(cmd)] != cmd {
		return "", false
	}
	rest := text[len(cmd):]
	if len(rest) > 0 && rest[0] == '@' { // "/start@mybot token" in groups
		i := 0
		for i < len(rest) && rest[i] != ' ' {
			i++
		}
		rest = rest[i:]
	}
	if len(rest) < 2 || rest[0] != ' ' {
		return "", false
	}
	token := rest[1:]
	if ValidToken(token) != nil {
		return "", false
	}
	return token, true
}

// MaxLinkLen bounds what TokenFromLink reads: "https://t.me/" (13), a bot name (32),
// "?start=" (7) and a token (64), with room to spare.
const MaxLinkLen = 256

// TokenFromLink returns the start token of a deep link (https://t.me/<bot>?start=<token>,
// or tg://resolve?domain=<bot>&start=<token>), or of a token given alone. Its errors
// begin "link:".
func TokenFromLink(s string) (string, error) {
	s = strings.TrimSpace(s)
	if len(s) == 0 || len(s) > MaxLinkLen {
		return "", fmt.Errorf("link: want 1 to %d characters, got %d", MaxLinkLen, len(s))
	}
	if !strings.Contains(s, "://") {
		return s, linkToken(s)
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "", errors.New("link: not a URL")
	case !(u.Scheme == "https" && u.Host == "t.me" || u.Scheme == "tg" && u.Host == "resolve"):
		return "", errors.New("link: want https://t.me/<bot>?start=<token>")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil || len(q["start"]) != 1 {
		return "", errors.New("link: want exactly one start parameter")
	}
	token := q.Get("start")
	return token, linkToken(token)
}

// linkToken is ValidToken for a token read from a link: its error names the link,
// the field the caller gave.
func linkToken(token string) error {
	if err := ValidToken(token); err != nil {
		return fmt.Errorf("link: start %w", err)
	}
	return nil
}
