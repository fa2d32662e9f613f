package storage

import (
	"context"
	"time"

	"gorm.io/gorm"
)

// TrustedDevice is one remembered device of a user ("remember this device"): a
// series of rotating device tokens that share an id, a label and an absolute
// expiry. Only the keyed hash of the series' current token is kept (TokenHash,
// unique: a presented token is one indexed lookup), and the hash of the token it
// replaced (PrevHash) for the short grace in which a client's concurrent second
// request may still present it. Every token ever rotated away is a
// RetiredDeviceToken, so that its replay is recognised as theft.
//
// Epoch is the user's CredentialsEpoch when the series was issued: once the
// user's epoch moves on, the series is dead.
type TrustedDevice struct {
	// ID names the series; it stays the same across rotations.
	ID        string `gorm:"primaryKey;size:36"`
	UserID    string `gorm:"size:255;not null;index"`
	Label     string `gorm:"size:255;not null"`
	IssuedIP  string `gorm:"size:64;not null"`
	UserAgent string `gorm:"size:512;not null"`
	// TokenHash is MAC("trusted-device", current token): 32 bytes, unique.
	TokenHash []byte `gorm:"not null;uniqueIndex"`
	// PrevHash is the hash of the token the last rotation replaced, RotatedAt
	// when; GraceUsed is set once that token was accepted again within grace.
	PrevHash  []byte
	RotatedAt *time.Time
	GraceUsed bool  `gorm:"not null;default:false"`
	Rotations int64 `gorm:"not null;default:0"`
	Epoch     int64 `gorm:"not null"`
	CreatedAt time.Time
	// LastUsedAt and LastIP are those of the last accepted presentation.
	LastUsedAt *time.Time
	LastIP     string `gorm:"size:64;not null;default:''"`
	// ExpiresAt is absolute: rotation never moves it.
	ExpiresAt time.Time `gorm:"not null;index"`
}

// RetiredDeviceToken is the keyed hash of a device token that a rotation
// replaced. It lives as long as its series (ExpiresAt is the series'); its
// presentation after the grace is theft of the series.
type RetiredDeviceToken struct {
	Hash      []byte    `gorm:"primaryKey"`
	DeviceID  string    `gorm:"size:36;not null;index"`
	UserID    string    `gorm:"size:255;not null;index"`
	RetiredAt time.Time `gorm:"not null"`
	ExpiresAt time.Time `gorm:"not null;index"`
}

// CredentialsEpoch is a per-user counter that moves whenever the user's
// credentials change (a factor added, removed or reset, an admin code issued,
// the password changed). A user without a row is at epoch 0.
type CredentialsEpoch struct {
	UserID    string `gorm:"primaryKey;size:255"`
	Epoch     int64  `gorm:"not null"`
	ChangedAt time.Time
}

// TableName keeps the table name plain (BumpCredentialsEpoch's SQL names it).
func (CredentialsEpoch) TableName() string { return "credentials_epochs" }

// CreateTrustedDevice inserts d and then evicts the user's oldest series beyond
// maxPerUser, in one transaction; it returns the ids it evicted. Unlike the
// other per-user caps it never refuses: a new device pushes out the oldest. The
// transaction holds the user first (LockAttempt), so creations for one user at
// the same instant, on any replica, count one after the other and never leave
// more than maxPerUser. Inside a caller's transaction, run it before any read
// the caller's transaction depends on (LockAttempt's rule).
func (s *Store) CreateTrustedDevice(ctx context.Context, d *TrustedDevice, maxPerUser int) ([]string, error) {
	var evicted []string
	err := s.holding(ctx, "trusted-devices:"+d.UserID, func(ctx context.Context) error {
		evicted = nil
		if err := s.DB(ctx).Create(d).Error; err != nil {
			return err
		}
		if err := s.DB(ctx).Model(&TrustedDevice{}).Where("user_id = ?", d.UserID).
			Order("created_at DESC, id DESC").Offset(maxPerUser).Pluck("id", &evicted).Error; err != nil {
			return err
		}
		return s.deleteDevices(ctx, d.UserID, evicted)
	})
	if err != nil {
		return nil, err
	}
	return evicted, nil
}

