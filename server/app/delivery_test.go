package app

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twofactor/twofactor/notify"
)

// Embedded mode runs notifyd's workers in-process: the delivery key is generated into
// the data folder, a code published (sealed) lands in the outbox, and the delivered
// status reaches OnGatewayStatus. A notify-config naming a channel replaces the outbox
// for that channel only. (No code channels: their wiring would share the status
// consumer with this test's.)
func TestEmbeddedDelivery(t *testing.T) {
	dir := t.TempDir()
	hookDir := filepath.Join(t.TempDir(), "ob2")
	cfgFile := filepath.Join(t.TempDir(), "notify.yaml")
	// A second outbox folder stands in for a real email provider (its config is the
	// same file a standalone notifyd reads).
	if err := os.WriteFile(cfgFile, []byte("email-provider: outbox\noutbox-dir: "+hookDir+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse("authd", []string{"-data-dir", dir, "-listen", "127.0.0.1:0", "-metrics-listen", "", "-breached-mode", "off",
		"-notify-config", cfgFile, "-otp-channels", ""}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { _ = a.Serve(ctx); close(served) }()
	defer func() { cancel(); <-served }()
	if st, err := os.Stat(filepath.Join(dir, "delivery.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("delivery key: %v", err)
	}
	statuses := make(chan notify.GatewayStatus, 4)
	if err := a.OnGatewayStatus(func(_ context.Context, s notify.GatewayStatus) error { statuses <- s; return nil }); err != nil {
		t.Fatal(err)
	}
	for _, g := range []notify.GatewaySend{
		{ChallengeID: "ch-app-sms", Channel: notify.ChannelSMS, Destination: "+15550100", Code: "314159", Text: "code 314159", ExpiresAt: time.Now().Add(time.Minute)},
		{ChallengeID: "ch-app-mail", Channel: notify.ChannelEmail, Destination: "a@example.org", Code: "271828", Text: "code 271828", ExpiresAt: time.Now().Add(time.Minute)},
	} {
		if err := a.Events().PublishGatewaySend(context.Background(), g); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]string{}
	for len(seen) < 2 {
		select {
		case s := <-statuses:
			seen[s.ChallengeID] = s.State
		case <-time.After(20 * time.Second):
			t.Fatalf("statuses so far %v", seen)
		}
	}
	if seen["ch-app-sms"] != notify.StatusDelivered || seen["ch-app-mail"] != notify.StatusDelivered {
		t.Fatalf("statuses %v", seen)
	}
	smsFiles, _ := filepath.Glob(filepath.Join(dir, "outbox", "*-sms-ch-app-sms.txt"))
	mailFiles, _ := filepath.Glob(filepath.Join(hookDir, "*-email-ch-app-mail.txt"))
	if len(smsFiles) != 1 || len(mailFiles) != 1 {
		t.Fatalf("outbox files: sms %v, email %v", smsFiles, mailFiles)
	}
	b, _ := os.ReadFile(smsFiles[0])
	if !strings.Contains(string(b), "code 314159") {
		t.Fatalf("outbox file %s", b)
	}
}

// `authd init` writes the delivery key next to the sealing key ring.
func TestInitWritesDeliveryKey(t *testing.T) {
	dir := t.TempDir()
	cfg, err := Parse("authd", []string{"-data-dir", dir}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if err := Init(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	if _, err := notify.LoadDeliveryKey(filepath.Join(dir, "delivery.key")); err != nil {
		t.Fatal(err)
	}
}
