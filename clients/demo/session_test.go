package demo

import (
	"strings"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func newTestCodec(t testing.TB) (*codec, *fakeClock) {
	clk := &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	c, err := newCodec(clk.now)
	if err != nil {
		t.Fatal(err)
	}
	return c, clk
}

func TestCookieCodec(t *testing.T) {
	c, clk := newTestCodec(t)
	other, _ := newTestCodec(t)
	good := c.seal(purposeSession, claims{User: "alice"}, time.Hour)
	login := c.seal(purposeLogin, claims{User: "alice", Challenge: "c1", Method: "totp"}, time.Hour)
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	cases := []struct {
		name, purpose, value string
		advance              time.Duration
		ok                   bool
	}{
		{"valid", purposeSession, good, 0, true},
		{"valid until the last second", purposeSession, good, time.Hour - time.Second, true},
		{"expired", purposeSession, good, time.Hour, false},
		{"login cookie is no session", purposeSession, login, 0, false},
		{"session cookie is no login", purposeLogin, good, 0, false},
		{"login cookie as login", purposeLogin, login, 0, true},
		{"other process key", purposeSession, other.seal(purposeSession, claims{User: "alice"}, time.Hour), 0, false},
		{"payload tampered", purposeSession, flip(good, 5), 0, false},
		{"mac tampered", purposeSession, flip(good, len(good)-3), 0, false},
		{"no version", purposeSession, strings.TrimPrefix(good, "v1."), 0, false},
		{"no mac", purposeSession, good[:strings.LastIndex(good, ".")], 0, false},
		{"empty", purposeSession, "", 0, false},
		{"garbage", purposeSession, "v1.%%%.%%%", 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := clk.t
			clk.t = start.Add(tc.advance)
			defer func() { clk.t = start }()
			cl, err := c.open(tc.purpose, tc.value)
			if (err == nil) != tc.ok {
				t.Fatalf("open = %+v, %v; want ok=%v", cl, err, tc.ok)
			}
			if tc.ok && cl.User != "alice" {
				t.Fatalf("user %q", cl.User)
			}
		})
	}
}

func FuzzCookieOpen(f *testing.F) {
	c, _ := newTestCodec(f)
	f.Add(c.seal(purposeSession, claims{User: "alice"}, time.Hour))
	f.Add(c.seal(purposeLogin, claims{User: "bob", Challenge: "x", Method: "webauthn"}, time.Minute))
	f.Add("v1..")
	f.Add("v1.e30.")
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		cl, err := c.open(purposeSession, v)
		if err != nil {
			return
		}
		// Whatever opens must be what this codec sealed: re-sealing the claims with
		// the same expiry gives a value that opens to the same claims.
		again, err := c.open(purposeSession, c.seal(purposeSession, cl, time.Hour))
		if err != nil || again.User != cl.User {
			t.Fatalf("reopen %+v: %+v %v", cl, again, err)
		}
	})
}

func BenchmarkCookieOpen(b *testing.B) {
	c, _ := newTestCodec(b)
	v := c.seal(purposeSession, claims{User: "alice@example.com"}, time.Hour)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.open(purposeSession, v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCookieSeal(b *testing.B) {
	c, _ := newTestCodec(b)
	b.ReportAllocs()
	for b.Loop() {
		c.seal(purposeSession, claims{User: "alice@example.com"}, time.Hour)
	}
}
