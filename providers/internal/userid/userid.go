// Package userid validates backend user ids for the providers that take them from
// callers (apppasswords, trusteddevice), so that they refuse the same ids with the
// same words.
package userid

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxLen is the longest user id, in bytes.
const MaxLen = 255

// Check returns nil for 1 to MaxLen bytes of valid UTF-8 without control characters,
// else an error wrapping invalid that names field and says what is wrong:
// "<invalid>: <field>: empty", "... longer than 255 bytes" or "... not printable UTF-8".
func Check(invalid error, field, v string) error {
	switch {
	case v == "":
		return fmt.Errorf("%w: %s: empty", invalid, field)
	case len(v) > MaxLen:
		return fmt.Errorf("%w: %s: longer than %d bytes", invalid, field, MaxLen)
	case !utf8.ValidString(v) || strings.IndexFunc(v, unicode.IsControl) >= 0:
		return fmt.Errorf("%w: %s: not printable UTF-8", invalid, field)
	}
	return nil
}
