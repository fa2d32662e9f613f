package trusteddevice

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Prefix starts every device token; secret scanners key on it.
const Prefix = "tfrd_"

const (
	// alphabet is Crockford's base32 in lower case (as app passwords).
	alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
	// randomLen symbols of 5 random bits each: 260 bits.
	randomLen = 52
	// checksumLen symbols hold the 32-bit CRC (the first symbol only its top 2 bits).
	checksumLen = 7
	// Length is the length of a device token.
	Length = len(Prefix) + randomLen + checksumLen
	// MaxInput bounds what Parse reads.
	MaxInput = 128
)

// ErrMalformed is returned by Parse for input that cannot be a device token. The
// error text names the check that failed, never the input.
var ErrMalformed = errors.New("malformed device token")

// generate returns a token whose randomLen symbols are the low 5 bits of the
// first randomLen bytes of r (32 divides 256: each symbol is uniform when r is).
func generate(r io.Reader) (string, error) {
	var buf [Length]byte
	copy(buf[:], Prefix)
	body := buf[len(Prefix) : len(Prefix)+randomLen]
	if _, err := io.ReadFull(r, body); err != nil {
		return "", fmt.Errorf("device token: random source: %w", err)
	}
	for i, b := range body {
		body[i] = alphabet[b&31]
	}
	putChecksum(buf[len(Prefix)+randomLen:], buf[:len(Prefix)+randomLen])
	s := string(buf[:])
	clear(buf[:])
	return s, nil
}

// putChecksum writes the CRC-32 (IEEE) of prefixAndBody as checksumLen symbols.
func putChecksum(dst, prefixAndBody []byte) {
	crc := crc32.ChecksumIEEE(prefixAndBody)
	for i := checksumLen - 1; i >= 0; i-- {
		dst[i] = alphabet[crc&31]
		crc >>= 5
	}
}

// isSymbol tells whether c is in the (lower-case) alphabet.
func isSymbol(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' && c != 'i' && c != 'l' && c != 'o' && c != 'u'
}

// Parse checks that s is a device token exactly as Issue or Check returned it
// (machines store and send it: no case folding, separators or aliases) and
// returns it. It errs with ErrMalformed, before any lookup, for anything else.
func Parse(s string) (string, error) {
	if len(s) > MaxInput {
		return "", fmt.Errorf("%w: longer than %d characters", ErrMalformed, MaxInput)
	}
	if len(s) != Length || s[:len(Prefix)] != Prefix {
		return "", fmt.Errorf("%w: not %q and %d symbols", ErrMalformed, Prefix, randomLen+checksumLen)
	}
	for i := len(Prefix); i < len(s); i++ {
		if !isSymbol(s[i]) {
			return "", fmt.Errorf("%w: a character outside the alphabet", ErrMalformed)
		}
	}
	var want [checksumLen]byte
	putChecksum(want[:], []byte(s[:len(Prefix)+randomLen]))
	if string(want[:]) != s[len(Prefix)+randomLen:] {
		return "", fmt.Errorf("%w: checksum does not match", ErrMalformed)
	}
	return s, nil
}
