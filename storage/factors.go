package storage

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Factor states.
const (
	FactorPending = "pending"
	FactorActive  = "active"
)

// Factor is one enrolled second factor. Method-specific, non-secret data lives in
// Data (owned by the provider); a secret lives only sealed in SealedSecret.
type Factor struct {
	ID     string `gorm:"primaryKey;size:36"`
	UserID string `gorm:"size:255;not null;index:idx_factor_user_method,priority:1"`
	Method string `gorm:"size:32;not null;index:idx_factor_user_method,priority:2"`
	Name   string `gorm:"size:255;not null"`
	State  string `gorm:"size:16;not null"`
	// SealedSecret is nonce‖ciphertext‖tag under key SecretKeyID, with associated
	// data SealAAD("factors", UserID, ID).
	SealedSecret []byte
	SecretKeyID  string `gorm:"size:32"`
	// CredentialID indexes WebAuthn credentials for passkey logins (unique when set).
	CredentialID []byte `gorm:"uniqueIndex"`
	// Data is the provider's own JSON (parameters, public keys, counters).
	Data []byte
	// LastStep is the last accepted TOTP time step; only a later step is accepted.
	LastStep *int64
	// Attempts counts wrong proofs of a pending enrollment.
	Attempts   int `gorm:"not null;default:0"`
	ExpiresAt  *time.Time
	CreatedAt  time.Time
	UpdatedAt  time.Time
	LastUsedAt *time.Time
}

const factorsTable = "factors"

// AAD is the associated data a factor's secret is sealed with.
func (f *Factor) AAD() []byte { return SealAAD(factorsTable, f.UserID, f.ID) }

// CreateFactor inserts a factor.
func (s *Store) CreateFactor(ctx context.Context, f *Factor) error {
	return s.DB(ctx).Create(f).Error
}

// CreateFactorWithin inserts f unless its user already has limit factors of
// f's method, active or pending and unexpired at now (*CapError, What "<method>
// factors (active or being enrolled)"). The count and the insert are one
// transaction that holds the user's method first (LockAttempt), so enrollments
// for one user at the same instant, on any replica, never pass the cap. Inside
// a caller's transaction, run it before any read the caller's transaction
// depends on (LockAttempt's rule).
func (s *Store) CreateFactorWithin(ctx context.Context, f *Factor, limit int, now time.Time) error {
	return s.insertWithin(ctx, "factors:"+f.Method+"\x00"+f.UserID, f.Method+" factors (active or being enrolled)", limit,
		func(ctx context.Context) (n int64, err error) {
			err = s.DB(ctx).Model(&Factor{}).Where("user_id = ? AND method = ? AND (state = ? OR (state = ? AND (expires_at IS NULL OR expires_at > ?)))",
				f.UserID, f.Method, FactorActive, FactorPending, now).Count(&n).Error
			return n, err
		},
		func(ctx context.Context) error { return s.CreateFactor(ctx, f) })
}

// GetFactor loads a factor of a user.
func (s *Store) GetFactor(ctx context.Context, userID, id string) (*Factor, error) {
	var f Factor
	err := s.DB(ctx).Where("id = ? AND user_id = ?", id, userID).Take(&f).Error
	if err != nil {
		return nil, notFound(err)
	}
	return &f, nil
}

// GetFactorByCredentialID finds a WebAuthn factor by credential id (passkey logins).
func (s *Store) GetFactorByCredentialID(ctx context.Context, credentialID []byte) (*Factor, error) {
	var f Factor
	err := s.DB(ctx).Where("credential_id = ?", credentialID).Take(&f).Error
	if err != nil {
		return nil, notFound(err)
	}
	return &f, nil
}

// ListFactors lists a user's factors, oldest first; method "" means all methods,
// state "" all states.
func (s *Store) ListFactors(ctx context.Context, userID, method, state string) ([]Factor, error) {
	q := s.DB(ctx).Where("user_id = ?", userID)
	if method != "" {
		q = q.Where("method = ?", method)
	}
	if state != "" {
		q = q.Where("state = ?", state)
	}
	var out []Factor
	err := q.Order("created_at, id").Find(&out).Error
	return out, err
}

