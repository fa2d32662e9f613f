package notify

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
)

// DefaultDeliveryKeyFile is the delivery key's file name in the data folder.
const DefaultDeliveryKeyFile = "delivery.key"

// ErrUnsealPayload is returned when a sealed payload does not open: another delivery key,
// a tampered blob, or a blob moved to another channel, challenge or user.
var ErrUnsealPayload = errors.New("notify: sealed payload does not open")

// DeliveryKey seals the secret part of the payloads authd hands to notifyd (codes,
// destinations, Telegram binding tokens) with AES-256-GCM, so that NATS servers and
// JetStream files hold no usable secret. The two processes share the key file; it holds
// several keys by id so that it can be rotated: seal with the newest, open with any.
type DeliveryKey struct {
	current string
	aeads   map[string]cipher.AEAD
}

// deliveryKeyFile is the on-disk form:
// {"current":"d2","keys":{"d1":"…","d2":"…"}}, each key 32 bytes in standard base64.
type deliveryKeyFile struct {
	Current string            `json:"current"`
	Keys    map[string]string `json:"keys"`
}

// NewDeliveryKey builds a delivery key from raw 32-byte keys; current names the key new
// seals use. Key ids are 1 to 16 characters of [A-Za-z0-9_-].
func NewDeliveryKey(current string, keys map[string][]byte) (*DeliveryKey, error) {
	if _, ok := keys[current]; !ok {
		return nil, fmt.Errorf("notify: delivery key: current key %q is not in the file", current)
	}
	k := &DeliveryKey{current: current, aeads: make(map[string]cipher.AEAD, len(keys))}
	for id, key := range keys {
		if err := validToken("delivery key id", id); err != nil || len(id) > 16 {
			return nil, fmt.Errorf("notify: delivery key id %q: want 1 to 16 characters of [A-Za-z0-9_-]", id)
		}
		if len(key) != 32 {
			return nil, fmt.Errorf("notify: delivery key %q: want 32 bytes (AES-256), got %d", id, len(key))
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		k.aeads[id] = aead
	}
	return k, nil
}

// GenerateDeliveryKey returns a delivery key with one fresh random key (id "d1"), for
// tests and in-memory use; EnsureDeliveryKeyFile writes one to disk.
func GenerateDeliveryKey() (*DeliveryKey, error) {
	k, err := NewDeliveryKey("d1", map[string][]byte{"d1": randomKey()})
	return k, err
}

// LoadDeliveryKey reads a delivery key file. A file readable by group or others is
// refused: whoever reads it can read every code in flight.
func LoadDeliveryKey(path string) (*DeliveryKey, error) {
	f, err := readDeliveryKeyFile(path)
	if err != nil {
		return nil, err
	}
	keys := make(map[string][]byte, len(f.Keys))
	for id, b64 := range f.Keys {
		key, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, fmt.Errorf("notify: delivery key file %s: key %q is not base64", path, id)
		}
		keys[id] = key
	}
	k, err := NewDeliveryKey(f.Current, keys)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return k, nil
}

func readDeliveryKeyFile(path string) (deliveryKeyFile, error) {
	var f deliveryKeyFile
	st, err := os.Stat(path)
	if err != nil {
		return f, fmt.Errorf("notify: delivery key file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return f, fmt.Errorf("notify: delivery key file %s has mode %v: want no access for group and others (chmod 600)", path, st.Mode().Perm())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return f, fmt.Errorf("notify: delivery key file: %w", err)
	}
	if len(raw) > 64<<10 {
		return f, fmt.Errorf("notify: delivery key file %s: larger than 64 KiB", path)
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		// The JSON error may quote key bytes.
		return f, fmt.Errorf("notify: delivery key file %s is not valid JSON", path)
	}
	return f, nil
}

// EnsureDeliveryKeyFile creates a delivery key file with one fresh key (mode 0600, its
// folder 0700 if it has to be created) unless the file exists. It reports whether it
// created one. authd calls it on first start in embedded mode and in `authd init`.
func EnsureDeliveryKeyFile(path string) (bool, error) {
	if _, err := os.Stat(path); err == nil {
		return false, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return false, fmt.Errorf("notify: delivery key folder: %w", err)
	}
	f := deliveryKeyFile{Current: "d1", Keys: map[string]string{"d1": base64.StdEncoding.EncodeToString(randomKey())}}
	raw, _ := json.MarshalIndent(f, "", "  ")
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if os.IsExist(err) {
			return false, nil // another process won the race
		}
		return false, fmt.Errorf("notify: create delivery key file: %w", err)
	}
	defer fh.Close()
	if _, err := fh.Write(append(raw, '\n')); err != nil {
		return false, fmt.Errorf("notify: write delivery key file: %w", err)
	}
	return true, fh.Sync()
}

// RotateDeliveryKeyFile adds a fresh key to the file and makes it current; older keys
// stay so that messages sealed before the rotation still open. Restart (or reload) every
// notifyd before authd so that no payload is sealed under a key a worker lacks; remove
// an old key once the gateway stream's max age has passed since the rotation.
func RotateDeliveryKeyFile(path string) (newID string, err error) {
	f, err := readDeliveryKeyFile(path)
	if err != nil {
		return "", err
	}
	if f.Keys == nil {
		f.Keys = map[string]string{}
	}
	for i := len(f.Keys) + 1; ; i++ {
		newID = "d" + strconv.Itoa(i)
		if _, taken := f.Keys[newID]; !taken {
			break
		}
	}
	f.Keys[newID] = base64.StdEncoding.EncodeToString(randomKey())
	f.Current = newID
	out, _ := json.MarshalIndent(f, "", "  ")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(out, '\n'), 0o600); err != nil {
		return "", err
	}
	return newID, os.Rename(tmp, path)
}

func randomKey() []byte {
	b := make([]byte, 32)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return b
}

// CurrentKeyID names the key new seals use.
func (k *DeliveryKey) CurrentKeyID() string { return k.current }

// KeyIDs lists the key ids, sorted.
func (k *DeliveryKey) KeyIDs() []string {
	ids := make([]string, 0, len(k.aeads))
	for id := range k.aeads {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Seal encrypts plaintext under the current key and returns its id and
// nonce‖ciphertext‖tag; the same aad must be given to Open.
func (k *DeliveryKey) Seal(plaintext, aad []byte) (keyID string, sealed []byte, err error) {
	aead := k.aeads[k.current]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := io.ReadFull(rand.Reader, nonce); err != nil {
		return "", nil, fmt.Errorf("notify: seal: %w", err)
	}
	return k.current, aead.Seal(nonce, nonce, plaintext, aad), nil
}

// Open decrypts what Seal returned under keyID with the same aad. Every failure is
// ErrUnsealPayload (wrapped with the key id when the key is unknown).
func (k *DeliveryKey) Open(keyID string, sealed, aad []byte) ([]byte, error) {
	aead, ok := k.aeads[keyID]
	if !ok {
		return nil, fmt.Errorf("%w: delivery key %q is not in the key file", ErrUnsealPayload, keyID)
	}
	n := aead.NonceSize()
	if len(sealed) < n+aead.Overhead() {
		return nil, ErrUnsealPayload
	}
	pt, err := aead.Open(nil, sealed[:n], sealed[n:], aad)
	if err != nil {
		return nil, ErrUnsealPayload
	}
	return pt, nil
}
