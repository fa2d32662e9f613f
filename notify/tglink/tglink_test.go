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

func TestTokenFromLink(t *testing.T) {
	tok := tglink.NewToken()
	link, _ := tglink.DeepLink("TwofactorBot", tok)
	for _, in := range []string{link, " " + link + "\n", tok, "tg://resolve?domain=TwofactorBot&start=" + tok} {
		if got, err := tglink.TokenFromLink(in); err != nil || got != tok {
			t.Errorf("TokenFromLink(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "a b", "https://example.org/TwofactorBot?start=" + tok, "https://t.me/TwofactorBot",
		"https://t.me/TwofactorBot?start=" + tok + "&start=x", "https://t.me/TwofactorBot?start=a%20b", "http://t.me/x?start=" + tok,
		strings.Repeat("a", tglink.MaxLinkLen+1), "https://t.me/%zz?start=" + tok} {
		if got, err := tglink.TokenFromLink(in); err == nil || !strings.HasPrefix(err.Error(), "link: ") {
			t.Errorf("TokenFromLink(%q) = %q, %v: want an error naming the link", in, got, err)
		}
	}
}

// Whatever it is given, TokenFromLink returns a valid token or an error naming the link,
// and never a token longer than Telegram allows.
func FuzzTokenFromLink(f *testing.F) {
	f.Add("https://t.me/TwofactorBot?start=abc_DEF-123")
	f.Add("tg://resolve?domain=b&start=x")
	f.Add("abc")
	f.Add("https://t.me/?start=%00")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := tglink.TokenFromLink(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "link:") {
				t.Fatalf("error %q does not name the link", err)
			}
			return
		}
		if tglink.ValidToken(tok) != nil {
			t.Fatalf("TokenFromLink(%q) = invalid %q", s, tok)
		}
	})
}