// FactorHead is what a challenge needs to know of a factor before the answer
// comes: its id and its last accepted TOTP step. It holds no secret.
type FactorHead struct {
	ID       string
	LastStep *int64
}

// ListFactorHeads returns up to limit of a user's factors of a method in a state,
// oldest first: a cheap existence check that reads no secret.
func (s *Store) ListFactorHeads(ctx context.Context, userID, method, state string, limit int) ([]FactorHead, error) {
	// Raw SQL scanned by hand: every login begins with this query.
	rows, err := s.hotQuery(ctx, factorHeadsSQL, userID, method, state, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var heads []FactorHead
	for rows.Next() {
		var (
			h    FactorHead
			step sql.NullInt64
		)
		if err := rows.Scan(&h.ID, &step); err != nil {
			return nil, err
		}
		if step.Valid {
			v := step.Int64
			h.LastStep = &v
		}
		heads = append(heads, h)
	}
	return heads, rows.Err()
}

// ActivateThen runs activate (ActivateFactor or ActivateFactorWithData, bound by
// the caller) and, when it took, then on the active factor, in one
// transaction: an error from then undoes the activation and is returned, and
// notPending is returned when the factor was no longer pending. A nil then
// only activates.
func (s *Store) ActivateThen(ctx context.Context, userID, id string, activate func(ctx context.Context) (bool, error), notPending error,
	then func(ctx context.Context, f *Factor) error) (*Factor, error) {
	var active *Factor
	err := s.InTx(ctx, func(ctx context.Context) error {
		ok, err := activate(ctx)
		if err != nil {
			return err
		}
		if !ok {
			return notPending
		}
		if active, err = s.GetFactor(ctx, userID, id); err != nil || then == nil {
			return err
		}
		return then(ctx, active)
	})
	if err != nil {
		return nil, err
	}
	return active, nil
}

// ActivateFactor turns a pending factor active. Only one caller wins: it reports
// false when the factor was not pending (already active, or gone).
func (s *Store) ActivateFactor(ctx context.Context, userID, id string, now time.Time, lastStep *int64) (bool, error) {
	updates := map[string]any{"state": FactorActive, "expires_at": nil, "updated_at": now, "attempts": 0}
	if lastStep != nil {
		updates["last_step"] = *lastStep
	}
	res := s.DB(ctx).Model(&Factor{}).
		Where("id = ? AND user_id = ? AND state = ?", id, userID, FactorPending).
		Updates(updates)
	return res.RowsAffected == 1, res.Error
}

// CountPendingAttempt adds one wrong proof to a pending factor and reports the count
// after it, or ErrNotFound when the factor is not pending.
func (s *Store) CountPendingAttempt(ctx context.Context, userID, id string) (int, error) {
	// One statement: the conditional UPDATE returns the count it wrote.
	var f Factor
	res := s.DB(ctx).Model(&f).
		Clauses(clause.Returning{Columns: []clause.Column{{Name: "attempts"}}}).
		Where("id = ? AND user_id = ? AND state = ?", id, userID, FactorPending).
		Update("attempts", gorm.Expr("attempts + 1"))
	if res.Error != nil {
		return 0, res.Error
	}
	if res.RowsAffected == 0 {
		return 0, ErrNotFound
	}
	return f.Attempts, nil
}

// AdvanceLastStep records step as the factor's last accepted TOTP time step, only
// if it is later than the one stored. It reports whether this caller won: of any
// number of concurrent callers with the same step, exactly one does.
func (s *Store) AdvanceLastStep(ctx context.Context, factorID string, step int64, now time.Time) (bool, error) {
	res := s.DB(ctx).Model(&Factor{}).
		Where("id = ? AND state = ? AND (last_step IS NULL OR last_step < ?)", factorID, FactorActive, step).
		Updates(map[string]any{"last_step": step, "last_used_at": now})
	return res.RowsAffected == 1, res.Error
}

// AdvanceLastStepFrom is AdvanceLastStep for a challenge that began when the
// factor's last step was from (nil: none yet): it records step only if the last
// step is still from, so that such a challenge is won at most once, by exactly one
// of any number of concurrent callers, and a code is still accepted only once.
func (s *Store) AdvanceLastStepFrom(ctx context.Context, factorID string, from *int64, step int64, now time.Time) (bool, error) {
	was := int64(-1) // steps count from the Unix epoch: never negative
	if from != nil {
		was = *from
	}
	if step <= was {
		return false, nil
	}
	n, err := s.hotExec(ctx, advanceLastStepFromSQL, step, now.UTC(), factorID, FactorActive, was)
	return n == 1, err
}

// TouchFactor records a successful use.
func (s *Store) TouchFactor(ctx context.Context, factorID string, now time.Time) error {
	return s.DB(ctx).Model(&Factor{}).Where("id = ?", factorID).Update("last_used_at", now).Error
}

// UpdateFactorData replaces a factor's provider data.
func (s *Store) UpdateFactorData(ctx context.Context, factorID string, data []byte, now time.Time) error {
	return s.DB(ctx).Model(&Factor{}).Where("id = ?", factorID).
		Updates(map[string]any{"data": data, "updated_at": now}).Error
}

// RenameFactor renames a user's factor.
func (s *Store) RenameFactor(ctx context.Context, userID, id, name string, now time.Time) error {
	res := s.DB(ctx).Model(&Factor{}).Where("id = ? AND user_id = ?", id, userID).
		Updates(map[string]any{"name": name, "updated_at": now})
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteFactor removes a user's factor and any open challenge for it.
func (s *Store) DeleteFactor(ctx context.Context, userID, id string) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		res := s.DB(ctx).Where("id = ? AND user_id = ?", id, userID).Delete(&Factor{})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return s.DB(ctx).Where("factor_id = ?", id).Delete(&Challenge{}).Error
	})
}

