package storage

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm/clause"
)

// BackupCodeSet is the head row of a user's current set of backup codes: one per
// user, replaced with the set. Its row lock serialises the uses of one user's codes,
// so the count of codes left after each use is exact even across replicas.
type BackupCodeSet struct {
	UserID    string `gorm:"primaryKey;size:255"`
	SetID     string `gorm:"size:36;not null"`
	Total     int    `gorm:"not null"`
	CreatedAt time.Time
	// LastUsedAt is the last time a code of the set was accepted.
	LastUsedAt *time.Time
	// RunningLowAt records when a use left the set at or below the low mark (the
	// next-to-last code): the user is running out. Set once per set.
	RunningLowAt *time.Time
}

// BackupCode is one code of a set. Only Hash is kept: a keyed hash
// (KeyRing.MAC) over the user id and the normalised code, so it is bound to its
// user and needs no separate salt.
type BackupCode struct {
	ID        string `gorm:"primaryKey;size:36"`
	UserID    string `gorm:"size:255;not null;index"`
	SetID     string `gorm:"size:36;not null;index"`
	Hash      []byte `gorm:"not null"`
	CreatedAt time.Time
	UsedAt    *time.Time
}

// BackupCodeUse is what one accepted use of a backup code left behind.
type BackupCodeUse struct {
	// Used is true when this caller consumed the code; false when it was already
	// used (or its set replaced) — of concurrent callers exactly one sees true.
	Used bool
	// Remaining counts the unused codes of the set after this use.
	Remaining int
	// LowRecorded is true when this use recorded that the user is running out
	// (true for one use per set).
	LowRecorded bool
}

// ReplaceBackupCodes replaces a user's backup codes with a new set of hashes in one
// transaction: the old set stops working the moment the new one exists.
func (s *Store) ReplaceBackupCodes(ctx context.Context, userID string, hashes [][]byte, now time.Time) (*BackupCodeSet, error) {
	if len(hashes) == 0 {
		return nil, errors.New("replace backup codes: empty set")
	}
	set := &BackupCodeSet{UserID: userID, SetID: uuid.NewString(), Total: len(hashes), CreatedAt: now}
	err := s.InTx(ctx, func(ctx context.Context) error {
		// The set row first: it is the lock every use takes too.
		if err := s.DB(ctx).Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "user_id"}},
			DoUpdates: clause.AssignmentColumns([]string{"set_id", "total", "created_at", "last_used_at", "running_low_at"}),
		}).Create(set).Error; err != nil {
			return err
		}
		if err := s.DB(ctx).Where("user_id = ?", userID).Delete(&BackupCode{}).Error; err != nil {
			return err
		}
		codes := make([]BackupCode, len(hashes))
		for i, h := range hashes {
			codes[i] = BackupCode{ID: uuid.NewString(), UserID: userID, SetID: set.SetID, Hash: h, CreatedAt: now}
		}
		return s.DB(ctx).Create(&codes).Error
	})
	if err != nil {
		return nil, err
	}
	return set, nil
}

