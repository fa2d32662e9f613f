package storage

import (
	"context"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Challenge states.
const (
	ChallengeOpen     = "open"
	ChallengeAccepted = "accepted"
	ChallengeFailed   = "failed"
)

// Challenge is one second-factor login in progress. Any replica can load and
// finish it.
type Challenge struct {
	ID       string `gorm:"primaryKey;size:36"`
	UserID   string `gorm:"size:255;not null;index"`
	FactorID string `gorm:"size:36;index"`
	Method   string `gorm:"size:32;not null"`
	State    string `gorm:"size:16;not null"`
	// Session is the provider's own data for this challenge (e.g. the WebAuthn
	// session: challenge bytes and allowed credentials). Never a secret in clear.
	Session     []byte
	Attempts    int       `gorm:"not null;default:0"`
	MaxAttempts int       `gorm:"not null"`
	ExpiresAt   time.Time `gorm:"not null;index"`
	ClientIP    string    `gorm:"size:64"`
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// CreateChallenge inserts a challenge.
func (s *Store) CreateChallenge(ctx context.Context, c *Challenge) error {
	return s.DB(ctx).Create(c).Error
}

// GetChallenge loads a challenge by id, whatever its state.
func (s *Store) GetChallenge(ctx context.Context, id string) (*Challenge, error) {
	var c Challenge
	if err := s.DB(ctx).Where("id = ?", id).Take(&c).Error; err != nil {
		return nil, notFound(err)
	}
	return &c, nil
}

// ConsumeChallenge marks an open, unexpired challenge accepted. It reports whether
// this caller won: of concurrent callers, exactly one does.
func (s *Store) ConsumeChallenge(ctx context.Context, id string, now time.Time) (bool, error) {
	res := s.DB(ctx).Model(&Challenge{}).
		Where("id = ? AND state = ? AND expires_at > ? AND attempts < max_attempts", id, ChallengeOpen, now).
		Updates(map[string]any{"state": ChallengeAccepted, "updated_at": now})
	return res.RowsAffected == 1, res.Error
}

// FailChallengeAttempt counts one wrong answer on an open, unexpired challenge; the
// challenge fails at its last allowed attempt. It returns the attempts still
// allowed, and false when the challenge was no longer open.
func (s *Store) FailChallengeAttempt(ctx context.Context, id string, now time.Time) (remaining int, open bool, err error) {
	// One statement: the conditional UPDATE returns the counts it wrote, so no
	// transaction and no second read are needed.
	var c Challenge
	res := s.DB(ctx).Model(&c).
		Clauses(clause.Returning{Columns: []clause.Column{{Name: "attempts"}, {Name: "max_attempts"}}}).
		Where("id = ? AND state = ? AND expires_at > ? AND attempts < max_attempts", id, ChallengeOpen, now).
		Updates(map[string]any{
			"attempts":   gorm.Expr("attempts + 1"),
			"state":      gorm.Expr("CASE WHEN attempts + 1 >= max_attempts THEN ? ELSE state END", ChallengeFailed),
			"updated_at": now,
		})
	if res.Error != nil || res.RowsAffected == 0 {
		return 0, false, res.Error
	}
	return c.MaxAttempts - c.Attempts, true, nil
}

// DeleteChallengesBefore removes challenges that expired before t.
func (s *Store) DeleteChallengesBefore(ctx context.Context, t time.Time) (int64, error) {
	res := s.DB(ctx).Where("expires_at < ?", t).Delete(&Challenge{})
	return res.RowsAffected, res.Error
}
