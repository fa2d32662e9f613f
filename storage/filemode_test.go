//go:build unix

package storage_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/twofactor/twofactor/storage"
)

// Issue 16, finding 9: the SQLite database and its -wal and -shm files are 0600 even
// under a permissive umask, and a database left 0644 by an older version is fixed.
func TestSQLiteFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "twofactor.db")
	ctx := context.Background()
	st, err := storage.Open(ctx, "sqlite://"+path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	checkModes(t, path)
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("database folder: %v, %v", fi.Mode(), err)
	}
	st.Close()

	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		os.Chmod(p, 0o644) // as an older version left them
	}
	st, err = storage.Open(ctx, "sqlite://"+path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	checkModes(t, path)
}

func checkModes(t *testing.T, path string) {
	t.Helper()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", filepath.Base(p), fi.Mode().Perm())
		}
	}
}
