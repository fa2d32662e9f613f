package otpcode

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"text/template"
	"unicode"
)

//go:embed templates
var defaultTemplates embed.FS

// Template names: one file each, <locale>/<name>.txt.
const (
	tplCodeSubject    = "code_subject"    // email subject of a code
	tplCodeEmail      = "code_email"      // email body of a code
	tplCodeSMS        = "code_sms"        // SMS text of a code (the WebOTP line is added after it)
	tplCodeChat       = "code_chat"       // Telegram and Signal text of a code
	tplChangedSubject = "changed_subject" // email subject of a changed-destination notice
	tplChangedEmail   = "changed_email"   // email body of a changed-destination notice
	tplChangedText    = "changed_text"    // SMS, Telegram and Signal text of that notice
	tplNotMeSubject   = "notme_subject"   // email subject of a "this was not me" notice
	tplNotMeEmail     = "notme_email"     // email body of that notice
	tplNotMeText      = "notme_text"      // SMS, Telegram and Signal text of that notice
)

var templateNames = []string{tplCodeSubject, tplCodeEmail, tplCodeSMS, tplCodeChat, tplChangedSubject, tplChangedEmail, tplChangedText,
	tplNotMeSubject, tplNotMeEmail, tplNotMeText}

// DefaultLocale is the locale of messages when the user's has no templates.
const DefaultLocale = "en"

// MessageData is what a template sees.
type MessageData struct {
	Service    string // the service name (Config.ServiceName)
	Code       string // the code ("" in a notice)
	Minutes    int    // the code's lifetime, in whole minutes
	Client     string // the requesting client as the backend describes it, or ""
	Enrollment bool   // the code confirms a new destination
	Channel    string // email, sms, telegram, signal
	Masked     string // in a changed-destination notice: the new destination, masked
	// In a "this was not me" notice: the device that refused the sign-in, when
	// the attempt began (UTC, "2006-01-02 15:04 UTC") and its IP address (Client
	// is the client's description).
	Device string
	When   string
	IP     string
}

// Templates renders messages. Each locale's templates are the operator
// folder's where it has them, the embedded defaults otherwise; a locale with
// neither falls back to its base language, then to DefaultLocale.
type Templates struct {
	byLocale map[string]map[string]*template.Template
}

// LoadTemplates parses the embedded defaults and, when dir is not "", the
// operator's overrides in dir (dir/<locale>/<name>.txt). Every template is
// parsed and tried once here, so a broken one fails at startup, not at a login.
func LoadTemplates(dir string) (*Templates, error) {
	t := &Templates{byLocale: map[string]map[string]*template.Template{}}
	sub, _ := fs.Sub(defaultTemplates, "templates")
	if err := t.load(sub, "embedded"); err != nil {
		return nil, err
	}
	if dir != "" {
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("templates: %w", err)
		}
		if err := t.load(os.DirFS(dir), dir); err != nil {
			return nil, err
		}
	}
	for _, name := range templateNames {
		if t.byLocale[DefaultLocale][name] == nil {
			return nil, fmt.Errorf("templates: %s/%s.txt is missing", DefaultLocale, name)
		}
	}
	return t, nil
}

func (t *Templates) load(fsys fs.FS, origin string) error {
	locales, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return fmt.Errorf("templates %s: %w", origin, err)
	}
	for _, l := range locales {
		loc := normalizeLocale(l.Name())
		if !l.IsDir() || loc == "" {
			continue
		}
		for _, name := range templateNames {
			raw, err := fs.ReadFile(fsys, path.Join(l.Name(), name+".txt"))
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return fmt.Errorf("templates %s: %w", origin, err)
			}
			tpl, err := template.New(name).Option("missingkey=error").Parse(strings.TrimRight(string(raw), "\n"))
			if err != nil {
				return fmt.Errorf("templates %s: %w", origin, err)
			}
			probe := MessageData{Service: "s", Code: "123456", Minutes: 5, Client: "c", Channel: Email, Masked: "m",
				Device: "d", When: "2026-01-02 15:04 UTC", IP: "192.0.2.1"}
			if err := tpl.Execute(&bytes.Buffer{}, probe); err != nil {
				return fmt.Errorf("templates %s: %s/%s: %w", origin, l.Name(), name, err)
			}
			if t.byLocale[loc] == nil {
				t.byLocale[loc] = map[string]*template.Template{}
			}
			t.byLocale[loc][name] = tpl
		}
	}
	return nil
}

