package storage

import (
	"context"
	"errors"
	"strings"
	"time"

	"gorm.io/gorm/clause"
)

// ErrDuplicate is returned when a row would repeat a value that must be unique (a
// WebAuthn credential id already registered, to this user or another).
var ErrDuplicate = errors.New("already exists")

// WebAuthnUser maps a backend user id to the WebAuthn user handle its credentials
// carry. The handle is random (WebAuthn Level 3 §14.6.1 recommends 64 random bytes
// and forbids personally identifying information), so an authenticator or a
// relying-party-side leak of the handle reveals nothing about the backend id.
type WebAuthnUser struct {
	UserID    string `gorm:"primaryKey;size:255"`
	Handle    []byte `gorm:"not null;uniqueIndex"`
	CreatedAt time.Time
}

// TableName keeps the table name readable ("webauthn_users", not "web_authn_users").
func (WebAuthnUser) TableName() string { return "webauthn_users" }

// EnsureWebAuthnUser returns the user's WebAuthn user handle, storing candidate as
// that handle first if the user has none. Of replicas racing for the same user,
// the first insert wins and every caller gets the stored handle.
func (s *Store) EnsureWebAuthnUser(ctx context.Context, userID string, candidate []byte, now time.Time) ([]byte, error) {
	row := WebAuthnUser{UserID: userID, Handle: candidate, CreatedAt: now}
	if err := s.DB(ctx).Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "user_id"}}, DoNothing: true}).Create(&row).Error; err != nil {
		return nil, err
	}
	var got WebAuthnUser
	if err := s.DB(ctx).Where("user_id = ?", userID).Take(&got).Error; err != nil {
		return nil, notFound(err)
	}
	return got.Handle, nil
}

// ActivateFactorWithData turns a pending factor active and stores its final provider
// data and credential id in the same conditional UPDATE: only one caller wins, and
// it reports false when the factor was not pending. A credential id that another
// factor already holds gives ErrDuplicate.
func (s *Store) ActivateFactorWithData(ctx context.Context, userID, id string, now time.Time, data, credentialID []byte) (bool, error) {
	res := s.DB(ctx).Model(&Factor{}).
		Where("id = ? AND user_id = ? AND state = ?", id, userID, FactorPending).
		Updates(map[string]any{
			"state": FactorActive, "expires_at": nil, "updated_at": now, "attempts": 0,
			"data": data, "credential_id": credentialID,
		})
	if IsDuplicate(res.Error) {
		return false, ErrDuplicate
	}
	return res.RowsAffected == 1, res.Error
}

// SwapFactorData replaces an active factor's provider data only if it still holds
// old (compare-and-set), and records a use when used is true. It reports whether
// this caller won; of concurrent callers that read the same data, exactly one does.
func (s *Store) SwapFactorData(ctx context.Context, factorID string, old, data []byte, now time.Time, used bool) (bool, error) {
	updates := map[string]any{"data": data, "updated_at": now}
	if used {
		updates["last_used_at"] = now
	}
	res := s.DB(ctx).Model(&Factor{}).
		Where("id = ? AND state = ? AND data = ?", factorID, FactorActive, old).
		Updates(updates)
	return res.RowsAffected == 1, res.Error
}

// IsDuplicate tells whether err is a unique-constraint violation of SQLite or
// PostgreSQL (SQLSTATE 23505).
func IsDuplicate(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrDuplicate) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "UNIQUE constraint failed") || strings.Contains(msg, "SQLSTATE 23505")
}