// DeletePendingFactor removes a user's factor if it is still pending (an
// enrollment abandoned before it was handed to its caller); it reports whether
// it did.
func (s *Store) DeletePendingFactor(ctx context.Context, userID, id string) (bool, error) {
	res := s.DB(ctx).Where("id = ? AND user_id = ? AND state = ?", id, userID, FactorPending).Delete(&Factor{})
	return res.RowsAffected == 1, res.Error
}

// DeleteExpiredPendingFactors removes enrollments never finished before now.
func (s *Store) DeleteExpiredPendingFactors(ctx context.Context, now time.Time) (int64, error) {
	res := s.DB(ctx).Where("state = ? AND expires_at < ?", FactorPending, now).Delete(&Factor{})
	return res.RowsAffected, res.Error
}

// ResealFactors re-encrypts every factor secret not sealed with the ring's active
// key. Each row is updated only if it still holds what was read (a concurrent
// reseal or delete wins over this one). It reports how many rows it moved.
func (s *Store) ResealFactors(ctx context.Context, ring *KeyRing) (int, error) {
	var rows []Factor
	if err := s.DB(ctx).Select("id", "user_id", "sealed_secret", "secret_key_id").
		Where("sealed_secret IS NOT NULL AND secret_key_id <> ?", ring.ActiveKeyID()).
		Find(&rows).Error; err != nil {
		return 0, err
	}
	moved := 0
	for i := range rows {
		f := &rows[i]
		plain, err := ring.Open(f.SecretKeyID, f.SealedSecret, f.AAD())
		if err != nil {
			return moved, fmt.Errorf("factor %s: %w", f.ID, err)
		}
		keyID, sealed, err := ring.Seal(plain, f.AAD())
		clear(plain)
		if err != nil {
			return moved, err
		}
		res := s.DB(ctx).Model(&Factor{}).
			Where("id = ? AND secret_key_id = ?", f.ID, f.SecretKeyID).
			Updates(map[string]any{"sealed_secret": sealed, "secret_key_id": keyID})
		if res.Error != nil {
			return moved, res.Error
		}
		moved += int(res.RowsAffected)
	}
	return moved, nil
}
