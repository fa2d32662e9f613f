package webpush

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// DefaultVAPIDKeyFile is the VAPID key pair's file name in the data folder.
const DefaultVAPIDKeyFile = "vapid.json"

// vapidFile is the on-disk form: {"public_key":"…","private_key":"…"}, base64url.
type vapidFile struct {
	PublicKey  string `json:"public_key"`
	PrivateKey string `json:"private_key"`
}

// EnsureVAPIDKeyFile writes a fresh VAPID key pair to path (mode 0600, its folder
// 0700) unless the file exists; created reports whether it wrote one. `authd init`
// calls it, so authd and notifyd share the pair through the data folder.
func EnsureVAPIDKeyFile(path string) (created bool, err error) {
	if _, err := os.Stat(path); err == nil {
		return false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("vapid key file: %w", err)
	}
	priv, pub, err := GenerateVAPIDKeys()
	if err != nil {
		return false, err
	}
	b, err := json.Marshal(vapidFile{PublicKey: pub, PrivateKey: priv})
	if err != nil {
		return false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return false, fmt.Errorf("vapid key file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return false, nil // another process wrote it first
	}
	if err != nil {
		return false, fmt.Errorf("vapid key file: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return false, fmt.Errorf("vapid key file: %w", err)
	}
	return true, f.Close()
}

// LoadVAPIDKeyFile reads the key pair EnsureVAPIDKeyFile wrote. A file readable by
// group or others is refused: whoever holds the private key can push to every
// subscribed device (as the operator) until the subscriptions are renewed.
func LoadVAPIDKeyFile(path string) (privateKey, publicKey string, err error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", "", fmt.Errorf("vapid key file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", "", fmt.Errorf("vapid key file %s: mode %o, want 0600", path, st.Mode().Perm())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", "", fmt.Errorf("vapid key file: %w", err)
	}
	if privateKey, publicKey, err = ParseVAPIDKeys(raw); err != nil {
		return "", "", fmt.Errorf("vapid key file %s: %w", path, err)
	}
	return privateKey, publicKey, nil
}

// ParseVAPIDKeys reads the key file's JSON and checks that the keys are a P-256
// pair (as New does), so a damaged file fails at start, not at the first push.
func ParseVAPIDKeys(raw []byte) (privateKey, publicKey string, err error) {
	var f vapidFile
	if len(raw) > 4096 || json.Unmarshal(raw, &f) != nil || f.PublicKey == "" || f.PrivateKey == "" {
		return "", "", errors.New(`want {"public_key":…,"private_key":…}`)
	}
	if _, err := New(Config{VAPIDPublicKey: f.PublicKey, VAPIDPrivateKey: f.PrivateKey, Subscriber: "check"}); err != nil {
		return "", "", err
	}
	return f.PrivateKey, f.PublicKey, nil
}
