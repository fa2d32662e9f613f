package storage

import (
	"context"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// policyRowID is the id of the one policy row.
const policyRowID = 1

// PolicyRecord is the service-wide policy: one row holding the policy provider's
// JSON, with a version that grows by one on every change.
type PolicyRecord struct {
	ID        int    `gorm:"primaryKey;autoIncrement:false"`
	Data      []byte `gorm:"not null"`
	Version   int64  `gorm:"not null"`
	UpdatedBy string `gorm:"size:255"`
	UpdatedAt time.Time
}

// TableName keeps the table name plain.
func (PolicyRecord) TableName() string { return "policies" }

// GetPolicy loads the policy row, or ErrNotFound when none was ever set.
func (s *Store) GetPolicy(ctx context.Context) (*PolicyRecord, error) {
	var p PolicyRecord
	if err := s.DB(ctx).Where("id = ?", policyRowID).Take(&p).Error; err != nil {
		return nil, notFound(err)
	}
	return &p, nil
}

// PutPolicy stores data as the policy in one upsert and returns the stored row with
// its new version.
func (s *Store) PutPolicy(ctx context.Context, data []byte, updatedBy string, now time.Time) (*PolicyRecord, error) {
	var out *PolicyRecord
	err := s.InTx(ctx, func(ctx context.Context) error {
		row := &PolicyRecord{ID: policyRowID, Data: data, Version: 1, UpdatedBy: updatedBy, UpdatedAt: now}
		if err := s.DB(ctx).Clauses(clause.OnConflict{
			Columns: []clause.Column{{Name: "id"}},
			DoUpdates: clause.Assignments(map[string]any{
				"data":       data,
				"version":    gorm.Expr("policies.version + 1"),
				"updated_by": updatedBy,
				"updated_at": now,
			}),
		}).Create(row).Error; err != nil {
			return err
		}
		var err error
		out, err = s.GetPolicy(ctx)
		return err
	})
	return out, err
}

// EnforcementStart records when 2FA first became enforced for a user; the grace
// period to enrol counts from it.
type EnforcementStart struct {
	UserID    string    `gorm:"primaryKey;size:255"`
	StartedAt time.Time `gorm:"not null"`
}

// EnsureEnforcementStart returns when 2FA became enforced for userID, recording now
// if nothing was recorded yet. Concurrent first calls agree on one time.
func (s *Store) EnsureEnforcementStart(ctx context.Context, userID string, now time.Time) (time.Time, error) {
	var e EnforcementStart
	err := s.DB(ctx).Where("user_id = ?", userID).Take(&e).Error
	if err == nil {
		return e.StartedAt, nil
	}
	if err != gorm.ErrRecordNotFound {
		return time.Time{}, err
	}
	if err := s.DB(ctx).Clauses(clause.OnConflict{DoNothing: true}).
		Create(&EnforcementStart{UserID: userID, StartedAt: now}).Error; err != nil {
		return time.Time{}, err
	}
	if err := s.DB(ctx).Where("user_id = ?", userID).Take(&e).Error; err != nil {
		return time.Time{}, err
	}
	return e.StartedAt, nil
}
