package otpcode

import (
	"errors"
	"strings"
	"testing"
)

// FuzzCodeAndToken: the answer and token parsers return a bounded digit
// string (or a token of the link alphabet) or a typed error, and never panic.
func FuzzCodeAndToken(f *testing.F) {
	for _, s := range []string{"123456", "123 456", "12-34-56-78-90", "", "١٢٣٤٥٦", strings.Repeat("9", 11),
		"AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-abcd", "de-DE", "../x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if c, err := looseCode(in); err == nil {
			if c == "" || len(c) > MaxDigits || strings.Trim(c, "0123456789") != "" {
				t.Fatalf("looseCode(%q) = %q", in, c)
			}
		} else if !errors.Is(err, ErrMalformed) {
			t.Fatalf("looseCode(%q): %v", in, err)
		}
		if c, err := NormalizeCode(in, DefaultDigits); err == nil && (len(c) != DefaultDigits || strings.Trim(c, "0123456789") != "") {
			t.Fatalf("NormalizeCode(%q) = %q", in, c)
		}
		if err := checkToken(in); err == nil && (len(in) < 43 || len(in) > MaxTokenLen || strings.Trim(in, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") != "") {
			t.Fatalf("checkToken accepted %q", in)
		}
		if l := normalizeLocale(in); l != "" && (len(l) > MaxLocaleLen || strings.Trim(l, "abcdefghijklmnopqrstuvwxyz0123456789-") != "") {
			t.Fatalf("normalizeLocale(%q) = %q", in, l)
		}
	})
}
