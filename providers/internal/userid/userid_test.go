package userid

import (
	"errors"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	errBad := errors.New("invalid argument")
	for _, tc := range []struct {
		in, want string // want "" means accepted
	}{
		{"alice", ""},
		{"ünïcødé@example.org", ""},
		{strings.Repeat("x", MaxLen), ""},
		{"", "invalid argument: user_id: empty"},
		{strings.Repeat("x", MaxLen+1), "invalid argument: user_id: longer than 255 bytes"},
		{"a\x00b", "invalid argument: user_id: not printable UTF-8"},
		{"a\nb", "invalid argument: user_id: not printable UTF-8"},
		{"a\u0085b", "invalid argument: user_id: not printable UTF-8"}, // C1 control
		{"a\xffb", "invalid argument: user_id: not printable UTF-8"},
	} {
		err := Check(errBad, "user_id", tc.in)
		if tc.want == "" {
			if err != nil {
				t.Errorf("Check(%q) = %v, want nil", tc.in, err)
			}
			continue
		}
		if err == nil || err.Error() != tc.want || !errors.Is(err, errBad) {
			t.Errorf("Check(%q) = %v, want %q wrapping the caller's error", tc.in, err, tc.want)
		}
	}
}
