package main

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

var outboxCode = regexp.MustCompile(`\b(\d{6})\b`)

// nextCode waits (with a deadline) for the embedded notifyd to write one more
// message of channel to the development outbox, and returns the code in it.
func nextCode(t *testing.T, dir, channel string, seen int) (string, int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		files, _ := filepath.Glob(filepath.Join(dir, "*-"+channel+"-*.txt"))
		if len(files) > seen {
			sort.Strings(files) // names start with the time in nanoseconds
			raw, err := os.ReadFile(files[len(files)-1])
			if err != nil {
				t.Fatal(err)
			}
			_, body, _ := strings.Cut(string(raw), "\n\n")
			if m := outboxCode.FindStringSubmatch(body); m != nil {
				return m[1], len(files)
			} // else: the file is being written
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %s message reached the outbox", channel)
	return "", 0
}

// Enroll an email address and an SMS number with authctl, then log in with
// each: the code is read where embedded mode delivers it, the development outbox.
func TestCodeEnrollAndLogin(t *testing.T) {
	addr, dataDir := startAuthd(t)
	outbox := filepath.Join(dataDir, "outbox")
	for _, tc := range []struct{ method, to, masked string }{
		{"email", "alice@example.com", "a•••@example.com"},
		{"sms", "+4915123456712", "+49 •••• ••12"},
	} {
		s := start(t, addr, dataDir, "code", "enroll", "alice", "-method", tc.method, "-to", tc.to)
		s.until(`^A 6-digit code was sent to ` + regexp.QuoteMeta(tc.masked))
		code, seen := nextCode(t, outbox, tc.method, 0)
		s.answer("000000x")
		s.answer(code)
		if out := s.wait(); !strings.Contains(out, "Enrolled") {
			t.Fatalf("%s enroll:\n%s", tc.method, out)
		}

		s = start(t, addr, dataDir, "login", "alice", "-method", tc.method)
		s.until(`^A 6-digit code was sent to `)
		s.answer("resend") // during the cooldown: refused, the login goes on
		s.until(`Not resent: .*resend is allowed in`)
		code, _ = nextCode(t, outbox, tc.method, seen)
		s.answer(code)
		if out := s.wait(); !strings.Contains(out, "Accepted: alice") {
			t.Fatalf("%s login:\n%s", tc.method, out)
		}
	}
}
