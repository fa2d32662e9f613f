package server

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"
)

// Roles a caller can hold.
const (
	RoleLogin       = "login"
	RoleSelfService = "selfservice"
	RoleAdmin       = "admin"
)

var allRoles = []string{RoleLogin, RoleSelfService, RoleAdmin}

// APIKeyEntry is one caller's key as configured: never the key, only its digest.
type APIKeyEntry struct {
	ID     string   `json:"id"`
	Name   string   `json:"name"`
	Roles  []string `json:"roles"`
	SHA256 string   `json:"sha256"`
}

// APIKeyFile is the on-disk form of the configured keys.
type APIKeyFile struct {
	Keys []APIKeyEntry `json:"keys"`
}

var keyEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewAPIKey makes a random key (tfk_<id>_<secret>, 160 bits of secret) and the
// entry to configure for it.
func NewAPIKey(name string, roles []string) (token string, entry APIKeyEntry, err error) {
	for _, r := range roles {
		if !slices.Contains(allRoles, r) {
			return "", entry, fmt.Errorf("role %q: want one of %s", r, strings.Join(allRoles, ", "))
		}
	}
	if len(roles) == 0 {
		return "", entry, errors.New("an API key needs at least one role")
	}
	idb := make([]byte, 5)
	sec := make([]byte, 20)
	if _, err := rand.Read(idb); err != nil {
		return "", entry, err
	}
	if _, err := rand.Read(sec); err != nil {
		return "", entry, err
	}
	id := strings.ToLower(keyEncoding.EncodeToString(idb))
	token = "tfk_" + id + "_" + strings.ToLower(keyEncoding.EncodeToString(sec))
	sum := sha256.Sum256([]byte(token))
	return token, APIKeyEntry{ID: id, Name: name, Roles: slices.Clone(roles), SHA256: hex.EncodeToString(sum[:])}, nil
}

// LoadAPIKeyFile reads a key file.
func LoadAPIKeyFile(path string) (APIKeyFile, error) {
	var f APIKeyFile
	raw, err := os.ReadFile(path)
	if err != nil {
		return f, fmt.Errorf("read API key file: %w", err)
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return f, fmt.Errorf("API key file %s: %w", path, err)
	}
	return f, nil
}

// AppendAPIKey adds an entry to a key file (created with mode 0600 if missing).
func AppendAPIKey(path string, e APIKeyEntry) error {
	f, err := LoadAPIKeyFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	f.Keys = append(f.Keys, e)
	raw, _ := json.MarshalIndent(f, "", "  ")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(raw, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// principal is an authenticated caller.
type principal struct {
	KeyID string
	Name  string
	Roles []string
}

func (p *principal) has(role string) bool { return slices.Contains(p.Roles, role) }

// APIKeys checks presented keys against the configured digests. It can be
// replaced atomically (on SIGHUP) while serving.
type APIKeys struct {
	byID atomic.Pointer[map[string]APIKeyEntry]
}

// NewAPIKeys validates entries and returns a checker.
func NewAPIKeys(entries []APIKeyEntry) (*APIKeys, error) {
	k := &APIKeys{}
	return k, k.Replace(entries)
}

// Replace swaps the configured keys.
func (k *APIKeys) Replace(entries []APIKeyEntry) error {
	m := make(map[string]APIKeyEntry, len(entries))
	for i, e := range entries {
		if e.ID == "" {
			return fmt.Errorf("API key %d: id is empty", i)
		}
		if d, err := hex.DecodeString(e.SHA256); err != nil || len(d) != sha256.Size {
			return fmt.Errorf("API key %q: sha256 must be 64 hex characters", e.ID)
		}
		for _, r := range e.Roles {
			if !slices.Contains(allRoles, r) {
				return fmt.Errorf("API key %q: unknown role %q", e.ID, r)
			}
		}
		if _, dup := m[e.ID]; dup {
			return fmt.Errorf("API key %q: configured twice", e.ID)
		}
		m[e.ID] = e
	}
	k.byID.Store(&m)
	return nil
}

// check returns the principal for a presented token, or nil.
func (k *APIKeys) check(token string) *principal {
	rest, ok := strings.CutPrefix(token, "tfk_")
	if !ok || len(token) > 128 {
		return nil
	}
	id, _, ok := strings.Cut(rest, "_")
	if !ok {
		return nil
	}
	e, ok := (*k.byID.Load())[id]
	if !ok {
		return nil
	}
	want, _ := hex.DecodeString(e.SHA256)
	got := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(want, got[:]) != 1 {
		return nil
	}
	return &principal{KeyID: e.ID, Name: e.Name, Roles: e.Roles}
}
