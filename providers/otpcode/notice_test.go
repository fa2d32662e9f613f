package otpcode

import (
	"strings"
	"testing"
	"time"
)

// "This was not me" tells every active destination of the user, in its own
// locale, with the device, time, client and IP; pending destinations and other
// users are not told.
func TestNotMeNotices(t *testing.T) {
	e := newEnv(t, Config{})
	mail := e.enroll(t, "alice", Email, "alice@example.com")
	sms := e.enroll(t, "alice", SMS, "+49 151 2345 6712")
	if _, err := e.p.BeginEnrollment(e.ctx, EnrollInput{UserID: "alice", Channel: Signal, Destination: "+1 202 555 0143"}); err != nil {
		t.Fatal(err) // pending: not proved, not told
	}
	if _, err := e.p.BeginEnrollment(e.ctx, EnrollInput{UserID: "alice", Channel: Email, Destination: "de@example.de", Locale: "de-DE"}); err != nil {
		t.Fatal(err)
	}
	e.enroll(t, "bob", Email, "bob@example.com")
	at := time.Date(2026, 12, 2, 9, 58, 0, 0, time.UTC)
	n := NotMe{UserID: "alice", Challenge: "c0ffee00-0000-4000-8000-000000000001", Device: "Pixel 9\nFake: header", Time: at, Client: "web", IP: "203.0.113.7"}
	sends, err := e.p.NotMeNotices(e.ctx, n)
	if err != nil || len(sends) != 2 {
		t.Fatalf("notices %v %v", sends, err)
	}
	for i, want := range []struct{ factor, dest, subject string }{
		{mail.ID, "alice@example.com", "Example Cloud: a sign-in attempt was refused as not you"},
		{sms.ID, "+4915123456712", ""},
	} {
		s := sends[i]
		if s.Kind != KindNotice || s.FactorID != want.factor || s.Destination != want.dest || s.Subject != want.subject || s.Code != "" ||
			!s.ExpiresAt.Equal(e.clk.Now().Add(NoticeTTL)) || s.ID == "" || s.Seq != 1 {
			t.Errorf("notice %d: %v %q %q", i, s, s.Subject, s.ExpiresAt)
		}
		for _, part := range []string{`"Pixel 9 Fake: header"`, "2026-12-02 09:58 UTC", "web", "203.0.113.7", "change your password"} {
			if !strings.Contains(s.Text, part) {
				t.Errorf("notice %d lacks %q: %s", i, part, s.Text)
			}
		}
	}
	if sends[0].ID == sends[1].ID {
		t.Error("two notices share an id")
	}
	// The same refusal told again names the same notices (delivery drops them);
	// another refusal names others.
	again, err := e.p.NotMeNotices(e.ctx, n)
	if err != nil || len(again) != 2 || again[0].ID != sends[0].ID || again[1].ID != sends[1].ID {
		t.Fatalf("told again: %v %v; want the ids %s, %s", again, err, sends[0].ID, sends[1].ID)
	}
	n.Challenge = "c0ffee00-0000-4000-8000-000000000002"
	other, err := e.p.NotMeNotices(e.ctx, n)
	if err != nil || len(other) != 2 || other[0].ID == sends[0].ID || other[1].ID == sends[1].ID || other[0].ID == other[1].ID {
		t.Fatalf("another refusal: %v %v", other, err)
	}
	if none, err := e.p.NotMeNotices(e.ctx, NotMe{UserID: "carol", Challenge: n.Challenge, Time: at}); err != nil || len(none) != 0 {
		t.Fatalf("user without code factors: %v %v", none, err)
	}
	for _, bad := range []NotMe{{Challenge: n.Challenge, Time: at}, {UserID: "alice", Time: at},
		{UserID: "alice", Challenge: strings.Repeat("c", MaxIDLen+1), Time: at}} {
		if _, err := e.p.NotMeNotices(e.ctx, bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestRenderNotMeLocales(t *testing.T) {
	tpl, err := LoadTemplates("")
	if err != nil {
		t.Fatal(err)
	}
	d := MessageData{Service: "Example Cloud", Device: "Pixel", When: "2026-12-02 09:58 UTC", IP: "192.0.2.1", Code: "999999"}
	m, err := tpl.RenderNotMe("de", Email, d)
	if err != nil || !strings.Contains(m.Subject, "abgelehnt") || !strings.Contains(m.Text, "„Pixel“") || strings.Contains(m.Text, "999999") ||
		strings.Contains(m.Text, "Client:") {
		t.Fatalf("de email %+v %v", m, err)
	}
	m, err = tpl.RenderNotMe("fr", Telegram, d)
	if err != nil || m.Subject != "" || !strings.Contains(m.Text, "IP 192.0.2.1") || strings.Contains(m.Text, "999999") {
		t.Fatalf("fr telegram %+v %v", m, err)
	}
}
