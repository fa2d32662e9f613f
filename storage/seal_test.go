package storage_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/twofactor/twofactor/storage"
)

func TestSealOpenBindsAssociatedData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	if created, err := storage.EnsureKeyFile(path); err != nil || !created {
		t.Fatalf("EnsureKeyFile = %v, %v", created, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	if created, _ := storage.EnsureKeyFile(path); created {
		t.Fatal("EnsureKeyFile overwrote an existing key file")
	}
	ring, err := storage.LoadKeyRing(path)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("12345678901234567890")
	aad := storage.SealAAD("factors", "alice", "f1")
	id, sealed, err := ring.Seal(secret, aad)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, secret) {
		t.Fatal("sealed value contains the plaintext")
	}
	got, err := ring.Open(id, sealed, aad)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	for name, aad := range map[string][]byte{
		"other user": storage.SealAAD("factors", "mallory", "f1"),
		"other row":  storage.SealAAD("factors", "alice", "f2"),
	} {
		if _, err := ring.Open(id, sealed, aad); !errors.Is(err, storage.ErrUnseal) {
			t.Errorf("%s: Open err = %v, want ErrUnseal", name, err)
		}
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := ring.Open(id, sealed, aad); !errors.Is(err, storage.ErrUnseal) {
		t.Errorf("tampered: Open err = %v, want ErrUnseal", err)
	}
}

func TestRotateKeepsOldKeysOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	if _, err := storage.EnsureKeyFile(path); err != nil {
		t.Fatal(err)
	}
	old, _ := storage.LoadKeyRing(path)
	aad := []byte("x")
	oldID, sealed, _ := old.Seal([]byte("seed"), aad)
	newID, err := storage.RotateKeyFile(path)
	if err != nil || newID == oldID {
		t.Fatalf("RotateKeyFile = %q, %v", newID, err)
	}
	ring, err := storage.LoadKeyRing(path)
	if err != nil {
		t.Fatal(err)
	}
	if ring.ActiveKeyID() != newID {
		t.Fatalf("active = %q, want %q", ring.ActiveKeyID(), newID)
	}
	if got, err := ring.Open(oldID, sealed, aad); err != nil || string(got) != "seed" {
		t.Fatalf("old seal after rotation: %q, %v", got, err)
	}
	if !bytes.Equal(ring.MAC("p", []byte("a")), old.MAC("p", []byte("a"))) {
		t.Fatal("rotation changed the MAC key: stored hashes would stop matching")
	}
}

func TestNewKeyRingRejectsBadKeys(t *testing.T) {
	k := bytes.Repeat([]byte{1}, 32)
	cases := map[string]struct {
		active string
		keys   map[string][]byte
		mac    []byte
	}{
		"active missing": {"k2", map[string][]byte{"k1": k}, k},
		"short key":      {"k1", map[string][]byte{"k1": k[:16]}, k},
		"short mac":      {"k1", map[string][]byte{"k1": k}, k[:8]},
	}
	for name, c := range cases {
		if _, err := storage.NewKeyRing(c.active, c.keys, c.mac); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
