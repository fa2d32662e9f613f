package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/credentials/insecure"

	"github.com/twofactor/twofactor/server/app"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// TestMain lets a test run this package's main in a child process (the test
// binary itself), to see exactly what a person typing the command sees.
func TestMain(m *testing.M) {
	if os.Getenv("AUTHD_TEST_MAIN") == "1" {
		os.Args = append([]string{"authd"}, strings.Fields(os.Getenv("AUTHD_TEST_ARGS"))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runMain(t *testing.T, args string, env ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run", "^$")
	cmd.Env = append(os.Environ(), append([]string{"AUTHD_TEST_MAIN=1", "AUTHD_TEST_ARGS=" + args}, env...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// `authd help` and `authd -h` list every subcommand and the serve flags, and
// succeed (issue 17: `authd help` was an error, -h did not name the subcommands).
func TestHelpListsSubcommands(t *testing.T) {
	for _, args := range []string{"help", "-h", "--help", "-data-dir x -h"} {
		out, err := runMain(t, args)
		if err != nil {
			t.Fatalf("authd %s: %v\n%s", args, err, out)
		}
		for _, want := range []string{"authd init", "authd apikey add", "authd keys rotate", "authd keys reseal", "authd healthcheck", "authd help", "-listen", "-data-dir"} {
			if !strings.Contains(out, want) {
				t.Errorf("authd %s does not mention %q:\n%s", args, want, out)
			}
		}
	}
	if out, err := runMain(t, "-no-such-flag"); err == nil {
		t.Fatalf("an unknown flag succeeded:\n%s", out)
	}
}

func startAuthd(t *testing.T) (*app.Config, context.CancelFunc, chan error) {
	t.Helper()
	args := []string{"-data-dir", t.TempDir(), "-listen", "127.0.0.1:0", "-metrics-listen", "", "-database-url", storagetest.URL(t), "-breached-mode", "off"}
	cfg, err := app.Parse("authd", args, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	cfg.Listen = a.Addr()
	return cfg, cancel, done
}

// `authd healthcheck` exits 0 against a serving replica (reading its settings
// from the environment, as in a container) and 1 once it has stopped.
func TestHealthcheckSubcommand(t *testing.T) {
	cfg, cancel, done := startAuthd(t)
	env := []string{"TWOFACTOR_LISTEN=" + cfg.Listen, "TWOFACTOR_DATA_DIR=" + cfg.DataDir}
	if out, err := runMain(t, "healthcheck", env...); err != nil {
		t.Fatalf("healthcheck of a serving authd: %v\n%s", err, out)
	}
	cancel()
	<-done
	done <- nil // for the cleanup
	out, err := runMain(t, "healthcheck", env...)
	if err == nil {
		t.Fatalf("healthcheck of a stopped authd succeeded:\n%s", out)
	}
	if !strings.Contains(out, "health check of "+cfg.Listen) {
		t.Errorf("healthcheck failure does not say what it checked:\n%s", out)
	}
}

func TestHealthcheckTalksToLoopbackForUnspecifiedListen(t *testing.T) {
	for in, want := range map[string]string{"0.0.0.0:7443": "127.0.0.1:7443", "[::]:7443": "[::1]:7443", ":7443": "127.0.0.1:7443", "10.0.0.5:7443": "10.0.0.5:7443"} {
		got, err := localAddr(in)
		if err != nil || got != want {
			t.Errorf("localAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := localAddr("7443"); err == nil {
		t.Error("localAddr accepted an address without a port")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := checkHealth(ctx, "127.0.0.1:1", insecure.NewCredentials()); err == nil {
		t.Error("health check of a closed port succeeded")
	}
}

// The key file is reloaded when it changes, without a signal: `authd apikey add`
// under `go run ./cmd/authd` takes effect on the next tick.
func TestFileWatchSeesRewrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "api-keys.json")
	w := newFileWatch(path)
	if w.changed() {
		t.Fatal("a missing file counted as a change")
	}
	if err := os.WriteFile(path, []byte(`{"keys":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if !w.changed() {
		t.Fatal("a created file was not seen")
	}
	if w.changed() {
		t.Fatal("an unchanged file counted as a change")
	}
	if err := os.WriteFile(path, []byte(`{"keys":[{"id":"k"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if !w.changed() {
		t.Fatal("a rewritten file was not seen")
	}
	// The loop calls reload for a change on a tick, and stops with its context.
	tick := make(chan time.Time)
	reloaded := make(chan struct{}, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { watchFile(ctx, path, tick, func() { reloaded <- struct{}{} }); close(done) }()
	tick <- time.Now()
	if err := os.WriteFile(path, []byte(`{"keys":[{"id":"k"},{"id":"l"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for len(reloaded) == 0 {
		tick <- time.Now()
	}
	cancel()
	<-done
}
