package testfix

import (
	"net"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// ServeSMTP runs a real SMTP server (go-smtp) in this process, plain like Mailpit
// or a local relay, on a loopback port until the test ends, and returns the port.
// Each connection gets its session from newSession.
func ServeSMTP(t testing.TB, newSession func() gosmtp.Session) int {
	t.Helper()
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(*gosmtp.Conn) (gosmtp.Session, error) { return newSession(), nil }))
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().(*net.TCPAddr).Port
}
