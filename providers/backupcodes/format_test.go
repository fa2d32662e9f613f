package backupcodes_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/twofactor/twofactor/providers/backupcodes"
)

// seeded is a deterministic random source for tests.
func seeded(seed byte) *rand.ChaCha8 {
	var s [32]byte
	s[0] = seed
	return rand.NewChaCha8(s)
}

var display = regexp.MustCompile(`^[` + backupcodes.Alphabet + `]{5}-[` + backupcodes.Alphabet + `]{5}$`)

func TestAlphabetHasNoLookAlikes(t *testing.T) {
	if strings.ContainsAny(backupcodes.Alphabet, "0O1IL") {
		t.Fatalf("alphabet %q holds a look-alike", backupcodes.Alphabet)
	}
	if len(backupcodes.Alphabet) != 31 {
		t.Fatalf("alphabet has %d symbols, want 31", len(backupcodes.Alphabet))
	}
}

func TestGenerateShapeAndSpread(t *testing.T) {
	codes, err := backupcodes.Generate(seeded(1), 2000)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	counts := map[rune]int{}
	for _, c := range codes {
		if !display.MatchString(c) {
			t.Fatalf("code %q is not XXXXX-XXXXX over the alphabet", c)
		}
		if seen[c] {
			t.Fatalf("code %q drawn twice", c)
		}
		seen[c] = true
		for _, r := range strings.ReplaceAll(c, "-", "") {
			counts[r]++
		}
	}
	// 20000 symbols over 31: each expected ≈ 645; a biased draw (b % 31 without
	// rejection) would give the first 8 symbols ≈ 20% more.
	for _, r := range backupcodes.Alphabet {
		if n := counts[r]; n < 540 || n > 750 {
			t.Errorf("symbol %c drawn %d times, want about 645", r, n)
		}
	}
}

// generateVector is one entry of testdata/generate.json: the random bytes a source
// yields and the code they must give.
type generateVector struct {
	Name  string `json:"name"`
	Bytes []int  `json:"bytes"`
	Code  string `json:"code"`
}

func TestGenerateVectors(t *testing.T) {
	raw, err := os.ReadFile("testdata/generate.json")
	if err != nil {
		t.Fatal(err)
	}
	var vectors []generateVector
	if err := json.Unmarshal(raw, &vectors); err != nil {
		t.Fatal(err)
	}
	for _, v := range vectors {
		b := make([]byte, len(v.Bytes))
		for i, x := range v.Bytes {
			b[i] = byte(x)
		}
		got, err := backupcodes.DefaultFormat.Generate(bytes.NewReader(b))
		if err != nil || got != v.Code {
			t.Errorf("%s: Generate = %q, %v; want %q", v.Name, got, err, v.Code)
		}
	}
	if _, err := backupcodes.DefaultFormat.Generate(bytes.NewReader(make([]byte, 5))); err == nil {
		t.Error("a short random source gave a code")
	}
	if _, err := backupcodes.Generate(bytes.NewReader(bytes.Repeat([]byte{7}, 1000)), 2); err == nil {
		t.Error("a constant random source gave two distinct codes")
	}
}

func TestNormalize(t *testing.T) {
	cases := []struct {
		in, want string
	}{
		{"ABCDE-FGHJK", "ABCDEFGHJK"},
		{"abcde-fghjk", "ABCDEFGHJK"},
		{"  abcde fghjk ", "ABCDEFGHJK"},
		{"ab-cd-ef-gh-jk", "ABCDEFGHJK"},
		{"\tAbCdEfGhJk", "ABCDEFGHJK"},
		{"23456 789AB", "23456789AB"},
		{"", ""},
		{"ABCDE-FGHJ", ""},             // short
		{"ABCDE-FGHJKM", ""},           // long
		{"ABCDE-FGHJ0", ""},            // zero is not in the alphabet
		{"OBCDE-FGHJK", ""},            // nor O
		{"1BCDE-FGHJK", ""},            // nor 1
		{"IBCDE-FGHJK", ""},            // nor I
		{"lbcde-fghjk", ""},            // nor l
		{"ABCDE_FGHJK", ""},            // underscore is not a separator
		{"ABCDE-FGHJ\u212a", ""},       // Kelvin sign is not K
		{"ABCDE-FGH\u017fK", ""},       // long s is not S
		{"ABCDE-FGHJK\x00", ""},        // NUL
		{strings.Repeat(" ", 200), ""}, // too long to look at
	}
	for _, c := range cases {
		got, err := backupcodes.Normalize(c.in)
		if c.want == "" {
			if !errors.Is(err, backupcodes.ErrMalformed) {
				t.Errorf("Normalize(%q) = %q, %v; want ErrMalformed", c.in, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"ABCDE-FGHJK", "abcde fghjk", "", "0O1IL", "ABCDE-FGHJ\u212a", "-----", "a-b-c-d-e-f-g-h-j-k"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := backupcodes.Normalize(in)
		if err != nil {
			// The bare sentinel: nothing of the input is in the error.
			if err != backupcodes.ErrMalformed {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if len(got) != 10 {
			t.Fatalf("Normalize(%q) = %q: length %d", in, got, len(got))
		}
		for i := 0; i < len(got); i++ {
			if strings.IndexByte(backupcodes.Alphabet, got[i]) < 0 {
				t.Fatalf("Normalize(%q) = %q: %q not in the alphabet", in, got, got[i])
			}
		}
		// Canonical: idempotent, and the display form and lower case map back.
		for _, again := range []string{got, backupcodes.DefaultFormat.Display(got), strings.ToLower(in)} {
			if n, err := backupcodes.Normalize(again); err != nil || n != got {
				t.Fatalf("Normalize(%q) = %q, %v; want %q", again, n, err, got)
			}
		}
	})
}

func BenchmarkNormalize(b *testing.B) {
	for b.Loop() {
		backupcodes.Normalize("abcde fghjk")
	}
}
