package otpcode

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTemplatesDefaults(t *testing.T) {
	tpl, err := LoadTemplates("")
	if err != nil {
		t.Fatal(err)
	}
	d := MessageData{Service: "Example Cloud", Code: "123456", Minutes: 5, Client: "Firefox on Linux"}
	tests := []struct {
		locale, channel, subject, text string
	}{
		{"", Email, "Your Example Cloud login code: 123456", "is valid for 5 minutes"},
		{"en-GB", Email, "Your Example Cloud login code: 123456", "requested by: Firefox on Linux"},
		{"de", Email, "Ihr Example Cloud-Anmeldecode: 123456", "5 Minuten lang gültig"},
		{"de_AT", SMS, "", "123456 ist Ihr Example Cloud-Anmeldecode, 5 Min. gültig"},
		{"fr", SMS, "", "123456 is your Example Cloud login code, valid 5 min"},
		{"../../etc", Telegram, "", "It is valid for 5 minutes"},
		{"DE-de", Signal, "", "Angefordert von: Firefox on Linux"},
	}
	for _, tc := range tests {
		m, err := tpl.RenderCode(tc.locale, tc.channel, "example.com", d)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.locale, tc.channel, err)
		}
		if m.Subject != tc.subject || !strings.Contains(m.Text, tc.text) {
			t.Errorf("%s %s: %q / %q; want %q / …%q…", tc.locale, tc.channel, m.Subject, m.Text, tc.subject, tc.text)
		}
		if tc.channel == SMS != strings.HasSuffix(m.Text, "\n\n@example.com #123456") {
			t.Errorf("%s %s: WebOTP line in %q", tc.locale, tc.channel, m.Text)
		}
	}
	m, err := tpl.RenderCode("en", SMS, "", d)
	if err != nil || strings.Contains(m.Text, "#123456") {
		t.Errorf("SMS without a domain: %q %v", m.Text, err)
	}
	m, err = tpl.RenderChanged("de", Email, MessageData{Service: "Example Cloud", Masked: "b•••@example.org", Code: "999999"})
	if err != nil || !strings.Contains(m.Text, "b•••@example.org") || m.Subject == "" || strings.Contains(m.Text, "999999") {
		t.Errorf("changed notice %+v %v", m, err)
	}
}

func write(t *testing.T, dir, name, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestTemplatesOverride(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "en/code_sms.txt", "{{.Service}} code {{.Code}}\n")
	write(t, dir, "nl/code_sms.txt", "{{.Code}} is je code voor {{.Service}}\n")
	write(t, dir, "nl/unknown.txt", "ignored")
	tpl, err := LoadTemplates(dir)
	if err != nil {
		t.Fatal(err)
	}
	d := MessageData{Service: "S", Code: "123456", Minutes: 5}
	for loc, want := range map[string]string{"en": "S code 123456", "nl-BE": "123456 is je code voor S", "de": "123456 ist Ihr S-Anmeldecode"} {
		m, err := tpl.RenderCode(loc, SMS, "example.com", d)
		if err != nil || !strings.HasPrefix(m.Text, want) || !strings.HasSuffix(m.Text, "@example.com #123456") {
			t.Errorf("%s: %q %v; want %q… and the WebOTP line", loc, m.Text, err, want)
		}
	}
	// nl has no email templates: the embedded English ones serve.
	if m, _ := tpl.RenderCode("nl", Email, "", d); !strings.HasPrefix(m.Subject, "Your S login code") {
		t.Errorf("nl email subject %q", m.Subject)
	}
	if _, err := New(nil, nil, Config{TemplateDir: dir}, Options{}); err != nil {
		t.Errorf("New with the templates: %v", err)
	}
}

func TestTemplatesBroken(t *testing.T) {
	for name, text := range map[string]string{
		"en/code_sms.txt":   "{{.Code",
		"de/code_email.txt": "{{.Password}}",
		"en/code_chat.txt":  "{{template \"x\"}}",
	} {
		dir := t.TempDir()
		write(t, dir, name, text)
		if _, err := LoadTemplates(dir); err == nil {
			t.Errorf("%s %q loaded", name, text)
		}
	}
	if _, err := LoadTemplates(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing template folder loaded")
	}
}

func TestCleanClient(t *testing.T) {
	long := strings.Repeat("ä", 150)
	if c := cleanClient(long); len(c) > MaxClientLen+len("…") || !strings.HasSuffix(c, "…") || !strings.HasPrefix(c, "ää") {
		t.Errorf("cleanClient(long) = %q", c)
	}
	if c := cleanClient("a\r\nb\x00c"); c != "a  b c" {
		t.Errorf("cleanClient = %q", c)
	}
}
