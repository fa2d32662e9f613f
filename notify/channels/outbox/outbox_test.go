package outbox_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twofactor/twofactor/notify/channels/channeltest"
	"github.com/twofactor/twofactor/notify/channels/outbox"
)

func TestSendWritesPrivateFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	var logs bytes.Buffer
	s, err := outbox.New(outbox.Config{Dir: dir, Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
		Now: func() time.Time { return time.Unix(0, 1700000000000000000) }})
	if err != nil {
		t.Fatal(err)
	}
	m := channeltest.Message("+15550100")
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "1700000000000000000-sms-ch-42.txt")
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("message file: %v, mode %v", err, st.Mode().Perm())
	}
	if dst, _ := os.Stat(dir); dst.Mode().Perm() != 0o700 {
		t.Fatalf("folder mode %v", dst.Mode().Perm())
	}
	body, _ := os.ReadFile(path)
	for _, want := range []string{"To: +15550100", "Subject: Sign-in code", "Your code is 424242."} {
		if !strings.Contains(string(body), want) {
			t.Errorf("file lacks %q:\n%s", want, body)
		}
	}
	if !strings.Contains(logs.String(), path) || strings.Contains(logs.String(), "424242") || strings.Contains(logs.String(), "+15550100") {
		t.Errorf("log line %s: want the file name and neither code nor destination", logs.String())
	}
	if err := s.Send(context.Background(), m); err == nil {
		t.Error("a second file of the same name was written over the first")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("folder holds %d entries after the refused second file, want the first only (no temporary file)", len(entries))
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, body) {
		t.Errorf("the first file changed:\n%s", again)
	}
}

// A notice gets its own file name and a Kind line, and the log line says it holds a
// destination (no code).
func TestSendNotice(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	var logs bytes.Buffer
	s, err := outbox.New(outbox.Config{Dir: dir, Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
		Now: func() time.Time { return time.Unix(0, 1700000000000000000) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), channeltest.Notice("+15550100")); err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(filepath.Join(dir, "1700000000000000000-sms-notice-n-42.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"To: +15550100", "Kind: notice", "Notice: n-42", "changed to +49 •••• ••12."} {
		if !strings.Contains(string(body), want) {
			t.Errorf("file lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(string(body), "Challenge:") || !strings.Contains(logs.String(), "notice written") || strings.Contains(logs.String(), "+15550100") {
		t.Errorf("file %s / log %s", body, logs.String())
	}
}

func TestRejects(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := outbox.New(outbox.Config{Dir: dir}); err == nil {
		t.Error("a folder others can read was accepted")
	}
	s, err := outbox.New(outbox.Config{Dir: filepath.Join(dir, "ok")})
	if err != nil {
		t.Fatal(err)
	}
	m := channeltest.Message("+15550100")
	m.ChallengeID = "../../escape"
	if err := s.Send(context.Background(), m); channeltest.Kind(err) != "permanent rejected" {
		t.Errorf("path in challenge id: %v", err)
	}
	m = channeltest.Message("+15550100")
	m.Channel = "../x"
	if err := s.Send(context.Background(), m); channeltest.Kind(err) != "permanent rejected" {
		t.Errorf("path in channel: %v", err)
	}
}

// New removes the temporary files a crash left behind once they are older
// than StaleTemp (by the injected clock against their modification time), and
// leaves a fresh one (another Sender may be writing it), messages and other
// files alone; also in a folder whose name a glob pattern would misread.
func TestNewSweepsStaleTemporaryFiles(t *testing.T) {
	for _, name := range []string{"outbox", "out[1]box"} {
		t.Run(name, func(t *testing.T) { testSweep(t, filepath.Join(t.TempDir(), name)) })
	}
}

func testSweep(t *testing.T, dir string) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	files := map[string]time.Duration{ // name → age
		".outbox-1111.tmp":   outbox.StaleTemp + time.Second, // stale: removed
		".outbox-2222.tmp":   outbox.StaleTemp - time.Second, // being written: kept
		"1-sms-ch-1.txt":     time.Hour,                      // a message: kept
		".outbox-notes.keep": time.Hour,                      // not a temporary file: kept
	}
	for name, age := range files {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte("Your code is 424242."), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, now.Add(-age), now.Add(-age)); err != nil {
			t.Fatal(err)
		}
	}
	var logs bytes.Buffer
	if _, err := outbox.New(outbox.Config{Dir: dir, Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Now: func() time.Time { return now }}); err != nil {
		t.Fatal(err)
	}
	for name := range files {
		_, err := os.Stat(filepath.Join(dir, name))
		if gone := os.IsNotExist(err); gone != (name == ".outbox-1111.tmp") {
			t.Errorf("%s: removed %v (%v)", name, gone, err)
		}
	}
	if !strings.Contains(logs.String(), `"files":1`) || strings.Contains(logs.String(), "424242") {
		t.Errorf("logs: %s", logs.String())
	}
}
