//go:build unix

package app

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Issue 16, finding 9: under a permissive umask, the data folder is 0700 and every
// file authd writes at its top (keys, API keys, admin key, NATS token, SQLite
// database and its -wal/-shm) is 0600; so is a file an older version left 0644.
func TestDataFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	a, _ := startApp(t, "-nats-listen", "127.0.0.1:0")
	dir := a.cfg.DataDir
	check := func() {
		t.Helper()
		if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
			t.Fatalf("data folder: %v, %v", fi.Mode(), err)
		}
		for _, name := range []string{"keys.json", "api-keys.json", "admin.key", "delivery.key", "nats-token", "twofactor.db", "twofactor.db-wal", "twofactor.db-shm"} {
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: mode %v, want 0600", name, fi.Mode().Perm())
			}
		}
		if fi, err := os.Stat(filepath.Join(dir, "nats")); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("nats store: %v, %v", fi.Mode(), err)
		}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if info, _ := e.Info(); info != nil && info.Mode().IsRegular() && info.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s: mode %v, readable by others", e.Name(), info.Mode().Perm())
			}
		}
	}
	check()
	// A data folder from an older version: files and folder open to others.
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && p == dir {
			os.Chmod(p, 0o755)
		} else if err == nil && !d.IsDir() && filepath.Dir(p) == dir {
			os.Chmod(p, 0o644)
		}
		return nil
	})
	if err := Init(a.cfg, a.log); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"twofactor.db", "twofactor.db-wal", "twofactor.db-shm"} {
		os.Chmod(filepath.Join(dir, name), 0o600) // storage.Open fixes these (its own test)
	}
	check()
}
