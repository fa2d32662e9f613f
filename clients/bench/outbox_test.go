package bench

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twofactor/twofactor/notify/channels"
	"github.com/twofactor/twofactor/notify/channels/outbox"
)

// TestOutboxWatcher has the real development outbox write messages into the
// watched folder: a code waited for before its message is written and one
// written before anyone waits both reach their id, and the files are removed.
func TestOutboxWatcher(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	sender, err := outbox.New(outbox.Config{Dir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	w, err := watchOutbox(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // a guard, not a timing
	defer cancel()
	send := func(to, code string) {
		t.Helper()
		m := channels.Message{ChallengeID: "c" + code, Channel: "email", Destination: to, Subject: "Your login code: " + code,
			Text: "Hello,\n\nyour login code is:\n\n    " + code + "\n\nThe code is valid for 5 minutes.", ExpiresAt: time.Now().Add(time.Minute)}
		if err := sender.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan string, 1)
	go func() { c, _ := w.code(ctx, "waited@bench.example"); got <- c }()
	for { // wait until the waiter is registered, so this path is the one tested
		w.mu.Lock()
		_, ok := w.waiting["waited@bench.example"]
		w.mu.Unlock()
		if ok {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("waiter never registered")
		}
	}
	send("waited@bench.example", "123456")
	if c := <-got; c != "123456" {
		t.Fatalf("waited code %q, want 123456", c)
	}
	send("early@bench.example", "98765432")
	if c, err := w.code(ctx, "early@bench.example"); err != nil || c != "98765432" {
		t.Fatalf("early code %q (%v), want 98765432", c, err)
	}
	// A message no one waited for is forgotten before the next code is asked for.
	send("stale@bench.example", "111111")
	for { // until the watcher has read it
		w.mu.Lock()
		_, ok := w.arrived["stale@bench.example"]
		w.mu.Unlock()
		if ok {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("stale message never read")
		}
	}
	w.forget("stale@bench.example")
	send("stale@bench.example", "222222")
	if c, err := w.code(ctx, "stale@bench.example"); err != nil || c != "222222" {
		t.Fatalf("code after forget %q (%v), want 222222", c, err)
	}
	if files, _ := os.ReadDir(dir); len(files) != 0 {
		t.Fatalf("%d files left in the outbox, want the read ones removed", len(files))
	}
	short, stop := context.WithCancel(ctx)
	stop()
	if _, err := w.code(short, "never"); err == nil {
		t.Fatal("code of a message never written: want an error when the context ends")
	}
}

func TestParseOutboxName(t *testing.T) {
	for _, tc := range []struct {
		name, channel, id string
		ok                bool
	}{
		{"1764680000000000000-email-6f1c2d3e-aaaa-4bbb-8ccc-0123456789ab.txt", "email", "6f1c2d3e-aaaa-4bbb-8ccc-0123456789ab", true},
		{"17-sms-abc_2.txt", "sms", "abc_2", true},
		{"17-email-abc.txt.tmp", "", "", false},
		{"x7-email-abc.txt", "", "", false},
		{"17-email.txt", "", "", false},
		{"17--abc.txt", "", "", false},
		{"-email-abc.txt", "", "", false},
	} {
		ch, id, ok := parseOutboxName(tc.name)
		if ch != tc.channel || id != tc.id || ok != tc.ok {
			t.Errorf("parseOutboxName(%q) = %q, %q, %v; want %q, %q, %v", tc.name, ch, id, ok, tc.channel, tc.id, tc.ok)
		}
	}
}

func TestParseOutboxMessage(t *testing.T) {
	full := "To: a@b.example\nChannel: email\nChallenge: c1\nExpires: 2026-12-02T10:00:00Z\nSubject: Your code: 111111\n\nHello,\n\nyour code is:\n\n    424242\n\nValid 5 minutes.\n"
	for _, tc := range []struct {
		raw, to, code string
		ok            bool
	}{
		{full, "a@b.example", "424242", true},
		{full[:len(full)-1], "", "", false}, // not written to the end
		{full[:60], "", "", false},          // header only
		{"", "", "", false},                 // created, not written
		{"To: a@b.example\nChallenge: c1\n\nno code here\n", "", "", false},
		{"Challenge: c1\n\n424242\n", "", "", false},   // no destination
		{"To: a@b.example\n\n424242\n", "", "", false}, // not an outbox message
	} {
		to, code, ok := parseOutboxMessage([]byte(tc.raw))
		if to != tc.to || code != tc.code || ok != tc.ok {
			t.Errorf("parseOutboxMessage(%.30q…) = %q, %q, %v; want %q, %q, %v", tc.raw, to, code, ok, tc.to, tc.code, tc.ok)
		}
	}
}

func TestPeakRSS(t *testing.T) {
	n, err := PeakRSS(filepath.Join("testdata", "proc-status.txt"))
	if err != nil || n != 1620<<10 {
		t.Fatalf("PeakRSS(testdata) = %d, %v; want %d", n, err, 1620<<10)
	}
	if n, err := PeakRSS("/proc/self/status"); err != nil || n < 1<<20 {
		t.Fatalf("PeakRSS(/proc/self/status) = %d, %v; want this process's, over 1 MiB", n, err)
	}
	bad := filepath.Join(t.TempDir(), "status")
	for _, body := range []string{"Name:\tx\nVmRSS:\t 10 kB\n", "VmHWM:\t 10 MB\n", "VmHWM:\t -1 kB\n", "VmHWM:\n"} {
		if err := os.WriteFile(bad, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if n, err := PeakRSS(bad); err == nil {
			t.Errorf("PeakRSS(%q) = %d, want an error", body, n)
		}
	}
}

// FuzzParseOutbox: the outbox parsers never panic, and what they accept is well formed.
func FuzzParseOutbox(f *testing.F) {
	f.Add("17-email-abc.txt", "To: a@b.example\nChallenge: c1\n\nyour code:\n\n    424242\n")
	f.Add("x-y-z", "To: \nChallenge: \n\n1234567890123\n")
	f.Fuzz(func(t *testing.T, name, raw string) {
		if ch, id, ok := parseOutboxName(name); ok && (ch == "" || id == "" || !strings.HasSuffix(name, "-"+ch+"-"+id+".txt")) {
			t.Fatalf("parseOutboxName(%q) = %q, %q", name, ch, id)
		}
		to, code, ok := parseOutboxMessage([]byte(raw))
		if ok && (to == "" || len(code) < 6 || len(code) > 10 || strings.Trim(code, "0123456789") != "" || !strings.Contains(raw, code)) {
			t.Fatalf("parseOutboxMessage(%q) = %q, %q", raw, to, code)
		}
	})
}
