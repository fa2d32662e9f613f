//go:build linux || darwin

package outbox_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/twofactor/twofactor/notify/channels/channeltest"
	"github.com/twofactor/twofactor/notify/channels/outbox"
)

// fileLimitDirEnv names the folder a child of TestWriteFailingMidwayLeavesNoFile
// writes to under its file size limit.
const fileLimitDirEnv = "OUTBOX_TEST_FILE_LIMIT_DIR"

// fileLimit is the child's largest file: a message is longer, so its write
// fails midway (EFBIG) after the first fileLimit bytes reached the disk.
const fileLimit = 64

// A message whose write fails midway (a real file size limit, RLIMIT_FSIZE, in a
// child process: the disk refuses the rest of the message) leaves no file at
// all, neither a partial message under its name nor the temporary file; the
// same folder then takes a whole message.
func TestWriteFailingMidwayLeavesNoFile(t *testing.T) {
	if dir := os.Getenv(fileLimitDirEnv); dir != "" {
		writeUnderFileLimit(dir) // the child
		return
	}
	dir := filepath.Join(t.TempDir(), "outbox")
	if _, err := outbox.New(outbox.Config{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestWriteFailingMidwayLeavesNoFile$")
	cmd.Env = append(os.Environ(), fileLimitDirEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "send failed: ") {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "file too large") {
		t.Fatalf("the child's send failed otherwise than on the limit:\n%s", out)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left behind: %s", e.Name())
	}
	s, err := outbox.New(outbox.Config{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), channeltest.Message("+15550100")); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) != 1 || !strings.HasSuffix(files[0], "-sms-ch-42.txt") {
		t.Fatalf("files after a whole send: %q", files)
	}
	if b, _ := os.ReadFile(files[0]); !bytes.HasSuffix(b, []byte("Your code is 424242. @example.org #424242\n")) {
		t.Fatalf("message %q", b)
	}
}

// writeUnderFileLimit sends one message to dir with files limited to fileLimit
// bytes and reports the outcome on stdout; the parent test checks the folder.
func writeUnderFileLimit(dir string) {
	signal.Ignore(syscall.SIGXFSZ) // a write past the limit fails with EFBIG instead of killing the process
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: fileLimit, Max: fileLimit}); err != nil {
		fmt.Println("setrlimit:", err)
		os.Exit(2)
	}
	s, err := outbox.New(outbox.Config{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println("new:", err)
		os.Exit(2)
	}
	if err := s.Send(context.Background(), channeltest.Message("+15550100")); err != nil {
		fmt.Println("send failed:", err)
		return
	}
	fmt.Println("sent")
}
