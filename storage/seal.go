package storage

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"sort"
	"sync"
)

// ErrUnseal is returned when a sealed value does not open: wrong key, tampered
// ciphertext, or associated data of another row.
var ErrUnseal = errors.New("sealed value does not open")

// KeyRing seals secrets at rest with AES-256-GCM and keys the hashes of codes and
// passwords with HMAC-SHA-256. Keys are loaded once; an AEAD is built per key at
// load time, never per call.
type KeyRing struct {
	active string
	aeads  map[string]cipher.AEAD
	mac    []byte
	// macs holds keyed HMAC states: Reset returns one to its keyed start, so a
	// MAC costs neither the key schedule nor the allocations of hmac.New.
	macs sync.Pool
}

// keyFile is the on-disk form: {"active":"k2","keys":{"k1":"…","k2":"…"},"mac_key":"…"},
// each key 32 bytes in standard base64.
type keyFile struct {
	Active string            `json:"active"`
	Keys   map[string]string `json:"keys"`
	MACKey string            `json:"mac_key"`
}

// NewKeyRing builds a key ring from raw 32-byte keys. active names the key new
// seals use; macKey keys the code and password hashes.
func NewKeyRing(active string, keys map[string][]byte, macKey []byte) (*KeyRing, error) {
	if _, ok := keys[active]; !ok {
		return nil, fmt.Errorf("key ring: active key %q is not in the ring", active)
	}
	if len(macKey) < 32 {
		return nil, errors.New("key ring: mac_key must be at least 32 bytes")
	}
	k := &KeyRing{active: active, aeads: make(map[string]cipher.AEAD, len(keys)), mac: append([]byte(nil), macKey...)}
	k.macs.New = func() any { return hmac.New(sha256.New, k.mac) }
	for id, key := range keys {
		if id == "" || len(id) > 32 {
			return nil, fmt.Errorf("key ring: key id %q must be 1 to 32 characters", id)
		}
		if len(key) != 32 {
			return nil, fmt.Errorf("key ring: key %q must be 32 bytes (AES-256), got %d", id, len(key))
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

// LoadKeyRing reads a key file.
func LoadKeyRing(path string) (*KeyRing, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	var f keyFile
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	keys := make(map[string][]byte, len(f.Keys))
	for id, b64 := range f.Keys {
		key, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, fmt.Errorf("key file %s: key %q is not base64", path, id)
		}
		keys[id] = key
	}
	mac, err := base64.StdEncoding.DecodeString(f.MACKey)
	if err != nil {
		return nil, fmt.Errorf("key file %s: mac_key is not base64", path)
	}
	return NewKeyRing(f.Active, keys, mac)
}

// EnsureKeyFile creates a key file with a fresh key (mode 0600) unless one exists.
// It reports whether it created one.
func EnsureKeyFile(path string) (bool, error) {
	if _, err := os.Stat(path); err == nil {
		return false, nil
	}
	f := keyFile{Active: "k1", Keys: map[string]string{"k1": randomB64(32)}, MACKey: randomB64(32)}
	raw, _ := json.MarshalIndent(f, "", "  ")
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if os.IsExist(err) {
			return false, nil
		}
		return false, fmt.Errorf("create key file: %w", err)
	}
	defer fh.Close()
	if _, err := fh.Write(append(raw, '\n')); err != nil {
		return false, err
	}
	return true, fh.Sync()
}

// RotateKeyFile adds a fresh key to a key file and makes it the active one. Rows
// sealed with older keys still open; Reseal moves them to the new key.
func RotateKeyFile(path string) (newID string, err error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var f keyFile
	if err := json.Unmarshal(raw, &f); err != nil {
		return "", fmt.Errorf("key file %s: %w", path, err)
	}
	for i := len(f.Keys) + 1; ; i++ {
		newID = fmt.Sprintf("k%d", i)
		if _, taken := f.Keys[newID]; !taken {
			break
		}
	}
	f.Keys[newID] = randomB64(32)
	f.Active = newID
	out, _ := json.MarshalIndent(f, "", "  ")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(out, '\n'), 0o600); err != nil {
		return "", err
	}
	return newID, os.Rename(tmp, path)
}

func randomB64(n int) string {
	b := make([]byte, n)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return base64.StdEncoding.EncodeToString(b)
}

// ActiveKeyID names the key new seals use.
func (k *KeyRing) ActiveKeyID() string { return k.active }

// KeyIDs lists the ids in the ring, sorted.
func (k *KeyRing) KeyIDs() []string {
	ids := make([]string, 0, len(k.aeads))
	for id := range k.aeads {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Seal encrypts plaintext with the active key. The result is nonce‖ciphertext‖tag;
// aad must be given again to Open.
func (k *KeyRing) Seal(plaintext, aad []byte) (keyID string, sealed []byte, err error) {
	aead := k.aeads[k.active]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := io.ReadFull(rand.Reader, nonce); err != nil {
		return "", nil, fmt.Errorf("seal: %w", err)
	}
	return k.active, aead.Seal(nonce, nonce, plaintext, aad), nil
}

// Open decrypts what Seal returned under keyID with the same aad.
func (k *KeyRing) Open(keyID string, sealed, aad []byte) ([]byte, error) {
	aead, ok := k.aeads[keyID]
	if !ok {
		return nil, fmt.Errorf("%w: key %q is not in the key ring", ErrUnseal, keyID)
	}
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, ErrUnseal
	}
	n := aead.NonceSize()
	pt, err := aead.Open(nil, sealed[:n], sealed[n:], aad)
	if err != nil {
		return nil, ErrUnseal
	}
	return pt, nil
}

// SealAAD is the associated data that binds a sealed value to its table, user and row.
func SealAAD(table, userID, rowID string) []byte {
	return []byte("twofactor/v1\x00" + table + "\x00" + userID + "\x00" + rowID)
}

// MAC returns HMAC-SHA-256 over purpose and data with the ring's MAC key. purpose
// separates domains (a backup code hash never equals an app password hash).
func (k *KeyRing) MAC(purpose string, data ...[]byte) []byte {
	m := k.macs.Get().(hash.Hash)
	io.WriteString(m, purpose)
	m.Write([]byte{0})
	for _, d := range data {
		m.Write(d)
	}
	sum := m.Sum(make([]byte, 0, sha256.Size))
	m.Reset()
	k.macs.Put(m)
	return sum
}

// EqualMAC compares two MACs in constant time.
func EqualMAC(a, b []byte) bool { return hmac.Equal(a, b) }
