package otpcode

import (
	"errors"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

var linkRE = regexp.MustCompile(`^https://t\.me/ExampleAuthBot\?start=([A-Za-z0-9_-]{43})$`)

func beginTelegram(t *testing.T, e *env, user, replaces string) (*Enrollment, string) {
	t.Helper()
	en, err := e.p.BeginEnrollment(e.ctx, EnrollInput{UserID: user, Channel: Telegram, Replaces: replaces})
	if err != nil {
		t.Fatal(err)
	}
	m := linkRE.FindStringSubmatch(en.Link)
	if m == nil || en.Send != nil || en.Factor.State != storage.FactorPending || !en.ExpiresAt.Equal(e.clk.Now().Add(MaxLinkTTL)) {
		t.Fatalf("telegram enrollment %+v", en)
	}
	u, _ := url.Parse(en.Link)
	if u.Query().Get("start") != m[1] {
		t.Fatalf("link %q does not carry its token as the start parameter", en.Link)
	}
	return en, m[1]
}

func TestTelegramEnrollAndLogin(t *testing.T) {
	e := newEnv(t, Config{TelegramBot: "ExampleAuthBot"})
	en, tok := beginTelegram(t, e, "u1", "")
	_, other := beginTelegram(t, e, "u1", "")
	if tok == other {
		t.Fatal("two enrollments drew the same token")
	}
	for _, bad := range []struct{ tok, chat string }{
		{tok[:42], "123456789"},
		{tok + "!", "123456789"},
		{strings.Repeat("A", 43), "123456789"},
		{tok, "-1001234567890"}, // a group: refused before the token is used
	} {
		if _, err := e.p.BindTelegram(e.ctx, bad.tok, bad.chat); err == nil {
			t.Fatalf("binding %q %q accepted", bad.tok, bad.chat)
		}
	}
	fin, err := e.p.BindTelegram(e.ctx, tok, "123456789")
	if err != nil || fin.Factor.State != storage.FactorActive || MaskedDestination(fin.Factor) != "chat ••••89" {
		t.Fatalf("bind: %+v %v", fin, err)
	}
	if _, err := e.p.BindTelegram(e.ctx, tok, "987654321"); !errors.Is(err, ErrBadToken) {
		t.Fatalf("second use of the token: %v", err)
	}
	ch, err := e.p.BeginChallenge(e.ctx, ChallengeInput{UserID: "u1", Channel: Telegram, FactorID: en.Factor.ID})
	if err != nil || ch.Send.Destination != "123456789" || ch.Send.Subject != "" || !strings.Contains(ch.Send.Text, ch.Send.Code) {
		t.Fatalf("challenge %+v %v", ch, err)
	}
	if res, err := e.p.Verify(e.ctx, "u1", ch.ID, ch.Send.Code); err != nil || !res.Accepted {
		t.Fatalf("verify: %v", err)
	}
	// The other enrollment's token expires with it.
	e.clk.Advance(MaxLinkTTL)
	if _, err := e.p.BindTelegram(e.ctx, other, "123456789"); !errors.Is(err, ErrBadToken) {
		t.Fatalf("expired token: %v", err)
	}
	storagetest.AssertNotStored(t, e.store, tok, other, "123456789", ch.Send.Code)
}

func TestTelegramConcurrentBindsOneWins(t *testing.T) {
	e := newEnv(t, Config{TelegramBot: "ExampleAuthBot"})
	_, tok := beginTelegram(t, e, "u1", "")
	var (
		mu  sync.Mutex
		won int
	)
	errs := race(e, t, 10, func(p *Provider) error {
		_, err := p.BindTelegram(e.ctx, tok, "123456789")
		if err == nil {
			mu.Lock()
			won++
			mu.Unlock()
		}
		return err
	})
	for _, err := range errs {
		if err != nil && !errors.Is(err, ErrBadToken) {
			t.Errorf("loser: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d binds won; want 1", won)
	}
}

func TestTelegramReplaceTellsOldChat(t *testing.T) {
	e := newEnv(t, Config{TelegramBot: "ExampleAuthBot"})
	_, tok := beginTelegram(t, e, "u1", "")
	old, err := e.p.BindTelegram(e.ctx, tok, "111111111")
	if err != nil {
		t.Fatal(err)
	}
	_, tok = beginTelegram(t, e, "u1", old.Factor.ID)
	fin, err := e.p.BindTelegram(e.ctx, tok, "222222222")
	if err != nil {
		t.Fatal(err)
	}
	if n := fin.Notice; n == nil || n.Destination != "111111111" || n.Channel != Telegram || !strings.Contains(n.Text, "chat ••••22") {
		t.Fatalf("notice %+v", fin.Notice)
	}
	if fs, _ := e.store.ListFactors(e.ctx, "u1", Telegram, ""); len(fs) != 1 || fs[0].ID != fin.Factor.ID {
		t.Fatalf("factors after the replacement: %+v", fs)
	}
}

func TestTelegramDisabled(t *testing.T) {
	e := newEnv(t, Config{})
	if _, err := e.p.BeginEnrollment(e.ctx, EnrollInput{UserID: "u1", Channel: Telegram}); !errors.Is(err, ErrTelegramDisabled) {
		t.Fatalf("telegram without a bot: %v", err)
	}
}
