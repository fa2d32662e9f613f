package testfix

import (
	"fmt"
	"io"
	"net/smtp"
	"strings"
	"sync"
	"testing"

	gosmtp "github.com/emersion/go-smtp"
)

type recorder struct {
	mu  *sync.Mutex
	got *[]string
	to  string
}

func (r *recorder) Reset()                                 {}
func (r *recorder) Logout() error                          { return nil }
func (r *recorder) Mail(string, *gosmtp.MailOptions) error { return nil }
func (r *recorder) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	r.to = to
	return nil
}
func (r *recorder) Data(d io.Reader) error {
	b, err := io.ReadAll(d)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	*r.got = append(*r.got, r.to+" "+strings.TrimSpace(string(b)))
	return nil
}

// A mail sent over SMTP to the port reaches the session.
func TestServeSMTP(t *testing.T) {
	var mu sync.Mutex
	var got []string
	port := ServeSMTP(t, func() gosmtp.Session { return &recorder{mu: &mu, got: &got} })
	err := smtp.SendMail(fmt.Sprintf("127.0.0.1:%d", port), nil, "a@example.org", []string{"b@example.org"}, []byte("Subject: hi\r\n\r\nbody\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != "b@example.org Subject: hi\r\n\r\nbody" {
		t.Fatalf("received %q", got)
	}
}
