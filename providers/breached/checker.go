package breached

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
)

// Checker answers whether a password appears in a breach corpus.
type Checker interface {
	Check(ctx context.Context, password string) (Result, error)
}

// Result is the answer of a Checker.
type Result struct {
	// Breached is true when the password's hash appears in the corpus with a
	// count above zero.
	Breached bool
	// Count is how many times the corpus has seen the password (0 when not
	// breached).
	Count int64
	// Checked is false when no answer could be obtained and the checker is
	// configured to fail open; Breached is then false and means nothing.
	Checked bool
	// Source names the checker that answered: SourceRange or SourceOffline.
	Source string
}

// Values of Result.Source.
const (
	SourceRange   = "pwnedpasswords-range"
	SourceOffline = "pwnedpasswords-offline"
)

var (
	// ErrInvalidDigest reports a SHA-1 digest that is not 40 hex digits.
	ErrInvalidDigest = errors.New("breached: invalid SHA-1 digest")
	// ErrUnavailable reports that the range API could not answer (network
	// error, timeout, non-200 status, malformed body, Retry-After in force)
	// while the client fails closed. Use errors.As with *UnavailableError for
	// the details, such as how long to wait.
	ErrUnavailable = errors.New("breached: password breach service unavailable")
	// ErrMalformedResponse reports a range API body that does not follow the
	// SUFFIX:COUNT format. It is always wrapped together with ErrUnavailable.
	ErrMalformedResponse = errors.New("breached: malformed range response")
	// ErrMalformedList reports an offline list that is not a sorted file of
	// SHA1:COUNT lines.
	ErrMalformedList = errors.New("breached: malformed offline list")
)

// digestLen is the length of a SHA-1 digest in hex digits.
const digestLen = 2 * sha1.Size

// parseDigest decodes a 40-digit hex SHA-1 digest, in either case. Errors
// never repeat the input, which is as sensitive as the password it hashes.
func parseDigest(hexDigest string) ([sha1.Size]byte, error) {
	var sum [sha1.Size]byte
	if len(hexDigest) != digestLen {
		return sum, fmt.Errorf("%w: want %d hex digits, got %d characters", ErrInvalidDigest, digestLen, len(hexDigest))
	}
	for i := 0; i < digestLen; i += 2 {
		hi, ok1 := nibble(hexDigest[i], true)
		lo, ok2 := nibble(hexDigest[i+1], true)
		if !ok1 || !ok2 {
			return sum, fmt.Errorf("%w: non-hex character near position %d", ErrInvalidDigest, i)
		}
		sum[i/2] = hi<<4 | lo
	}
	return sum, nil
}

// nibble decodes one hex digit: upper case always, lower case if allowed.
func nibble(c byte, lower bool) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	case lower && 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

const upperHex = "0123456789ABCDEF"

// hexUpper encodes a digest as 40 upper-case hex digits, the spelling of the
// published corpus.
func hexUpper(sum *[sha1.Size]byte) [digestLen]byte {
	var out [digestLen]byte
	for i, b := range sum {
		out[2*i] = upperHex[b>>4]
		out[2*i+1] = upperHex[b&0x0F]
	}
	return out
}

// parseCount decodes a non-negative decimal count in canonical form: ASCII
// digits only, no sign, no leading zero (except "0" itself), no overflow.
func parseCount(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 19 || (len(b) > 1 && b[0] == '0') {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (1<<63-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}
