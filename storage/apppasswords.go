package storage

import (
	"context"
	"time"
)

// AppPassword is one app password of a user: a high-entropy random secret that a
// DAV or sync client sends in place of the user's password.
//
// The password itself is never stored. LookupHash is the keyed hash
// KeyRing.MAC("app-password", canonical password) and carries a unique index, so
// that verifying a password is one indexed equality lookup.
//
// Why an index on the keyed hash and not a public "selector" part embedded in the
// password (the split-token pattern):
//
//   - Split tokens exist for verifiers that cannot be indexed: a salted, slow hash
//     (bcrypt, Argon2) needs a public id to find the row before the slow compare.
//     An app password is a generated secret of at least 128 bits, for which
//     NIST SP 800-63B §5.1.2.2 allows an approved one-way function without
//     salt-and-stretch; HMAC-SHA-256 with a key held outside the database is
//     deterministic, so the hash itself can be the index.
//   - Timing of the index lookup leaks nothing useful: an attacker cannot choose
//     inputs whose keyed hashes share a prefix with a stored one without the MAC
//     key, which is the usual concern with looking secrets up by value.
//   - Every character of the password is secret, so 128 bits fit in 26 typeable
//     base32 characters; a selector would add a dozen more for no security gain.
//   - A stolen database (without the key file) allows no offline guessing either
//     way, because the hash is keyed.
type AppPassword struct {
	ID     string `gorm:"primaryKey;size:36"`
	UserID string `gorm:"size:255;not null;index"`
	Name   string `gorm:"size:255;not null"`
	// LookupHash is MAC("app-password", canonical password): 32 bytes, unique.
	LookupHash []byte `gorm:"not null;uniqueIndex"`
	// ReadOnly and FilesystemOnly narrow what the backend lets the password do.
	ReadOnly       bool `gorm:"not null"`
	FilesystemOnly bool `gorm:"not null"`
	CreatedAt      time.Time
	// LastUsedAt and LastClientIP are written at most once per touch interval
	// (see TouchAppPassword), so they are as fresh as that interval.
	LastUsedAt   *time.Time
	LastClientIP string `gorm:"size:64"`
}

// CreateAppPassword inserts an app password.
func (s *Store) CreateAppPassword(ctx context.Context, p *AppPassword) error {
	return s.DB(ctx).Create(p).Error
}

// CreateAppPasswordWithin inserts p unless its user already has maxPerUser app
// passwords (*CapError). The count and the insert are one transaction that
// holds the user first (LockAttempt), so issues for one user at the same
// instant, on any replica, never pass the cap. Inside a caller's transaction,
// run it before any read the caller's transaction depends on (LockAttempt's
// rule).
func (s *Store) CreateAppPasswordWithin(ctx context.Context, p *AppPassword, maxPerUser int) error {
	return s.insertWithin(ctx, "app-passwords:"+p.UserID, "app passwords", maxPerUser,
		func(ctx context.Context) (int64, error) { return s.CountAppPasswords(ctx, p.UserID) },
		func(ctx context.Context) error { return s.CreateAppPassword(ctx, p) })
}

// GetAppPasswordByHash finds the app password whose LookupHash is hash, with one
// lookup on the unique index; ErrNotFound when there is none.
func (s *Store) GetAppPasswordByHash(ctx context.Context, hash []byte) (*AppPassword, error) {
	var p AppPassword
	if err := s.DB(ctx).Where("lookup_hash = ?", hash).Take(&p).Error; err != nil {
		return nil, notFound(err)
	}
	return &p, nil
}

// GetAppPassword loads an app password of a user.
func (s *Store) GetAppPassword(ctx context.Context, userID, id string) (*AppPassword, error) {
	var p AppPassword
	if err := s.DB(ctx).Where("id = ? AND user_id = ?", id, userID).Take(&p).Error; err != nil {
		return nil, notFound(err)
	}
	return &p, nil
}

// ListAppPasswords lists a user's app passwords, oldest first.
func (s *Store) ListAppPasswords(ctx context.Context, userID string) ([]AppPassword, error) {
	var out []AppPassword
	err := s.DB(ctx).Where("user_id = ?", userID).Order("created_at, id").Find(&out).Error
	return out, err
}

// CountAppPasswords counts a user's app passwords.
func (s *Store) CountAppPasswords(ctx context.Context, userID string) (int64, error) {
	var n int64
	err := s.DB(ctx).Model(&AppPassword{}).Where("user_id = ?", userID).Count(&n).Error
	return n, err
}

// RenameAppPassword renames a user's app password; ErrNotFound when the user has
// no such app password.
func (s *Store) RenameAppPassword(ctx context.Context, userID, id, name string) error {
	res := s.DB(ctx).Model(&AppPassword{}).Where("id = ? AND user_id = ?", id, userID).Update("name", name)
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteAppPassword removes (revokes) a user's app password; ErrNotFound when the
// user has no such app password. Of concurrent callers exactly one succeeds.
func (s *Store) DeleteAppPassword(ctx context.Context, userID, id string) error {
	res := s.DB(ctx).Where("id = ? AND user_id = ?", id, userID).Delete(&AppPassword{})
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteAppPasswordsOfUser removes every app password of a user and returns the
// ids it removed, so that the caller can announce each revocation to the other
// replicas' caches. A password issued while this runs either is removed and
// listed, or survives; none is removed without being listed.
func (s *Store) DeleteAppPasswordsOfUser(ctx context.Context, userID string) ([]string, error) {
	var ids []string
	err := s.InTx(ctx, func(ctx context.Context) error {
		ids = nil
		if err := s.DB(ctx).Model(&AppPassword{}).Where("user_id = ?", userID).Order("id").Pluck("id", &ids).Error; err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		// Delete by id in chunks, well under SQLite's and PostgreSQL's bound on
		// bind parameters.
		var removed []string
		for start := 0; start < len(ids); start += 500 {
			chunk := ids[start:min(start+500, len(ids))]
			if err := s.DB(ctx).Where("user_id = ? AND id IN ?", userID, chunk).Delete(&AppPassword{}).Error; err != nil {
				return err
			}
			removed = append(removed, chunk...)
		}
		ids = removed
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// TouchAppPassword records a use of an app password at now from clientIP, only if
// its last recorded use is older than now-minInterval (or there is none). It
// reports whether it wrote: of concurrent callers on any number of replicas within
// one interval, at most one does, so a busy sync client costs one write per
// interval rather than one per request.
func (s *Store) TouchAppPassword(ctx context.Context, id string, now time.Time, clientIP string, minInterval time.Duration) (bool, error) {
	res := s.DB(ctx).Model(&AppPassword{}).
		Where("id = ? AND (last_used_at IS NULL OR last_used_at < ?)", id, now.Add(-minInterval)).
		Updates(map[string]any{"last_used_at": now, "last_client_ip": clientIP})
	return res.RowsAffected == 1, res.Error
}
