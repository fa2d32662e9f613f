package notify

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
)

// TokenFileName is the file in authd's data folder holding the embedded NATS server's
// client token (mode 0600). authctl and any other local client (a delivery worker)
// read it from there: TokenOption(filepath.Join(dataDir, TokenFileName)).
const TokenFileName = "nats-token"

// EnsureTokenFile returns the token stored at path, first creating the file (mode
// 0600, never overwriting) with 256 random bits when it does not exist.
func EnsureTokenFile(path string) (string, error) {
	if tok, err := ReadTokenFile(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return tok, err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	tok := base64.RawURLEncoding.EncodeToString(b)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return ReadTokenFile(path) // another process created it first
	}
	if err != nil {
		return "", fmt.Errorf("notify: NATS token file: %w", err)
	}
	if _, err := f.WriteString(tok + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("notify: NATS token file: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("notify: NATS token file: %w", err)
	}
	return tok, nil
}

// ReadTokenFile reads a token written by EnsureTokenFile.
func ReadTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("notify: NATS token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 32 || strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("notify: NATS token file %s: not a token", path)
	}
	return tok, nil
}

// TokenOption is the nats.go option presenting the token stored at path.
func TokenOption(path string) (nats.Option, error) {
	tok, err := ReadTokenFile(path)
	if err != nil {
		return nil, err
	}
	return nats.Token(tok), nil
}
