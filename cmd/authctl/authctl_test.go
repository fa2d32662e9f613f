package main

import (
	"bufio"
	"context"
	"encoding/base32"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twofactor/twofactor/providers/totp"
	"github.com/twofactor/twofactor/server/app"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// startAuthd runs a whole embedded authd on a free loopback port, without a
// metrics listener unless extra flags (which win) ask for one.
func startAuthd(t *testing.T, extra ...string) (addr, dataDir string) {
	t.Helper()
	a, dataDir := startApp(t, extra...)
	return a.Addr(), dataDir
}

// startApp runs an embedded authd in process and returns it (for the addresses it
// listens on) and its data folder.
func startApp(t *testing.T, extra ...string) (a *app.App, dataDir string) {
	t.Helper()
	dataDir = t.TempDir()
	args := append([]string{"-data-dir", dataDir, "-listen", "127.0.0.1:0", "-metrics-listen", "", "-database-url", storagetest.URL(t)}, extra...)
	cfg, err := app.Parse("authd", args, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err = app.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return a, dataDir
}

// session drives authctl like a person at a terminal: it reads what authctl
// prints and types answers.
type session struct {
	t      *testing.T
	lines  chan string // what authctl prints, line by line, read without blocking it
	in     *io.PipeWriter
	done   chan error
	stop   context.CancelFunc // ends the command as its -timeout would
	output strings.Builder
}

func start(t *testing.T, addr, dataDir string, args ...string) *session {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	ctx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	s := &session{t: t, lines: make(chan string, 1024), in: inW, done: make(chan error, 1), stop: stop}
	go func() {
		r := bufio.NewReader(outR)
		for {
			line, err := r.ReadString('\n')
			if line != "" {
				s.lines <- line
			}
			if err != nil {
				close(s.lines)
				return
			}
		}
	}()
	go func() {
		err := runContext(ctx, append([]string{"-addr", addr, "-data-dir", dataDir}, args...), inR, outW)
		outW.CloseWithError(io.EOF)
		inR.Close() // answers to an authctl that has exited fail instead of blocking
		s.done <- err
	}()
	return s
}

// until reads output until a line matches re and returns the submatches.
func (s *session) until(re string) []string {
	s.t.Helper()
	rx := regexp.MustCompile(re)
	for line := range s.lines {
		s.output.WriteString(line)
		if m := rx.FindStringSubmatch(strings.TrimRight(line, "\r\n")); m != nil {
			return m
		}
	}
	s.t.Fatalf("authctl output ended before %q:\n%s", re, s.output.String())
	return nil
}

func (s *session) answer(line string) { s.in.Write([]byte(line + "\n")) }

func (s *session) wait() string {
	s.t.Helper()
	for line := range s.lines {
		s.output.WriteString(line)
	}
	if err := <-s.done; err != nil {
		s.t.Fatalf("authctl: %v\n%s", err, s.output.String())
	}
	return s.output.String()
}

func TestTourEnrollLoginListRemove(t *testing.T) {
	addr, dataDir := startAuthd(t)

	s := start(t, addr, dataDir, "totp", "enroll", "alice", "-account", "alice@example.com")
	m := s.until(`^URI:\s+(otpauth://\S+)`)
	if !strings.Contains(m[1], "alice@example.com") {
		t.Fatalf("URI %q", m[1])
	}
	secret := strings.ReplaceAll(s.until(`^Secret: ([A-Z2-7 ]+)  `)[1], " ", "")
	seed, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
	if err != nil {
		t.Fatal(err)
	}
	params := totp.Params{Algorithm: "SHA1", Digits: 6, Period: 30}
	s.answer("000000x") // typo: authctl asks again
	now := time.Now()
	code, _ := totp.CodeAt(seed, params, now)
	s.answer(code)
	out := s.wait()
	if !strings.Contains(out, "Enrolled") {
		t.Fatalf("enroll output:\n%s", out)
	}
	if !strings.Contains(out, "▀") && !strings.Contains(out, "█") && !strings.Contains(out, "▄") {
		t.Fatalf("no QR code in the terminal output:\n%s", out)
	}

	// The code used for enrollment is spent; the login needs the next step's.
	s = start(t, addr, dataDir, "login", "alice")
	s.answer(code)
	s.until(`Rejected \(replayed\)`)
	next, _ := totp.CodeAt(seed, params, now.Add(30*time.Second))
	s.answer(next)
	if out := s.wait(); !strings.Contains(out, "Accepted: alice") {
		t.Fatalf("login output:\n%s", out)
	}

	s = start(t, addr, dataDir, "factors", "list", "alice")
	id := s.until(`^([0-9a-f-]{36})\s+totp\s+active`)[1]
	s.wait()
	s = start(t, addr, dataDir, "factors", "remove", "alice", id)
	s.wait()
	s = start(t, addr, dataDir, "factors", "list", "alice")
	if out := s.wait(); !strings.Contains(out, "no factors") {
		t.Fatalf("list after remove:\n%s", out)
	}
}
