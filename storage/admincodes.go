package storage

import (
	"context"
	"database/sql"
	"time"

	"gorm.io/gorm/clause"
)

// AdminCode is the one-time code an admin issued for a locked-out user: at most one
// per user, a newer one replacing the older. Only a keyed hash of the code is kept
// (KeyRing.MAC over the user id and the normalised code).
type AdminCode struct {
	UserID    string    `gorm:"primaryKey;size:255"`
	Hash      []byte    `gorm:"not null"`
	IssuedBy  string    `gorm:"size:255;not null"`
	IssuedAt  time.Time `gorm:"not null"`
	ExpiresAt time.Time `gorm:"not null"`
	UsedAt    *time.Time
}

// PutAdminCode stores c as the user's admin code, replacing any older one (used or
// not) in one statement.
func (s *Store) PutAdminCode(ctx context.Context, c *AdminCode) error {
	c.UsedAt = nil
	return s.DB(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "user_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"hash", "issued_by", "issued_at", "expires_at", "used_at"}),
	}).Create(c).Error
}

// GetAdminCode loads a user's admin code (used or not), or ErrNotFound.
func (s *Store) GetAdminCode(ctx context.Context, userID string) (*AdminCode, error) {
	// On the login path: one prepared statement (hot.go), not gorm's builder.
	return queryOne(ctx, s, scanAdminCode, "SELECT user_id, hash, issued_by, issued_at, expires_at, used_at FROM admin_codes WHERE user_id = ?", userID)
}

func scanAdminCode(r hotRow) (AdminCode, error) {
	var c AdminCode
	var used sql.NullTime
	err := r.Scan(&c.UserID, &c.Hash, &c.IssuedBy, &c.IssuedAt, &c.ExpiresAt, &used)
	if used.Valid {
		c.UsedAt = &used.Time
	}
	return c, err
}

// UseAdminCode consumes the user's admin code whose hash is hash, if it is unused
// and unexpired at now. It reports whether this caller won: of concurrent callers
// exactly one does, and a code replaced meanwhile (another hash) is not consumed.
func (s *Store) UseAdminCode(ctx context.Context, userID string, hash []byte, now time.Time) (bool, error) {
	n, err := s.hotExec(ctx, "UPDATE admin_codes SET used_at = ? WHERE user_id = ? AND hash = ? AND used_at IS NULL AND expires_at > ?", now, userID, hash, now)
	return n == 1, err
}

// DeleteAdminCode removes a user's admin code; it reports whether there was one.
func (s *Store) DeleteAdminCode(ctx context.Context, userID string) (bool, error) {
	res := s.DB(ctx).Where("user_id = ?", userID).Delete(&AdminCode{})
	return res.RowsAffected > 0, res.Error
}
