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

// An SMS destination added and confirmed on the account page; at sign-in the
// code is sent on request and checked against the challenge that sent it.
func TestCodeBySMS(t *testing.T) {
	f := start(t)
	b := f.browser(t)
	const phone = "+4915123456789"
	b.signIn("sms-user").must(t, "/account", "Codes by email or SMS")

	for _, bad := range []url.Values{{"method": {"fax"}, "destination": {phone}}, {"method": {"sms"}, "destination": {""}},
		{"method": {"sms"}, "destination": {strings.Repeat("1", 321)}}} {
		if p := b.post("/account/codes", bad); p.status != http.StatusBadRequest {
			t.Fatalf("%v: %d\n%s", bad, p.status, p.body)
		}
	}
	if p := b.post("/account/codes", url.Values{"method": {"sms"}, "destination": {"not a number"}}); p.status != http.StatusBadRequest || !strings.Contains(p.body, "destination") {
		t.Fatalf("a bad phone number: %d\n%s", p.status, p.body)
	}

	p := b.post("/account/codes", url.Values{"method": {"sms"}, "destination": {phone}}).must(t, "/account/codes", "code was sent to")
	if strings.Contains(p.body, phone) {
		t.Fatal("the page shows the whole phone number")
	}
	factorID := p.find(t, `name="factor_id" value="([0-9a-f-]{36})"`)
	code := f.outboxMessage(t, phone, 1)
	b.post("/account/codes/finish", url.Values{"factor_id": {factorID}, "code": {code}}).must(t, "/account", "Added: codes can be sent there")
	b.signOut()

	b.signIn("sms-user").must(t, "/signin/second", "Code by SMS")
	// A code before any was sent is not checked against a challenge of its own.
	if p := b.post("/signin/code", url.Values{"method": {"sms"}, "code": {code}}); p.status != http.StatusBadRequest || !strings.Contains(p.body, "Send a code") {
		t.Fatalf("a code before sending: %d\n%s", p.status, p.body)
	}
	b.post("/signin/send", url.Values{"method": {"sms"}}).must(t, "/signin/send", "code was sent to")
	login := f.outboxMessage(t, phone, 2)
	wrong := fmt.Sprintf("%0*d", len(login), 0)
	if wrong == login {
		wrong = fmt.Sprintf("%0*d", len(login), 1)
	}
	b.post("/signin/code", url.Values{"method": {"sms"}, "code": {wrong}}).must(t, "/signin/code", "Rejected")
	b.post("/signin/code", url.Values{"method": {"sms"}, "code": {login}}).must(t, "/account", "Account of sms-user")
}
