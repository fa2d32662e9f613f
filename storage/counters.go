package storage

import (
	"context"
	"errors"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Counter is a named number that only grows. Replicas read it to learn that
// something they cache changed (CounterAppPasswordRevocations).
type Counter struct {
	Name  string `gorm:"primaryKey;size:64"`
	Value int64  `gorm:"not null"`
}

// CounterAppPasswordRevocations counts app-password revocations (see package
// apppasswords: a replica trusts its cache only while its last read of this
// counter is recent and unchanged).
const CounterAppPasswordRevocations = "app_password_revocations"

// IncrementCounter adds one to the named counter (creating it at 1), atomically.
func (s *Store) IncrementCounter(ctx context.Context, name string) error {
	return s.DB(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "name"}},
		DoUpdates: clause.Assignments(map[string]any{"value": gorm.Expr("counters.value + 1")}),
	}).Create(&Counter{Name: name, Value: 1}).Error
}

// GetCounter reads the named counter (0 when it was never incremented).
func (s *Store) GetCounter(ctx context.Context, name string) (int64, error) {
	var c Counter
	err := s.DB(ctx).Where("name = ?", name).Take(&c).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return 0, nil
	}
	return c.Value, err
}
