package apppasswords

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Prefix starts every app password; secret scanners key on it.
const Prefix = "tfap_"

const (
	// alphabet is Crockford's base32 in lower case: no i, l, o or u, so that no
	// two symbols look alike.
	alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
	// randomLen symbols of 5 random bits each: 130 bits.
	randomLen = 26
	// checksumLen symbols hold the 32-bit CRC (the first symbol only its top 2 bits).
	checksumLen = 7
	// Length is the length of a canonical app password.
	Length = len(Prefix) + randomLen + checksumLen
	// maxInput bounds what Parse reads, dashes and spaces included.
	maxInput = 128
)

// ErrMalformed is returned by Parse for input that cannot be an app password:
// wrong prefix, a symbol outside the alphabet, wrong length or a checksum that
// does not match. The error text names the check that failed, never the input.
var ErrMalformed = errors.New("malformed app password")

// decode maps an input byte to its symbol value, or 0xff. It accepts upper and
// lower case and Crockford's aliases: i and l read as 1, o as 0.
var decode = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for v, c := range []byte(alphabet) {
		t[c] = byte(v)
		if c >= 'a' && c <= 'z' {
			t[c-'a'+'A'] = byte(v)
		}
	}
	for _, c := range []byte("iIlL") {
		t[c] = 1
	}
	t['o'], t['O'] = 0, 0
	return t
}()

// generate returns a fresh canonical app password with randomness from r.
func generate(r io.Reader) (string, error) {
	var buf [Length]byte
	copy(buf[:], Prefix)
	body := buf[len(Prefix) : len(Prefix)+randomLen]
	if _, err := io.ReadFull(r, body); err != nil {
		return "", fmt.Errorf("app password: random source: %w", err)
	}
	for i, b := range body {
		body[i] = alphabet[b&31] // 32 divides 256: every symbol equally likely
	}
	putChecksum(buf[len(Prefix)+randomLen:], buf[:len(Prefix)+randomLen])
	s := string(buf[:])
	clear(buf[:])
	return s, nil
}

// putChecksum writes the CRC-32 (IEEE) of prefixAndBody as checksumLen symbols,
// most significant first.
func putChecksum(dst, prefixAndBody []byte) {
	crc := crc32.ChecksumIEEE(prefixAndBody)
	for i := checksumLen - 1; i >= 0; i-- {
		dst[i] = alphabet[crc&31]
		crc >>= 5
	}
}

// Parse checks that s is an app password and returns its canonical form (lower
// case, no separators, aliases resolved), the form that is hashed. It trims
// surrounding white space, accepts the prefix in any case, and skips dashes and
// spaces after it. It errs with ErrMalformed, before any lookup, for anything that
// is not an app password, such as the user's main password.
func Parse(s string) (string, error) {
	if len(s) > maxInput {
		return "", fmt.Errorf("%w: longer than %d characters", ErrMalformed, maxInput)
	}
	s = trimSpace(s)
	if len(s) < len(Prefix) || !hasPrefixFold(s, Prefix) {
		return "", fmt.Errorf("%w: does not start with %q", ErrMalformed, Prefix)
	}
	var buf [Length]byte
	copy(buf[:], Prefix)
	n := len(Prefix)
	for i := len(Prefix); i < len(s); i++ {
		c := s[i]
		if c == '-' || c == ' ' {
			continue
		}
		v := decode[c]
		if v == 0xff {
			clear(buf[:])
			return "", fmt.Errorf("%w: a character outside the alphabet (0-9 and a-z without u)", ErrMalformed)
		}
		if n == Length {
			clear(buf[:])
			return "", fmt.Errorf("%w: more than %d symbols after the prefix", ErrMalformed, randomLen+checksumLen)
		}
		buf[n] = alphabet[v]
		n++
	}
	if n != Length {
		clear(buf[:])
		return "", fmt.Errorf("%w: %d symbols after the prefix, want %d", ErrMalformed, n-len(Prefix), randomLen+checksumLen)
	}
	var want [checksumLen]byte
	putChecksum(want[:], buf[:len(Prefix)+randomLen])
	if string(want[:]) != string(buf[len(Prefix)+randomLen:]) {
		clear(buf[:])
		return "", fmt.Errorf("%w: checksum does not match (a mistyped symbol?)", ErrMalformed)
	}
	out := string(buf[:])
	clear(buf[:])
	return out, nil
}

func trimSpace(s string) string {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

// hasPrefixFold reports whether s starts with the ASCII prefix p in any case.
func hasPrefixFold(s, p string) bool {
	for i := 0; i < len(p); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != p[i] {
			return false
		}
	}
	return true
}
