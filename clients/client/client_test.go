package client

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDialRefusesAPIKeyInPlaintextOffLoopback(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:7443":       true,
		"localhost:7443":       true,
		"[::1]:7443":           true,
		"10.0.0.5:7443":        false,
		"auth.example.com:443": false,
	} {
		c, err := Dial(Options{Addr: addr, APIKey: "tfk_x_y"})
		if ok != (err == nil) {
			t.Errorf("%s: err = %v", addr, err)
		}
		if err != nil && !strings.Contains(err.Error(), "TLS") {
			t.Errorf("%s: the error does not say to enable TLS: %v", addr, err)
		}
		if c != nil {
			c.Close()
		}
	}
	// With TLS the key may go anywhere.
	c, err := Dial(Options{Addr: "auth.example.com:443", APIKey: "tfk_x_y", TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestFindAPIKey(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "admin.key"), []byte("tfk_from_data\n"), 0o600)
	other := filepath.Join(dir, "other.key")
	os.WriteFile(other, []byte("  tfk_from_file  \nsecond line\n"), 0o600)

	t.Setenv("TWOFACTOR_API_KEY", "")
	if k, err := FindAPIKey("", dir); err != nil || k != "tfk_from_data" {
		t.Fatalf("data dir: %q, %v", k, err)
	}
	if k, err := FindAPIKey(other, dir); err != nil || k != "tfk_from_file" {
		t.Fatalf("key file: %q, %v", k, err)
	}
	t.Setenv("TWOFACTOR_API_KEY", "tfk_from_env")
	if k, _ := FindAPIKey(other, dir); k != "tfk_from_env" {
		t.Fatalf("the environment must win: %q", k)
	}
	t.Setenv("TWOFACTOR_API_KEY", "")
	if _, err := FindAPIKey("", t.TempDir()); err == nil || !strings.Contains(err.Error(), "TWOFACTOR_API_KEY") {
		t.Fatalf("no key anywhere: %v", err)
	}
}
