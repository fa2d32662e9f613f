package challenge

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/twofactor/twofactor/providers/totp"
	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

func sealedFixture(step *int64) *Challenge {
	t := time.Date(2026, 11, 26, 12, 0, 0, 123, time.UTC)
	return &Challenge{Challenge: storage.Challenge{ID: "0b6f6c1e-8a4c-4d43-9d7e-3f3c2a1b0c9d", UserID: "alice@example.com", FactorID: "f-1", Method: "totp",
		State: storage.ChallengeOpen, MaxAttempts: 5, ExpiresAt: t.Add(5 * time.Minute), ClientIP: "2001:db8::1", CreatedAt: t},
		FromStep: step}
}

// checkChallengeID is the form check VerifyChallenge runs first (see server).
func checkChallengeID(id string) error {
	head, body, ok := strings.Cut(id, ".")
	if _, err := uuid.Parse(head); err != nil || len(head) != 36 {
		return errBadChallengeID
	}
	if ok && (len(id) > MaxIDLen || body == "" || strings.ContainsFunc(body, func(r rune) bool {
		return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	})) {
		return errBadChallengeID
	}
	return nil
}

// Sealing and opening give back every field a sealed id carries.
func TestSealedChallengeRoundTrip(t *testing.T) {
	s := sealedKeeper{ring: storagetest.KeyRing(t)}
	step := int64(59_000_000)
	for _, want := range []*Challenge{sealedFixture(nil), sealedFixture(&step)} {
		id, err := s.create(context.Background(), want)
		if err != nil {
			t.Fatal(err)
		}
		if checkChallengeID(id) != nil || !strings.Contains(id, ".") {
			t.Fatalf("%q does not pass its own check", id)
		}
		got, err := s.open(id)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != want.ID || got.UserID != want.UserID || got.FactorID != want.FactorID || got.Method != want.Method ||
			got.MaxAttempts != want.MaxAttempts || !got.ExpiresAt.Equal(want.ExpiresAt) || !got.CreatedAt.Equal(want.CreatedAt) ||
			got.ClientIP != want.ClientIP || !got.Sealed() || !totp.SameStep(got.FromStep, want.FromStep) || got.State != storage.ChallengeOpen {
			t.Fatalf("opened %+v, want %+v", got, want)
		}
	}
}

// FuzzOpenChallenge: no string makes checkChallengeID or openChallenge panic, and
// whatever opens was sealed by the ring (a forged id never opens).
func FuzzOpenChallenge(f *testing.F) {
	s := sealedKeeper{ring: storagetest.KeyRing(f)}
	step := int64(42)
	for _, c := range []*Challenge{sealedFixture(nil), sealedFixture(&step)} {
		id, err := s.create(context.Background(), c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(id)
	}
	f.Add(uuid.NewString())
	f.Add("0b6f6c1e-8a4c-4d43-9d7e-3f3c2a1b0c9d.AQJrMQ")
	f.Add(".")
	f.Fuzz(func(t *testing.T, id string) {
		_ = checkChallengeID(id)
		c, err := s.open(id)
		if err != nil {
			return
		}
		// It opened: the fuzzer found a spelling of one of the ids sealed above
		// (it cannot forge a seal), which is then well-formed too.
		if c.ID != sealedFixture(nil).ID || checkChallengeID(id) != nil {
			t.Fatalf("%q opened as %+v", id, c)
		}
	})
}

// FuzzChallengeClaims: the claims decoder never panics, and what it accepts
// encodes and decodes to the same challenge.
func FuzzChallengeClaims(f *testing.F) {
	step := int64(7)
	f.Add(encodeChallengeClaims(sealedFixture(nil)))
	f.Add(encodeChallengeClaims(sealedFixture(&step)))
	f.Add([]byte{})
	f.Add([]byte{0, 0, 5, 2, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeChallengeClaims(b)
		if err != nil {
			return
		}
		again := encodeChallengeClaims(c)
		c2, err := decodeChallengeClaims(again)
		if err != nil || !bytes.Equal(encodeChallengeClaims(c2), again) || c2.UserID != c.UserID || c2.ClientIP != c.ClientIP ||
			!c2.ExpiresAt.Equal(c.ExpiresAt) || !totp.SameStep(c2.FromStep, c.FromStep) || c2.MaxAttempts != c.MaxAttempts {
			t.Fatalf("claims %x decode to %+v, re-encode to %x, decode again to %+v (%v)", b, c, again, c2, err)
		}
	})
}

// BenchmarkSealChallenge and BenchmarkOpenChallenge: what a sealed challenge
// costs BeginChallenge and VerifyChallenge before any SQL.
func BenchmarkSealChallenge(b *testing.B) {
	s := sealedKeeper{ring: storagetest.KeyRing(b)}
	step := int64(59_000_000)
	c := sealedFixture(&step)
	for b.Loop() {
		if _, err := s.create(context.Background(), c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenChallenge(b *testing.B) {
	s := sealedKeeper{ring: storagetest.KeyRing(b)}
	step := int64(59_000_000)
	id, err := s.create(context.Background(), sealedFixture(&step))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.open(id); err != nil {
			b.Fatal(err)
		}
	}
}
