package otpcode

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestSendRedacts(t *testing.T) {
	e := newEnv(t, Config{})
	e.enroll(t, "u1", SMS, "+4915123456712")
	ch := e.begin(t, "u1", SMS)
	s := ch.Send
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("send", "send", s)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("send", "send", s)
	outs := []string{fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s", s, s, s, s), fmt.Errorf("publish %v: boom", s).Error(), logged.String()}
	for _, out := range outs {
		for _, secret := range []string{s.Code, s.Destination, "15123456712", s.Text} {
			if strings.Contains(out, secret) {
				t.Errorf("%q shows a secret", out)
			}
		}
		if !strings.Contains(out, ch.ID) {
			t.Errorf("%q does not name the challenge", out)
		}
	}
	var nilSend *Send
	if nilSend.String() == "" {
		t.Error("nil send prints nothing")
	}
}

func TestChannelAssurance(t *testing.T) {
	if a := ChannelAssurance(Email); a.OutOfBand || a.Restricted || !strings.Contains(a.Note, "§3.1.3.1") {
		t.Errorf("email %+v", a)
	}
	if a := ChannelAssurance(SMS); !a.OutOfBand || !a.Restricted || !strings.Contains(a.Note, "§3.1.3.3") {
		t.Errorf("sms %+v", a)
	}
	for _, ch := range []string{Telegram, Signal} {
		if a := ChannelAssurance(ch); !a.OutOfBand || a.Restricted {
			t.Errorf("%s %+v", ch, a)
		}
	}
	if !LowEntropy() {
		t.Error("codes are low entropy")
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []Config{
		{Digits: 5}, {Digits: 11}, {CodeTTL: 11 * 60e9}, {MaxAttempts: 11}, {MaxAttempts: -1},
		{ResendCooldown: 6 * 60e9}, {MaxResends: 11}, {UserDailyCap: -1}, {DestinationDailyCap: 100000},
		{LinkTTL: 11 * 60e9}, {TelegramBot: "a b"}, {TelegramBot: "bot"}, {DefaultRegion: "DEU"},
		{Domain: "exa mple.com"}, {ServiceName: strings.Repeat("s", 65)},
	}
	for _, c := range bad {
		if err := c.Validate(); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
	if err := (Config{Digits: 10, CodeTTL: 10 * 60e9, TelegramBot: "ExampleAuthBot", DefaultRegion: "de", Domain: "Login.Example.com"}).Validate(); err != nil {
		t.Errorf("good config: %v", err)
	}
	if _, err := New(nil, nil, Config{Digits: 4}, Options{}); err == nil {
		t.Error("New accepted a bad config")
	}
}

func TestCodes(t *testing.T) {
	seen := map[string]bool{}
	counts := [10]int{}
	for range 2000 {
		c, err := generateCode(rand.Reader, 6)
		if err != nil {
			t.Fatal(err)
		}
		if len(c) != 6 || strings.Trim(c, "0123456789") != "" {
			t.Fatalf("code %q", c)
		}
		seen[c] = true
		for _, d := range c {
			counts[d-'0']++
		}
	}
	if len(seen) < 1990 {
		t.Errorf("%d distinct codes of 2000", len(seen))
	}
	for d, n := range counts { // 1200 expected per digit; 5 sigma is about 170
		if n < 1000 || n > 1400 {
			t.Errorf("digit %d drawn %d times of 12000", d, n)
		}
	}
	if c, _ := generateCode(rand.Reader, 10); len(c) != 10 {
		t.Errorf("10-digit code %q", c)
	}
	if _, err := generateCode(bytes.NewReader(nil), 6); err == nil {
		t.Error("a failing random source gave a code")
	}
	for in, want := range map[string]string{"123456": "123456", "123 456": "123456", "12-34-56": "123456", "\t123456 ": "123456"} {
		if got, err := NormalizeCode(in, 6); err != nil || got != want {
			t.Errorf("NormalizeCode(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"12345", "1234567", "12345a", "１２３４５６", strings.Repeat("1", 65)} {
		if _, err := NormalizeCode(in, 6); !errors.Is(err, ErrMalformed) {
			t.Errorf("NormalizeCode(%q): %v", in, err)
		}
	}
}

func TestHashesAreBound(t *testing.T) {
	ring := newEnv(t, Config{}).ring
	if bytes.Equal(hashCode(ring, "c1", "123456"), hashCode(ring, "c2", "123456")) {
		t.Error("the same code of two challenges hashes alike")
	}
	a := destinationKey(ring, Destination{Channel: SMS, Address: "+4915123456712"})
	b := destinationKey(ring, Destination{Channel: Signal, Address: "+4915123456712"})
	if a == b || strings.Contains(a, "15123456712") {
		t.Errorf("destination keys %s %s", a, b)
	}
	if destinationKey(ring, Destination{Channel: Email, Address: "Alice@example.com"}) != destinationKey(ring, Destination{Channel: Email, Address: "alice@example.com"}) {
		t.Error("one mailbox in two cases counts as two destinations")
	}
}

func TestMessageID(t *testing.T) {
	id := "0b6f3c3e-5d0a-4a43-9d7e-2f7d1f7a9c11"
	for seq, want := range map[int]string{0: id, 1: id, 2: id + "_2", 12: id + "_12"} {
		s := &Send{ID: id, Seq: seq}
		if got := s.MessageID(); got != want {
			t.Errorf("seq %d: %q", seq, got)
		}
		if gotID, gotSeq := SplitMessageID(want); gotID != id || gotSeq != max(seq, 1) {
			t.Errorf("SplitMessageID(%q) = %q, %d", want, gotID, gotSeq)
		}
	}
	for _, odd := range []string{"a_b", "a_1", "a_02", "a_", "_3x"} {
		if gotID, seq := SplitMessageID(odd); gotID != odd || seq != 1 {
			t.Errorf("SplitMessageID(%q) = %q, %d", odd, gotID, seq)
		}
	}
}
