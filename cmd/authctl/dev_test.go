package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// A newcomer tries Telegram on an embedded authd without a bot: the enrollment's deep
// link names the placeholder bot, `authctl dev telegram-start <link>` presses Start in
// a simulated chat (the bot's answer lands in the outbox), the enrollment finishes
// once authd has bound the chat, and a login's code reaches the outbox for that chat.
func TestDevTelegramStart(t *testing.T) {
	addr, dataDir := startAuthd(t)
	outbox := filepath.Join(dataDir, "outbox")
	s := start(t, addr, dataDir, "code", "enroll", "alice", "-method", "telegram")
	s.until(`^Open this link in Telegram`)
	link := strings.TrimSpace(s.until(`^\s+(https://t\.me/twofactor_outbox_dev_bot\?start=\S+)$`)[1])
	var out bytes.Buffer
	if err := run([]string{"-addr", addr, "-data-dir", dataDir, "dev", "telegram-start", link, "-chat", "4242"}, strings.NewReader(""), &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "Pressed Start in chat 4242") {
		t.Fatalf("dev telegram-start: %s", out.String())
	}
	for {
		s.answer("")
		line := s.until(`^(Press Enter once the bot answered: )?(Not bound yet\.|Enrolled .*)$`)[2]
		if strings.HasPrefix(line, "Enrolled") {
			break
		}
	}
	s.wait()
	replies, _ := filepath.Glob(filepath.Join(outbox, "*-telegram-tgreply-*.txt"))
	if len(replies) != 1 {
		t.Fatalf("bot answers in the outbox: %v", replies)
	}
	if b, _ := os.ReadFile(replies[0]); !strings.Contains(string(b), "To: 4242\n") || !strings.Contains(string(b), "now linked") {
		t.Fatalf("bot answer:\n%s", b)
	}
	s = start(t, addr, dataDir, "login", "alice", "-method", "telegram")
	s.until(`^A 6-digit code was sent to `)
	code, _ := nextCode(t, outbox, "telegram", 1)
	s.answer(code)
	if out := s.wait(); !strings.Contains(out, "Accepted: alice") {
		t.Fatalf("telegram login:\n%s", out)
	}
	// A used link binds nothing, and bad input names its field.
	for _, args := range [][]string{{"not a link"}, {link, "-chat", "12ab"}} {
		err := run(append([]string{"-addr", addr, "-data-dir", dataDir, "dev", "telegram-start"}, args...), strings.NewReader(""), &out)
		if err == nil || !regexp.MustCompile(`InvalidArgument.*(link|token|chat_id):`).MatchString(err.Error()) {
			t.Errorf("dev telegram-start %q: %v", args, err)
		}
	}
}

// Anywhere but an embedded authd with Telegram to the outbox, the simulation is
// refused: here a real bot (its API an httptest server) is configured.
func TestDevTelegramStartRefusedWithABot(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "notify.yaml")
	if err := os.WriteFile(cfg, []byte("telegram-provider: telegram\ntelegram-token: \"1:abc\"\ntelegram-poll: false\ntelegram-url: http://127.0.0.1:9\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr, dataDir := startAuthd(t, "-notify-config", cfg, "-otp-telegram-bot", "TwofactorBot")
	var out bytes.Buffer
	err := run([]string{"-addr", addr, "-data-dir", dataDir, "dev", "telegram-start", "abc"}, strings.NewReader(""), &out)
	if err == nil || !strings.Contains(err.Error(), "FailedPrecondition") || !strings.Contains(err.Error(), "development only") {
		t.Fatalf("with a bot: %v", err)
	}
}
