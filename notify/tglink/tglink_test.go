package tglink_test

import (
	"strings"
	"testing"

	"github.com/twofactor/twofactor/notify/tglink"
)

func TestDeepLink(t *testing.T) {
	tok := tglink.NewToken()
	if len(tok) != 43 || tglink.ValidToken(tok) != nil {
		t.Fatalf("token %q", tok)
	}
	if tglink.NewToken() == tok {
		t.Fatal("two tokens are equal")
	}
	link, err := tglink.DeepLink("TwofactorBot", tok)
	if err != nil || link != "https://t.me/TwofactorBot?start="+tok {
		t.Fatalf("link %q, %v", link, err)
	}
	for _, c := range []struct{ bot, tok string }{
		{"bot", tok}, {"Two factor_bot", tok}, {"TwofactorBot", ""}, {"TwofactorBot", strings.Repeat("a", 65)},
		{"TwofactorBot", "a b"}, {"TwofactorBot", "a&x=1"}, {"TwofactorBot", "ä"},
	} {
		if _, err := tglink.DeepLink(c.bot, c.tok); err == nil {
			t.Errorf("DeepLink(%q, %q) accepted", c.bot, c.tok)
		}
	}
	if _, err := tglink.DeepLink("TwofactorBot", strings.Repeat("a", 64)); err != nil {
		t.Errorf("64 characters refused: %v", err)
	}
}

func TestParseStart(t *testing.T) {
	for text, want := range map[string]string{
		"/start abc_-9":                     "abc_-9",
		"/start@TwofactorBot xy":            "xy",
		"/start":                            "",
		"/start ":                           "",
		"/startabc":                         "",
		"/start a b":                        "",
		"hello":                             "",
		"/start " + strings.Repeat("a", 65): "",
	} {
		got, ok := tglink.ParseStart(text)
		if got != want || ok != (want != "") {
			t.Errorf("ParseStart(%q) = %q, %v; want %q", text, got, ok, want)
		}
	}
}

func FuzzParseStart(f *testing.F) {
	f.Add("/start abc")
	f.Add("/start@bot abc")
	f.Add("/start")
	f.Fuzz(func(t *testing.T, text string) {
		tok, ok := tglink.ParseStart(text)
		if ok != (tok != "") || (ok && tglink.ValidToken(tok) != nil) {
			t.Fatalf("ParseStart(%q) = %q, %v", text, tok, ok)
		}
		if ok && !strings.HasSuffix(text, " "+tok) {
			t.Fatalf("token %q is not the end of %q", tok, text)
		}
	})
}
