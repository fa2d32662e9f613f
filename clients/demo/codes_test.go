package demo_test

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var outboxCode = regexp.MustCompile(`\b(\d{6,10})\b`)

// outboxMessage waits for message number n (from 1) to dest in the development
// outbox of the in-process notifyd, and returns its code.
func (f *fixture) outboxMessage(t *testing.T, dest string, n int) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		files, _ := filepath.Glob(filepath.Join(f.dataDir, "outbox", "*.txt")) // sorted: names start with the time
		var bodies []string
		for _, p := range files {
			if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), "To: "+dest+"\n") {
				bodies = append(bodies, string(b))
			}
		}
		if len(bodies) >= n {
			// The text follows the header lines (To, Channel, Challenge id, ...),
			// whose ids may hold digits.
			_, text, _ := strings.Cut(bodies[n-1], "\n\n")
			m := outboxCode.FindStringSubmatch(text)
			if m == nil {
				t.Fatalf("no code in message %d:\n%s", n, bodies[n-1])
			}
			return m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages to %s reached the outbox", len(bodies), n, dest)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A phone destination (SMS or Signal) added and confirmed on the account page; at
// sign-in the code is sent on request and checked against the challenge that sent it.
func TestCodeByPhone(t *testing.T) {
	f := start(t)
	for _, tc := range []struct{ method, label, phone string }{
		{"sms", "Code by SMS", "+4915123456789"},
		{"signal", "Code by Signal", "+4915123456780"},
	} {
		t.Run(tc.method, func(t *testing.T) { codeByPhone(t, f, tc.method, tc.label, tc.phone) })
	}
}

func codeByPhone(t *testing.T, f *fixture, method, label, phone string) {
	b := f.browser(t)
	user := method + "-user"
	b.signIn(user).must(t, "/account", "Codes by email, SMS, Signal or Telegram")

	for _, bad := range []url.Values{{"method": {"fax"}, "destination": {phone}}, {"method": {method}, "destination": {""}},
		{"method": {method}, "destination": {strings.Repeat("1", 321)}}} {
		if p := b.post("/account/codes", bad); p.status != http.StatusBadRequest {
			t.Fatalf("%v: %d\n%s", bad, p.status, p.body)
		}
	}
	if p := b.post("/account/codes", url.Values{"method": {method}, "destination": {"not a number"}}); p.status != http.StatusBadRequest || !strings.Contains(p.body, "destination") {
		t.Fatalf("a bad phone number: %d\n%s", p.status, p.body)
	}

	p := b.post("/account/codes", url.Values{"method": {method}, "destination": {phone}}).must(t, "/account/codes", "code was sent to")
	if strings.Contains(p.body, phone) {
		t.Fatal("the page shows the whole phone number")
	}
	factorID := p.find(t, `name="factor_id" value="([0-9a-f-]{36})"`)
	code := f.outboxMessage(t, phone, 1)
	b.post("/account/codes/finish", url.Values{"factor_id": {factorID}, "code": {code}}).must(t, "/account", "Added: codes can be sent there")
	b.signOut()

	b.signIn(user).must(t, "/signin/second", label)
	// A code before any was sent is not checked against a challenge of its own.
	if p := b.post("/signin/code", url.Values{"method": {method}, "code": {code}}); p.status != http.StatusBadRequest || !strings.Contains(p.body, "Send a code") {
		t.Fatalf("a code before sending: %d\n%s", p.status, p.body)
	}
	b.post("/signin/send", url.Values{"method": {method}}).must(t, "/signin/send", "code was sent to")
	login := f.outboxMessage(t, phone, 2)
	wrong := fmt.Sprintf("%0*d", len(login), 0)
	if wrong == login {
		wrong = fmt.Sprintf("%0*d", len(login), 1)
	}
	b.post("/signin/code", url.Values{"method": {method}, "code": {wrong}}).must(t, "/signin/code", "Rejected")
	b.post("/signin/code", url.Values{"method": {method}, "code": {login}}).must(t, "/account", "Account of "+user)
}

// Telegram: the account page shows the t.me deep link (and its QR code), whose
// status call only checks (nothing is sent, however often it is asked) until the
// chat is bound; on this embedded authd without a bot, the page's button presses
// Start in a simulated chat. The login's code then reaches that chat (the outbox).
func TestCodeByTelegram(t *testing.T) {
	f := start(t)
	b := f.browser(t)
	b.signIn("tg-user").must(t, "/account", "Link a Telegram chat")
	p := b.post("/account/codes", url.Values{"method": {"telegram"}}).must(t, "/account/codes",
		"https://t.me/twofactor_outbox_dev_bot?start=", `alt="QR code of the Telegram link"`, "Simulate pressing Start")
	factorID := p.find(t, `data-factor-id="([0-9a-f-]{36})"`)
	link := p.find(t, `id="telegram-link" href="(https://t\.me/[^"]+)"`)
	for i := 0; i < 3; i++ {
		if a := b.postJSON("/account/telegram/status", map[string]string{"factorId": factorID}); a.OK || a.Result != "waiting" {
			t.Fatalf("status before Start: %+v", a)
		}
	}
	b.post("/account/telegram/finish", url.Values{"factor_id": {factorID}, "link": {link}}).mustStatus(t, http.StatusConflict, "Not linked yet")
	if files, _ := filepath.Glob(filepath.Join(f.dataDir, "outbox", "*.txt")); len(files) != 0 {
		t.Fatalf("sent before Start: %v", files)
	}
	// The button presses Start only for the development bot's links.
	realBot := strings.Replace(link, "twofactor_outbox_dev_bot", "TwofactorBot", 1)
	b.post("/account/telegram/simulate", url.Values{"factor_id": {factorID}, "link": {realBot}}).mustStatus(t, http.StatusBadRequest, "press Start in Telegram")
	if a := b.postJSON("/account/telegram/status", map[string]string{"factorId": factorID}); a.OK || a.Result != "waiting" {
		t.Fatalf("status after a refused simulation: %+v", a)
	}
	b.post("/account/telegram/simulate", url.Values{"factor_id": {factorID}, "link": {link}}).must(t, "/account/telegram/simulate", "Start pressed in the simulated chat 100000001")
	deadline := time.Now().Add(10 * time.Second)
	for {
		a := b.postJSON("/account/telegram/status", map[string]string{"factorId": factorID})
		if a.OK {
			if a.Redirect != "/account?done=codefactor" {
				t.Fatalf("bound: %+v", a)
			}
			break
		}
		if a.Result != "waiting" || time.Now().After(deadline) {
			t.Fatalf("status after Start: %+v", a)
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.signOut()

	b.signIn("tg-user").must(t, "/signin/second", "Code by Telegram")
	b.post("/signin/send", url.Values{"method": {"telegram"}}).must(t, "/signin/send", "code was sent to")
	code := f.outboxMessage(t, "100000001", 2) // 1: the bot's answer to Start
	b.post("/signin/code", url.Values{"method": {"telegram"}, "code": {code}}).must(t, "/account", "Account of tg-user")
}

func (p page) mustStatus(t *testing.T, status int, contains string) {
	t.Helper()
	if p.status != status || !strings.Contains(p.body, contains) {
		t.Fatalf("got %d, want %d with %q:\n%s", p.status, status, contains, p.body)
	}
}
