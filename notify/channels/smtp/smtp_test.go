package smtp_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/twofactor/twofactor/notify/channels/channeltest"
	"github.com/twofactor/twofactor/notify/channels/smtp"
)

const (
	user     = "notifyd"
	password = "smtp-password-0123"
	dest     = "alice@example.org"
)

// mailServer is a real SMTP server in this process (go-smtp) that records what it
// received and refuses recipients at refused.invalid.
type mailServer struct {
	mu       sync.Mutex
	mails    []received
	authed   bool
	tlsState bool
}

type received struct {
	from string
	to   []string
	data string
}

type session struct {
	s      *mailServer
	conn   *gosmtp.Conn
	authed bool
	cur    received
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, u, p string) error {
		if u != user || p != password {
			return gosmtp.ErrAuthFailed
		}
		s.authed = true
		return nil
	}), nil
}
func (s *session) Reset()        { s.cur = received{} }
func (s *session) Logout() error { return nil }
func (s *session) Mail(from string, _ *gosmtp.MailOptions) error {
	if s.s.authed && !s.authed {
		return gosmtp.ErrAuthRequired
	}
	s.cur.from = from
	return nil
}
func (s *session) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	if strings.HasSuffix(to, "@refused.invalid") {
		return &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "<" + to + ">: Recipient address rejected"}
	}
	if strings.HasSuffix(to, "@greylist.invalid") {
		return &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 7, 1}, Message: "<" + to + ">: greylisted, try again"}
	}
	s.cur.to = append(s.cur.to, to)
	return nil
}
func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.data = string(b)
	_, tlsOn := s.conn.TLSConnectionState()
	s.s.mu.Lock()
	s.s.mails = append(s.s.mails, s.cur)
	s.s.tlsState = tlsOn
	s.s.mu.Unlock()
	return nil
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// start serves SMTP on a loopback port: STARTTLS offered (mode "starttls"), TLS from
// the first byte ("tls"), or plain without auth like Mailpit ("none").
func start(t *testing.T, mode string) (*mailServer, int, *x509.CertPool) {
	t.Helper()
	ms := &mailServer{authed: mode != "none"}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(c *gosmtp.Conn) (gosmtp.Session, error) {
		return &session{s: ms, conn: c}, nil
	}))
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	cert, pool := selfSigned(t)
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	var l net.Listener
	var err error
	if mode == "tls" {
		l, err = tls.Listen("tcp", "127.0.0.1:0", srv.TLSConfig)
	} else {
		l, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	if mode == "none" {
		srv.TLSConfig = nil
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ms, l.Addr().(*net.TCPAddr).Port, pool
}

func sender(t *testing.T, mode string, port int, pool *x509.CertPool, pass string) *smtp.Sender {
	t.Helper()
	cfg := smtp.Config{Host: "localhost", Port: port, TLS: mode, From: "Twofactor <no-reply@example.org>", Timeout: 5 * time.Second}
	if mode != "none" {
		cfg.Username, cfg.Password = user, pass
		cfg.TLSConfig = &tls.Config{RootCAs: pool}
	}
	s, err := smtp.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSendModes(t *testing.T) {
	for _, mode := range []string{smtp.TLSStartTLS, smtp.TLSImplicit, smtp.TLSNone} {
		t.Run(mode, func(t *testing.T) {
			ms, port, pool := start(t, mode)
			m := channeltest.Message(dest)
			if err := sender(t, mode, port, pool, password).Send(context.Background(), m); err != nil {
				t.Fatal(err)
			}
			ms.mu.Lock()
			defer ms.mu.Unlock()
			if len(ms.mails) != 1 {
				t.Fatalf("%d mails received", len(ms.mails))
			}
			got := ms.mails[0]
			if got.from != "no-reply@example.org" || len(got.to) != 1 || got.to[0] != dest {
				t.Fatalf("envelope %q → %v", got.from, got.to)
			}
			for _, want := range []string{"Subject: Sign-in code", "To: <alice@example.org>", "Your code is 424242.", "text/plain"} {
				if !strings.Contains(got.data, want) {
					t.Errorf("mail lacks %q:\n%s", want, got.data)
				}
			}
			if ms.tlsState != (mode != smtp.TLSNone) {
				t.Errorf("TLS on the connection: %v", ms.tlsState)
			}
		})
	}
}

// A notice (no code, no subject from authd) is mailed with its text and the notice
// subject, never the code subject.
func TestSendNotice(t *testing.T) {
	ms, port, pool := start(t, smtp.TLSNone)
	n := channeltest.Notice(dest)
	if err := sender(t, smtp.TLSNone, port, pool, password).Send(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if len(ms.mails) != 1 || !strings.Contains(ms.mails[0].data, "Subject: Security notice") ||
		!strings.Contains(ms.mails[0].data, "was changed to +49") || strings.Contains(ms.mails[0].data, "verification code") {
		t.Fatalf("mails %+v", ms.mails)
	}
}

// A refused recipient is an error (permanent for 5xx, retried for 4xx), never a success.
func TestSendRefused(t *testing.T) {
	ms, port, pool := start(t, smtp.TLSStartTLS)
	s := sender(t, smtp.TLSStartTLS, port, pool, password)
	for to, want := range map[string]string{"bob@refused.invalid": "permanent rejected", "bob@greylist.invalid": "error"} {
		err := s.Send(context.Background(), channeltest.Message(to))
		if got := channeltest.Kind(err); got != want {
			t.Errorf("%s: %s (%v), want %s", to, got, err, want)
		}
		channeltest.Clean(t, err, to, "bob", "424242", password)
	}
	err := sender(t, smtp.TLSStartTLS, port, pool, "wrong-password").Send(context.Background(), channeltest.Message(dest))
	if err == nil {
		t.Error("wrong password: sent")
	}
	channeltest.Clean(t, err, "wrong-password", dest, "424242")
	if err := s.Send(context.Background(), channeltest.Message("not an address")); channeltest.Kind(err) != "permanent rejected" {
		t.Errorf("bad address: %v", err)
	}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if len(ms.mails) != 0 {
		t.Fatalf("%d mails delivered, want none", len(ms.mails))
	}
}

// A server whose certificate is not trusted is not sent to.
func TestSendUntrustedCertificate(t *testing.T) {
	_, port, _ := start(t, smtp.TLSStartTLS)
	_, otherPool := selfSigned(t)
	err := sender(t, smtp.TLSStartTLS, port, otherPool, password).Send(context.Background(), channeltest.Message(dest))
	if err == nil {
		t.Fatal("sent over TLS to an untrusted certificate")
	}
	channeltest.Clean(t, err, password, dest)
}

func TestNewRejects(t *testing.T) {
	for name, cfg := range map[string]smtp.Config{
		"no host":           {From: "a@example.org"},
		"bad from":          {Host: "mail.example.org", From: "nope"},
		"bad mode":          {Host: "mail.example.org", From: "a@example.org", TLS: "ssl3"},
		"credentials clear": {Host: "mail.example.org", From: "a@example.org", TLS: smtp.TLSNone, Username: "u", Password: "p"},
	} {
		if _, err := smtp.New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := smtp.New(smtp.Config{Host: "127.0.0.1", Port: 1025, TLS: smtp.TLSNone, From: "a@example.org"}); err != nil {
		t.Errorf("Mailpit settings refused: %v", err)
	}
}
