package app

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParsePrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "authd.yaml")
	os.WriteFile(file, []byte("listen: 127.0.0.1:1111\nmax-attempts: 7\ntotp-issuer: FromFile\nchallenge-ttl: 2m\n"), 0o600)
	env := map[string]string{
		"TWOFACTOR_CONFIG":       file,
		"TWOFACTOR_MAX_ATTEMPTS": "8",
		"TWOFACTOR_TOTP_ISSUER":  "FromEnv",
	}
	cfg, err := Parse("authd", []string{"-totp-issuer", "FromFlag", "-data-dir", dir}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TOTPIssuer != "FromFlag" || cfg.MaxAttempts != 8 || cfg.Listen != "127.0.0.1:1111" || cfg.ChallengeTTL != 2*time.Minute {
		t.Fatalf("flag > env > file > default broken: %+v", cfg)
	}
	if cfg.DatabaseURL != "sqlite://"+filepath.Join(dir, "twofactor.db") || cfg.KeyFile != filepath.Join(dir, "keys.json") {
		t.Fatalf("derived paths: %q, %q", cfg.DatabaseURL, cfg.KeyFile)
	}
	if !cfg.Embedded() {
		t.Fatal("no NATS URL must mean embedded")
	}
	if cfg.VAPIDSubscriber != DefaultEmbeddedVAPIDSubscriber {
		t.Fatalf("embedded vapid-subscriber %q, want the default %q", cfg.VAPIDSubscriber, DefaultEmbeddedVAPIDSubscriber)
	}
	ext, err := Parse("authd", []string{"-data-dir", dir, "-nats-url", "nats://127.0.0.1:1", "-database-url", "postgres://x@127.0.0.1/x"}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if ext.VAPIDSubscriber != "" {
		t.Fatalf("external NATS: vapid-subscriber %q, want none (notifyd has its own)", ext.VAPIDSubscriber)
	}
}

func TestParseRefusesBadSettings(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "bad.yaml")
	os.WriteFile(file, []byte("lisen: 127.0.0.1:1\n"), 0o600)
	none := func(string) string { return "" }
	for name, tc := range map[string]struct {
		args []string
		env  map[string]string
		want string
	}{
		"unknown file key":      {[]string{"-config", file}, nil, `unknown setting "lisen"`},
		"bad env value":         {nil, map[string]string{"TWOFACTOR_MAX_ATTEMPTS": "many"}, "TWOFACTOR_MAX_ATTEMPTS"},
		"tls half":              {[]string{"-tls-cert", "c.pem"}, nil, "tls-cert and tls-key"},
		"mtls without tls":      {[]string{"-tls-client-ca", "ca.pem"}, nil, "tls-client-ca"},
		"attempts out of range": {[]string{"-max-attempts", "0"}, nil, "max-attempts"},
		"offline without file":  {[]string{"-breached-mode", "offline"}, nil, "breached-file"},
		"stray argument":        {[]string{"serve"}, nil, `unexpected argument "serve"`},
	} {
		getenv := none
		if tc.env != nil {
			getenv = func(k string) string { return tc.env[k] }
		}
		_, err := Parse("authd", tc.args, getenv)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", name, err, tc.want)
		}
	}
}

// A replica that cannot listen fails with an error, closing what it opened.
func TestNewFailsCleanlyWhenTheAddressIsTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := t.TempDir()
	cfg, err := Parse("authd", []string{"-data-dir", dir, "-listen", taken.Addr().String(), "-metrics-listen", "", "-breached-mode", "off"}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || a != nil || !strings.Contains(err.Error(), "listen on") {
		t.Fatalf("New = %v, %v; want a listen error", a, err)
	}
	// The embedded NATS store and the database were released: a second try works.
	cfg.Listen = "127.0.0.1:0"
	a, err = New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("second New after a failed one: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	a.Serve(ctx)
}
