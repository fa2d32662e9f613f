package otpcode

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
)

// Purposes separate this package's keyed hashes from every other one.
const (
	purposeCode  = "otp-code"
	purposeDest  = "otp-destination"
	purposeToken = "otp-link-token"
)

// Code lengths: 6 digits by default, 6 to 10 as a setting.
const (
	DefaultDigits = 6
	MinDigits     = 6
	MaxDigits     = 10
)

// ErrMalformed: the answer is not a string of the code's number of digits.
var ErrMalformed = errors.New("code must be digits only (spaces and dashes allowed)")

// Hasher keys the hashes (storage.KeyRing).
type Hasher interface {
	MAC(purpose string, data ...[]byte) []byte
}

// generateCode draws a uniformly random code of digits decimal digits from rnd
// (crypto/rand): rand.Int samples without modulo bias.
func generateCode(rnd io.Reader, digits int) (string, error) {
	max := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(digits)), nil)
	n, err := rand.Int(rnd, max)
	if err != nil {
		return "", fmt.Errorf("one-time code: %w", err)
	}
	return fmt.Sprintf("%0*d", digits, n), nil
}

// NormalizeCode drops spaces and dashes ("123 456", "123-456") and checks that
// what remains is exactly digits digits.
func NormalizeCode(code string, digits int) (string, error) {
	if len(code) > 64 {
		return "", ErrMalformed
	}
	var b strings.Builder
	for _, r := range code {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '\t':
		default:
			return "", ErrMalformed
		}
	}
	if b.Len() != digits {
		return "", fmt.Errorf("%w: want %d digits, got %d", ErrMalformed, digits, b.Len())
	}
	return b.String(), nil
}

// hashCode is the stored form of a code: bound to its row (a challenge or an
// enrollment), so the same digits of another challenge never match.
func hashCode(h Hasher, rowID, code string) []byte {
	return h.MAC(purposeCode, []byte(rowID), []byte{0}, []byte(code))
}

// destinationKey names a destination in the per-destination send counters
// without storing it: a keyed hash, hex, of the destination's canonical
// mailbox (canonicalDestination). Phone numbers are E.164 already and chat ids
// plain integers (ParseDestination); only email addresses have variants.
func destinationKey(h Hasher, d Destination) string {
	return hex.EncodeToString(h.MAC(purposeDest, []byte(d.Channel), []byte{0}, []byte(canonicalDestination(d))))
}

// canonicalDestination is the mailbox a destination reaches, as the daily cap
// per destination counts it; the message still goes to the address as given.
// An email address counts in lower case, local part included (Alice@ and
// alice@ are one mailbox at nearly every provider; RFC 5321 lets a server tell
// them apart, but a cap that merges two such mailboxes only shares their cap,
// while one that splits them lets a bomber send one mailbox the cap many
// times), and without a +tag (alice+1@ and alice+2@ reach alice@ at most
// providers). A local part that starts with + keeps it.
func canonicalDestination(d Destination) string {
	if d.Channel != Email {
		return d.Address
	}
	addr := strings.ToLower(d.Address)
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return addr
	}
	local, domain := addr[:at], addr[at:]
	if i := strings.IndexByte(local, '+'); i > 0 {
		local = local[:i]
	}
	return local + domain
}

// TokenBytes is the link token's entropy: 256 bits.
const TokenBytes = 32

// MaxTokenLen bounds a link token (Telegram's start parameter allows 64
// characters of A-Z, a-z, 0-9, _ and -).
const MaxTokenLen = 64

// newLinkToken draws a link token: 32 random bytes, base64url without padding
// (43 characters).
func newLinkToken(rnd io.Reader) (string, error) {
	b := make([]byte, TokenBytes)
	if _, err := io.ReadFull(rnd, b); err != nil {
		return "", fmt.Errorf("link token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// ErrBadToken: a link token is malformed, unknown, used or expired.
var ErrBadToken = errors.New("link token is unknown, used or expired")

// checkToken bounds a link token and its alphabet before it is hashed.
func checkToken(tok string) error {
	if len(tok) < 43 || len(tok) > MaxTokenLen {
		return ErrBadToken
	}
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return ErrBadToken
		}
	}
	return nil
}

// tokenHash is the stored form of a link token.
func tokenHash(h Hasher, tok string) string {
	return hex.EncodeToString(h.MAC(purposeToken, []byte(tok)))
}
