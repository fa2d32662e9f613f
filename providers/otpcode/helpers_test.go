package otpcode

import (
	"context"
	"testing"
	"time"

	"github.com/twofactor/twofactor/internal/testfix"
	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

type env struct {
	p     *Provider
	store *storage.Store
	ring  *storage.KeyRing
	clk   *testfix.Clock
	ctx   context.Context
}

// newEnv opens a fresh store (SQLite, or PostgreSQL under
// TWOFACTOR_TEST_DATABASE_URL) and a provider on it with cfg.
func newEnv(t testing.TB, cfg Config) *env {
	t.Helper()
	s := storagetest.Open(t)
	ring := storagetest.KeyRing(t)
	clk := testfix.NewClock(time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC))
	if cfg.ServiceName == "" {
		cfg.ServiceName = "Example Cloud"
	}
	p, err := New(s, ring, cfg, Options{Clock: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return &env{p: p, store: s, ring: ring, clk: clk, ctx: context.Background()}
}

// replica is a second provider on the same store and keys, as another
// replica of authd would be.
func (e *env) replica(t testing.TB) *Provider {
	t.Helper()
	p, err := New(e.store, e.ring, e.p.cfg, Options{Clock: e.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// enroll enrolls and proves a destination, returning the active factor.
func (e *env) enroll(t testing.TB, user, channel, dest string) *storage.Factor {
	t.Helper()
	en, err := e.p.BeginEnrollment(e.ctx, EnrollInput{UserID: user, Channel: channel, Destination: dest})
	if err != nil {
		t.Fatalf("begin enrollment %s %s: %v", channel, dest, err)
	}
	fin, _, err := e.p.FinishEnrollment(e.ctx, user, en.Factor.ID, en.Send.Code)
	if err != nil {
		t.Fatalf("finish enrollment: %v", err)
	}
	return fin.Factor
}

// begin begins a login challenge.
func (e *env) begin(t testing.TB, user, channel string) *Challenge {
	t.Helper()
	ch, err := e.p.BeginChallenge(e.ctx, ChallengeInput{UserID: user, Channel: channel, Client: "Firefox on Linux"})
	if err != nil {
		t.Fatalf("begin challenge: %v", err)
	}
	return ch
}

// wrong returns a code of the right length that is not code.
func wrong(code string) string {
	b := []byte(code)
	b[0] = '0' + (b[0]-'0'+1)%10
	return string(b)
}