// deleteDevices removes series of a user and their retired tokens.
func (s *Store) deleteDevices(ctx context.Context, userID string, ids []string) error {
	for start := 0; start < len(ids); start += 500 {
		chunk := ids[start:min(start+500, len(ids))]
		if err := s.DB(ctx).Where("user_id = ? AND device_id IN ?", userID, chunk).Delete(&RetiredDeviceToken{}).Error; err != nil {
			return err
		}
		if err := s.DB(ctx).Where("user_id = ? AND id IN ?", userID, chunk).Delete(&TrustedDevice{}).Error; err != nil {
			return err
		}
	}
	return nil
}

// GetTrustedDeviceByHash finds the series whose current token hashes to hash;
// ErrNotFound when there is none.
func (s *Store) GetTrustedDeviceByHash(ctx context.Context, hash []byte) (*TrustedDevice, error) {
	var d TrustedDevice
	if err := s.DB(ctx).Where("token_hash = ?", hash).Take(&d).Error; err != nil {
		return nil, notFound(err)
	}
	return &d, nil
}

// GetRetiredDeviceToken finds a rotated-away token by its hash, or ErrNotFound.
func (s *Store) GetRetiredDeviceToken(ctx context.Context, hash []byte) (*RetiredDeviceToken, error) {
	var r RetiredDeviceToken
	if err := s.DB(ctx).Where("hash = ?", hash).Take(&r).Error; err != nil {
		return nil, notFound(err)
	}
	return &r, nil
}

// GetTrustedDevice loads a series of a user, or ErrNotFound.
func (s *Store) GetTrustedDevice(ctx context.Context, userID, id string) (*TrustedDevice, error) {
	var d TrustedDevice
	if err := s.DB(ctx).Where("id = ? AND user_id = ?", id, userID).Take(&d).Error; err != nil {
		return nil, notFound(err)
	}
	return &d, nil
}

// ListTrustedDevices lists a user's series, oldest first.
func (s *Store) ListTrustedDevices(ctx context.Context, userID string) ([]TrustedDevice, error) {
	var out []TrustedDevice
	err := s.DB(ctx).Where("user_id = ?", userID).Order("created_at, id").Find(&out).Error
	return out, err
}

// RotateTrustedDevice replaces the series' current token oldHash by newHash, only
// if oldHash is still current: of concurrent callers on any number of replicas
// exactly one wins (true). The replaced hash becomes PrevHash (its grace starts at
// now, unused) and a RetiredDeviceToken.
func (s *Store) RotateTrustedDevice(ctx context.Context, id string, oldHash, newHash []byte, now time.Time, clientIP string) (bool, error) {
	won := false
	err := s.InTx(ctx, func(ctx context.Context) error {
		won = false
		var d TrustedDevice
		res := s.DB(ctx).Model(&d).Where("id = ? AND token_hash = ?", id, oldHash).Updates(map[string]any{
			"token_hash": newHash, "prev_hash": oldHash, "rotated_at": now, "grace_used": false,
			"rotations": gorm.Expr("rotations + 1"), "last_used_at": now, "last_ip": clientIP,
		})
		if res.Error != nil || res.RowsAffected != 1 {
			return res.Error
		}
		if err := s.DB(ctx).Where("id = ?", id).Take(&d).Error; err != nil {
			return err
		}
		won = true
		return s.DB(ctx).Create(&RetiredDeviceToken{Hash: oldHash, DeviceID: id, UserID: d.UserID, RetiredAt: now, ExpiresAt: d.ExpiresAt}).Error
	})
	return won && err == nil, err
}