// ListBackupCodes lists the codes of a user's current set, used ones included (a
// caller tells a replayed code from a wrong one).
// It is on the login path: one prepared statement (hot.go), not gorm's builder.
func (s *Store) ListBackupCodes(ctx context.Context, userID string) ([]BackupCode, error) {
	rows, err := s.hotQuery(ctx, "SELECT id, user_id, set_id, hash, created_at, used_at FROM backup_codes WHERE user_id = ? ORDER BY id", userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]BackupCode, 0, 10)
	for rows.Next() {
		var c BackupCode
		var used sql.NullTime
		if err := rows.Scan(&c.ID, &c.UserID, &c.SetID, &c.Hash, &c.CreatedAt, &used); err != nil {
			return nil, err
		}
		if used.Valid {
			c.UsedAt = &used.Time
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// The statements of a backup code's use (UseBackupCode), each prepared once.
const (
	sqlHoldBackupSet    = "UPDATE backup_code_sets SET set_id = set_id WHERE user_id = ? AND set_id = ?"
	sqlUseBackupCode    = "UPDATE backup_codes SET used_at = ? WHERE id = ? AND user_id = ? AND set_id = ? AND used_at IS NULL"
	sqlBackupSetUsed    = "UPDATE backup_code_sets SET last_used_at = ? WHERE user_id = ? AND set_id = ?"
	sqlCountUnusedCodes = "SELECT COUNT(*) FROM backup_codes WHERE user_id = ? AND set_id = ? AND used_at IS NULL"
	sqlBackupSetLow     = "UPDATE backup_code_sets SET running_low_at = ? WHERE user_id = ? AND set_id = ? AND running_low_at IS NULL"
)

// UseBackupCode consumes one code of a user's set. The conditional update
// (used_at IS NULL, same set) lets exactly one of any number of concurrent callers
// win. When the use leaves lowAt or fewer codes and the set has no running-low
// record yet, it records one.
func (s *Store) UseBackupCode(ctx context.Context, userID, setID, codeID string, lowAt int, now time.Time) (BackupCodeUse, error) {
	var use BackupCodeUse
	err := s.InTx(ctx, func(ctx context.Context) error {
		use = BackupCodeUse{}
		// Lock the set row without changing it: concurrent uses of this user's codes
		// queue here, so the count below sees every earlier use. Nothing is written
		// before the code is won: inside a caller's transaction (a nested InTx) a
		// lost use is not rolled back.
		if n, err := s.hotExec(ctx, sqlHoldBackupSet, userID, setID); err != nil || n == 0 {
			return err // set replaced: the code is gone
		}
		n, err := s.hotExec(ctx, sqlUseBackupCode, now, codeID, userID, setID)
		if err != nil {
			return err
		}
		if n == 0 {
			return errNotWon // already used
		}
		use.Used = true
		if _, err := s.hotExec(ctx, sqlBackupSetUsed, now, userID, setID); err != nil {
			return err
		}
		if use.Remaining, err = s.countUnused(ctx, userID, setID); err != nil {
			return err
		}
		if use.Remaining <= lowAt {
			n, err := s.hotExec(ctx, sqlBackupSetLow, now, userID, setID)
			if err != nil {
				return err
			}
			use.LowRecorded = n == 1
		}
		return nil
	})
	if errors.Is(err, errNotWon) {
		return BackupCodeUse{}, nil
	}
	return use, err
}

func (s *Store) countUnused(ctx context.Context, userID, setID string) (int, error) {
	return s.hotCount(ctx, sqlCountUnusedCodes, userID, setID)
}

// hotCount runs a prepared SELECT COUNT(*) (hotQuery) and returns the count.
func (s *Store) hotCount(ctx context.Context, query string, args ...any) (int, error) {
	rows, err := s.hotQuery(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	if rows.Next() {
		if err := rows.Scan(&n); err != nil {
			return 0, err
		}
	}
	return n, rows.Err()
}

// errNotWon rolls back a transaction whose conditional update found nothing.
var errNotWon = errors.New("conditional update lost")

// GetBackupCodeSet returns a user's current set head row, or ErrNotFound.
func (s *Store) GetBackupCodeSet(ctx context.Context, userID string) (*BackupCodeSet, error) {
	var set BackupCodeSet
	if err := s.DB(ctx).Where("user_id = ?", userID).Take(&set).Error; err != nil {
		return nil, notFound(err)
	}
	return &set, nil
}

// CountUnusedBackupCodes counts the unused codes of a user's current set.
func (s *Store) CountUnusedBackupCodes(ctx context.Context, userID string) (int, error) {
	// Prepared (hot.go): a backup-code login's BeginChallenge asks it (Usable).
	return s.hotCount(ctx, "SELECT COUNT(*) FROM backup_codes WHERE user_id = ? AND used_at IS NULL", userID)
}

// DeleteBackupCodes removes a user's backup codes and their set. It reports
// whether there was a set.
func (s *Store) DeleteBackupCodes(ctx context.Context, userID string) (bool, error) {
	var had bool
	err := s.InTx(ctx, func(ctx context.Context) error {
		res := s.DB(ctx).Where("user_id = ?", userID).Delete(&BackupCodeSet{})
		if res.Error != nil {
			return res.Error
		}
		had = res.RowsAffected > 0
		return s.DB(ctx).Where("user_id = ?", userID).Delete(&BackupCode{}).Error
	})
	return had, err
}
