package backupcodes

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// Alphabet is the characters codes are made of: digits and capital letters without
// the look-alikes 0/O, 1/I/L, so a code read off paper is typed right. 31 symbols,
// log2(31) ≈ 4.95 bits each.
const Alphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"

// ErrMalformed is returned for input that cannot be a code: a character outside
// Alphabet (after dropping spaces and dashes and ignoring case), or the wrong length.
var ErrMalformed = errors.New("code is malformed")

// maxInput bounds the input Normalize looks at, so that no input costs more than a
// code's worth of work.
const maxInput = 128

// Format is the shape of a code: Length symbols of Alphabet, shown in groups of
// Group joined by dashes.
type Format struct {
	Length int
	Group  int
}

// DefaultFormat is the format of backup codes: 10 symbols (≈ 49.5 bits) shown as
// XXXXX-XXXXX.
var DefaultFormat = Format{Length: 10, Group: 5}

// Generate returns a fresh code from r (crypto/rand in production) in its display
// form. Symbols are drawn by rejection sampling, so each is uniform over Alphabet.
func (f Format) Generate(r io.Reader) (string, error) {
	const limit = 256 - 256%len(Alphabet) // bytes ≥ limit would bias the draw
	code := make([]byte, 0, f.Length)
	buf := make([]byte, f.Length+8)
	for len(code) < f.Length {
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", fmt.Errorf("random source: %w", err)
		}
		for _, b := range buf {
			if int(b) < limit && len(code) < f.Length {
				code = append(code, Alphabet[int(b)%len(Alphabet)])
			}
		}
	}
	clear(buf)
	return f.Display(string(code)), nil
}

// Display groups a normalised code for showing it: "ABCDEFGHJK" → "ABCDE-FGHJK".
func (f Format) Display(code string) string {
	if f.Group <= 0 || len(code) <= f.Group {
		return code
	}
	var b strings.Builder
	for i := 0; i < len(code); i += f.Group {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(code[i:min(i+f.Group, len(code))])
	}
	return b.String()
}

// Normalize turns what a user typed into the canonical code: ASCII letters are
// upper-cased, spaces, tabs and dashes dropped. Anything else outside Alphabet, or a
// length other than f.Length, is ErrMalformed. The error never repeats the input.
func (f Format) Normalize(input string) (string, error) {
	if len(input) > maxInput {
		return "", ErrMalformed
	}
	out := make([]byte, 0, f.Length)
	for i := 0; i < len(input); i++ {
		c := input[i]
		switch {
		case c == ' ' || c == '\t' || c == '-':
			continue
		case 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		}
		if strings.IndexByte(Alphabet, c) < 0 || len(out) == f.Length {
			return "", ErrMalformed
		}
		out = append(out, c)
	}
	if len(out) != f.Length {
		return "", ErrMalformed
	}
	return string(out), nil
}

// Generate returns n fresh backup codes in DefaultFormat, all distinct.
func Generate(r io.Reader, n int) ([]string, error) {
	if n <= 0 {
		return nil, fmt.Errorf("backup codes: count %d must be positive", n)
	}
	out := make([]string, 0, n)
	seen := make(map[string]bool, n)
	for tries := 0; len(out) < n; tries++ {
		if tries >= 4*n {
			return nil, errors.New("random source repeats itself")
		}
		c, err := DefaultFormat.Generate(r)
		if err != nil {
			return nil, err
		}
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return out, nil
}

// Normalize turns a typed backup code into its canonical form (see Format.Normalize).
func Normalize(input string) (string, error) { return DefaultFormat.Normalize(input) }
