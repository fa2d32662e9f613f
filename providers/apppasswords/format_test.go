package apppasswords

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"hash/crc32"
	"os"
	"regexp"
	"strings"
	"testing"
)

// scannerPattern is what a secret scanner matches (see the package doc).
var scannerPattern = regexp.MustCompile(`^tfap_[0-9a-hjkmnp-tv-z]{33}$`)

type parseVector struct {
	Name      string `json:"name"`
	Input     string `json:"input"`
	Canonical string `json:"canonical"`
	Error     string `json:"error"`
}

func loadVectors(t testing.TB) []parseVector {
	raw, err := os.ReadFile("testdata/parse.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []parseVector
	if err := json.Unmarshal(raw, &vs); err != nil {
		t.Fatal(err)
	}
	return vs
}

// checksumOK recomputes the checksum of a canonical password another way: the 7
// symbols read as one 35-bit big-endian number must equal the CRC-32.
func checksumOK(p string) bool {
	var v uint64
	for _, c := range p[len(Prefix)+randomLen:] {
		v = v<<5 | uint64(strings.IndexRune(alphabet, c))
	}
	return v == uint64(crc32.ChecksumIEEE([]byte(p[:len(Prefix)+randomLen])))
}

func TestParseVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			got, err := Parse(v.Input)
			if v.Error != "" {
				if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), v.Error) {
					t.Fatalf("Parse = %q, %v; want ErrMalformed with %q", got, err, v.Error)
				}
				if len(v.Input) > 8 && strings.Contains(err.Error(), v.Input[len(v.Input)-8:]) {
					t.Fatalf("error %q repeats the input", err)
				}
				return
			}
			if err != nil || got != v.Canonical {
				t.Fatalf("Parse = %q, %v; want %q", got, err, v.Canonical)
			}
			if !scannerPattern.MatchString(got) || !checksumOK(got) {
				t.Fatalf("canonical %q does not match the scanner pattern or checksum", got)
			}
		})
	}
}

func TestParseBoundsInput(t *testing.T) {
	long := "tfap_0123456789abcdefghjkmnpqrs38f93sc" + strings.Repeat("-", maxInput)
	if _, err := Parse(long); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("Parse(long) = %v", err)
	}
	// Dashes up to the bound are fine.
	grouped := "tfap_" + strings.Repeat("-", maxInput-Length) + "0123456789abcdefghjkmnpqrs38f93sc"
	if _, err := Parse(grouped); err != nil {
		t.Fatalf("Parse(%d chars) = %v", len(grouped), err)
	}
}

func TestGenerate(t *testing.T) {
	seen := make(map[string]bool)
	var symbols [256]int
	for i := 0; i < 2000; i++ {
		p, err := generate(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if !scannerPattern.MatchString(p) || !checksumOK(p) {
			t.Fatalf("generated %q does not match the format", p)
		}
		if got, err := Parse(p); err != nil || got != p {
			t.Fatalf("Parse(generated) = %q, %v", got, err)
		}
		if seen[p] {
			t.Fatal("a password repeated")
		}
		seen[p] = true
		for _, c := range []byte(p[len(Prefix) : len(Prefix)+randomLen]) {
			symbols[c]++
		}
	}
	// 52000 symbols over 32 values: about 1625 each. Each must appear, none
	// wildly off (a bias bug such as a modulo over a non-divisor would show).
	for _, c := range []byte(alphabet) {
		if n := symbols[c]; n < 1300 || n > 1950 {
			t.Errorf("symbol %q appeared %d times, want about 1625", c, n)
		}
	}
	if _, err := generate(bytes.NewReader(make([]byte, 5))); err == nil {
		t.Fatal("a short random source gave a password")
	}
}

func FuzzParse(f *testing.F) {
	for _, v := range loadVectors(f) {
		f.Add(v.Input)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := Parse(in)
		if err != nil {
			if !errors.Is(err, ErrMalformed) || got != "" {
				t.Fatalf("Parse(%q) = %q, %v", in, got, err)
			}
			return
		}
		if !scannerPattern.MatchString(got) || !checksumOK(got) {
			t.Fatalf("Parse(%q) = %q: not canonical", in, got)
		}
		if again, err := Parse(got); err != nil || again != got {
			t.Fatalf("Parse is not idempotent on %q: %q, %v", got, again, err)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	b.Run("canonical", func(b *testing.B) {
		for b.Loop() {
			if _, err := Parse("tfap_0123456789abcdefghjkmnpqrs38f93sc"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("grouped", func(b *testing.B) {
		for b.Loop() {
			if _, err := Parse("TFAP_01234-56789-ABCDE-FGHJK-MNPQR-S38F9-3SC"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("malformed", func(b *testing.B) {
		for b.Loop() {
			if _, err := Parse("correct horse battery staple"); err == nil {
				b.Fatal("accepted")
			}
		}
	})
}
