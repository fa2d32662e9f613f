package demo

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/twofactor/twofactor/clients/client"
)

// The device cookie is __Host- prefixed, Secure, HttpOnly, SameSite=Strict,
// Path=/ and without Domain on https; on http://localhost it drops the prefix
// and Secure (a browser refuses a __Host- cookie without Secure).
func TestDeviceCookieAttributes(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for origin, want := range map[string]struct {
		name   string
		secure bool
	}{
		"https://demo.example.org": {cookieDeviceSecure, true},
		"http://localhost:8080":    {cookieDevicePlain, false},
	} {
		h, err := New(Config{Client: &client.Client{}, Origin: origin, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		h.setDevice(rec, "tfrd_token", now.Add(30*24*time.Hour))
		cs := rec.Result().Cookies()
		if len(cs) != 1 {
			t.Fatalf("%s: cookies %v", origin, cs)
		}
		c := cs[0]
		if c.Name != want.name || c.Secure != want.secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Domain != "" ||
			c.MaxAge != 30*24*3600 {
			t.Errorf("%s: cookie %+v", origin, c)
		}
	}
}

func TestDeviceLabel(t *testing.T) {
	for ua, want := range map[string]string{
		"Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0":                                      "Firefox on Linux",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0 Safari/537.36": "Chrome on Windows",
		"": "Browser",
	} {
		if got := deviceLabel(ua); got != want {
			t.Errorf("deviceLabel(%q) = %q, want %q", ua, got, want)
		}
	}
}
