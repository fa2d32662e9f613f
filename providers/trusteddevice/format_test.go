package trusteddevice_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/twofactor/twofactor/providers/trusteddevice"
)

// scanner is the pattern the package doc gives secret scanners.
var scanner = regexp.MustCompile(`^tfrd_[0-9a-hjkmnp-tv-z]{59}$`)

func TestTokenFormat(t *testing.T) {
	r := newService(t, nil)
	seen := map[string]bool{}
	for i := 0; i < 50; i++ {
		_, tok := r.issue(t, "alice")
		if len(tok) != trusteddevice.Length || !scanner.MatchString(tok) {
			t.Fatalf("token %d does not match the documented format", i)
		}
		if seen[tok] {
			t.Fatal("two issues returned the same token")
		}
		seen[tok] = true
		if got, err := trusteddevice.Parse(tok); err != nil || got != tok {
			t.Fatalf("Parse(issued) = %v", err)
		}
	}
}

func TestParseRejects(t *testing.T) {
	_, tok := newService(t, nil).issue(t, "alice")
	flip := []byte(tok)
	if flip[10] == '0' {
		flip[10] = '1'
	} else {
		flip[10] = '0'
	}
	for name, in := range map[string]string{
		"empty": "", "prefix": "tfap_" + tok[5:], "upper": strings.ToUpper(tok), "short": tok[:len(tok)-1],
		"long": tok + "0", "alphabet": tok[:20] + "u" + tok[21:], "checksum": string(flip),
		"huge": strings.Repeat("a", 10000), "spaces": " " + tok,
	} {
		if _, err := trusteddevice.Parse(in); !errors.Is(err, trusteddevice.ErrMalformed) {
			t.Errorf("%s: Parse err = %v, want ErrMalformed", name, err)
		}
		if err := func() error { _, err := trusteddevice.Parse(in); return err }(); err != nil && strings.Contains(err.Error(), tok[5:20]) {
			t.Errorf("%s: error text holds the input", name)
		}
	}
	res, err := newService(t, nil).svc.Check(context.Background(), "alice", "password123", ip)
	if err != nil || res.Reason != trusteddevice.ReasonMalformed {
		t.Fatalf("Check(not a token) = %+v, %v", res, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("tfrd_" + strings.Repeat("0", 59))
	f.Add("tfrd_")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := trusteddevice.Parse(s)
		if err != nil {
			if !errors.Is(err, trusteddevice.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if got != s || !scanner.MatchString(got) {
			t.Fatalf("Parse accepted %q", s)
		}
	})
}