// UseTrustedDeviceGrace accepts the series' previous token prevHash once more, if
// it was rotated away at or after notBefore by a request from the same clientIP
// and its grace is unused: of concurrent callers at most one wins (true).
func (s *Store) UseTrustedDeviceGrace(ctx context.Context, id string, prevHash []byte, notBefore, now time.Time, clientIP string) (bool, error) {
	res := s.DB(ctx).Model(&TrustedDevice{}).
		Where("id = ? AND prev_hash = ? AND grace_used = ? AND rotated_at >= ? AND last_ip = ?", id, prevHash, false, notBefore, clientIP).
		Updates(map[string]any{"grace_used": true, "last_used_at": now, "last_ip": clientIP})
	return res.RowsAffected == 1, res.Error
}

// DeleteTrustedDevice revokes a series of a user (and its retired tokens);
// ErrNotFound when the user has no such series.
func (s *Store) DeleteTrustedDevice(ctx context.Context, userID, id string) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		if err := s.DB(ctx).Where("user_id = ? AND device_id = ?", userID, id).Delete(&RetiredDeviceToken{}).Error; err != nil {
			return err
		}
		res := s.DB(ctx).Where("user_id = ? AND id = ?", userID, id).Delete(&TrustedDevice{})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// DeleteTrustedDevicesOfUser revokes every series of a user and returns how many.
func (s *Store) DeleteTrustedDevicesOfUser(ctx context.Context, userID string) (int64, error) {
	var n int64
	err := s.InTx(ctx, func(ctx context.Context) error {
		if err := s.DB(ctx).Where("user_id = ?", userID).Delete(&RetiredDeviceToken{}).Error; err != nil {
			return err
		}
		res := s.DB(ctx).Where("user_id = ?", userID).Delete(&TrustedDevice{})
		n = res.RowsAffected
		return res.Error
	})
	return n, err
}

// DeleteExpiredTrustedDevices removes series and retired tokens expired at now.
func (s *Store) DeleteExpiredTrustedDevices(ctx context.Context, now time.Time) (int64, error) {
	if err := s.DB(ctx).Where("expires_at <= ?", now).Delete(&RetiredDeviceToken{}).Error; err != nil {
		return 0, err
	}
	res := s.DB(ctx).Where("expires_at <= ?", now).Delete(&TrustedDevice{})
	return res.RowsAffected, res.Error
}

// GetCredentialsEpoch returns the user's credentials epoch (0 without a row).
func (s *Store) GetCredentialsEpoch(ctx context.Context, userID string) (int64, error) {
	var epochs []int64
	if err := s.DB(ctx).Model(&CredentialsEpoch{}).Where("user_id = ?", userID).Limit(1).Pluck("epoch", &epochs).Error; err != nil {
		return 0, err
	}
	if len(epochs) == 0 {
		return 0, nil
	}
	return epochs[0], nil
}

// BumpCredentialsEpoch moves the user's credentials epoch on by one, atomically
// (an upsert: concurrent bumps on any replica each count), and in the same
// transaction removes the user's trusted devices of older epochs. It returns the
// new epoch and how many series it removed.
func (s *Store) BumpCredentialsEpoch(ctx context.Context, userID string, now time.Time) (epoch, removed int64, err error) {
	err = s.InTx(ctx, func(ctx context.Context) error {
		if err := s.DB(ctx).Raw(`INSERT INTO credentials_epochs (user_id, epoch, changed_at) VALUES (?, 1, ?)
			ON CONFLICT (user_id) DO UPDATE SET epoch = credentials_epochs.epoch + 1, changed_at = excluded.changed_at
			RETURNING epoch`, userID, now).Scan(&epoch).Error; err != nil {
			return err
		}
		var ids []string
		if err := s.DB(ctx).Model(&TrustedDevice{}).Where("user_id = ? AND epoch < ?", userID, epoch).Pluck("id", &ids).Error; err != nil {
			return err
		}
		removed = int64(len(ids))
		return s.deleteDevices(ctx, userID, ids)
	})
	return epoch, removed, err
}