// MaxLocaleLen bounds a locale tag (BCP 47 tags in practice stay far below).
const MaxLocaleLen = 35

// normalizeLocale turns "de_DE" or "de-DE" into "de-de"; it returns "" for
// anything that is not letters, digits and separators, or is too long.
func normalizeLocale(s string) string {
	if s == "" || len(s) > MaxLocaleLen {
		return ""
	}
	s = strings.ToLower(strings.ReplaceAll(s, "_", "-"))
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return ""
		}
	}
	return s
}

// lookup finds a template for locale: the locale, its base language, then
// DefaultLocale.
func (t *Templates) lookup(locale, name string) *template.Template {
	loc := normalizeLocale(locale)
	for _, l := range []string{loc, strings.SplitN(loc, "-", 2)[0], DefaultLocale} {
		if tpl := t.byLocale[l][name]; tpl != nil {
			return tpl
		}
	}
	return nil
}

func (t *Templates) render(locale, name string, d MessageData) (string, error) {
	tpl := t.lookup(locale, name)
	if tpl == nil {
		return "", fmt.Errorf("templates: no %s template", name)
	}
	var b bytes.Buffer
	if err := tpl.Execute(&b, d); err != nil {
		return "", fmt.Errorf("templates: %s: %w", name, err)
	}
	return b.String(), nil
}

// Message is a rendered message: Subject is set for email only.
type Message struct {
	Subject string
	Text    string
}

// RenderCode renders the message carrying a code over channel. An SMS ends
// with the origin-bound one-time-code line "@<domain> #<code>" (WebOTP, and the
// format Apple's autofill reads) when domain is not "".
func (t *Templates) RenderCode(locale, channel, domain string, d MessageData) (Message, error) {
	d.Channel = channel
	var (
		m   Message
		err error
	)
	switch channel {
	case Email:
		if m.Subject, err = t.render(locale, tplCodeSubject, d); err == nil {
			m.Text, err = t.render(locale, tplCodeEmail, d)
		}
	case SMS:
		m.Text, err = t.render(locale, tplCodeSMS, d)
		if err == nil && domain != "" {
			m.Text += "\n\n@" + domain + " #" + d.Code
		}
	default:
		m.Text, err = t.render(locale, tplCodeChat, d)
	}
	m.Subject = oneLine(m.Subject)
	return m, err
}

// RenderChanged renders the notice telling an old destination that the factor
// moved to d.Masked.
func (t *Templates) RenderChanged(locale, channel string, d MessageData) (Message, error) {
	return t.renderNotice(locale, channel, [3]string{tplChangedSubject, tplChangedEmail, tplChangedText}, d)
}

// RenderNotMe renders the notice telling a destination that a push sign-in was
// refused as "this was not me" on d.Device (d.When, d.Client, d.IP).
func (t *Templates) RenderNotMe(locale, channel string, d MessageData) (Message, error) {
	return t.renderNotice(locale, channel, [3]string{tplNotMeSubject, tplNotMeEmail, tplNotMeText}, d)
}

// renderNotice renders a notice (no code) from its subject, email and text
// templates: an email gets a subject and the email body, other channels the text.
func (t *Templates) renderNotice(locale, channel string, names [3]string, d MessageData) (Message, error) {
	d.Channel, d.Code = channel, ""
	var (
		m   Message
		err error
	)
	if channel == Email {
		if m.Subject, err = t.render(locale, names[0], d); err == nil {
			m.Text, err = t.render(locale, names[1], d)
		}
	} else {
		m.Text, err = t.render(locale, names[2], d)
	}
	m.Subject = oneLine(m.Subject)
	return m, err
}

// oneLine keeps a subject to one line of printable characters (no header
// injection, whatever a template or its data hold).
func oneLine(s string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s))
}

// MaxClientLen bounds the requesting client's description in a message.
const MaxClientLen = 200

// cleanClient keeps the requesting client's description to one bounded line.
func cleanClient(s string) string {
	s = oneLine(s)
	if len(s) > MaxClientLen {
		s = strings.ToValidUTF8(s[:MaxClientLen], "") + "…"
	}
	return s
}
