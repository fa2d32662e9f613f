package storage

import (
	"context"
	"database/sql"
	"errors"
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

// CreateChallenge inserts a challenge: on the login path of stored challenges
// (push, email), a prepared statement (hotpush.go).
func (s *Store) CreateChallenge(ctx context.Context, c *Challenge) error {
	return s.createChallenge(ctx, c)
}

// GetChallenge loads a challenge by id, whatever its state.
func (s *Store) GetChallenge(ctx context.Context, id string) (*Challenge, error) {
	var c Challenge
	if err := s.DB(ctx).Where("id = ?", id).Take(&c).Error; err != nil {
		return nil, notFound(err)
	}
	return &c, nil
}

// joinedFactor is a factor's columns as a LEFT JOIN returns them: nullable.
type joinedFactor struct {
	FID           *string    `gorm:"column:f_id"`
	FUserID       *string    `gorm:"column:f_user_id"`
	FMethod       *string    `gorm:"column:f_method"`
	FName         *string    `gorm:"column:f_name"`
	FState        *string    `gorm:"column:f_state"`
	FSealedSecret []byte     `gorm:"column:f_sealed_secret"`
	FSecretKeyID  *string    `gorm:"column:f_secret_key_id"`
	FCredentialID []byte     `gorm:"column:f_credential_id"`
	FData         []byte     `gorm:"column:f_data"`
	FLastStep     *int64     `gorm:"column:f_last_step"`
	FAttempts     *int       `gorm:"column:f_attempts"`
	FExpiresAt    *time.Time `gorm:"column:f_expires_at"`
	FCreatedAt    *time.Time `gorm:"column:f_created_at"`
	FUpdatedAt    *time.Time `gorm:"column:f_updated_at"`
	FLastUsedAt   *time.Time `gorm:"column:f_last_used_at"`
}

// factor returns the joined factor, or nil when the join found none.
func (r *joinedFactor) factor() *Factor {
	if r.FID == nil || r.FUserID == nil || r.FMethod == nil || r.FState == nil || r.FCreatedAt == nil || r.FUpdatedAt == nil {
		return nil
	}
	f := &Factor{ID: *r.FID, UserID: *r.FUserID, Method: *r.FMethod, State: *r.FState,
		SealedSecret: r.FSealedSecret, CredentialID: r.FCredentialID, Data: r.FData, LastStep: r.FLastStep,
		ExpiresAt: r.FExpiresAt, CreatedAt: *r.FCreatedAt, UpdatedAt: *r.FUpdatedAt, LastUsedAt: r.FLastUsedAt}
	if r.FName != nil {
		f.Name = *r.FName
	}
	if r.FSecretKeyID != nil {
		f.SecretKeyID = *r.FSecretKeyID
	}
	if r.FAttempts != nil {
		f.Attempts = *r.FAttempts
	}
	return f
}

// challengeFactorRow is a challenge joined with its factor.
type challengeFactorRow struct {
	Challenge `gorm:"embedded"`
	F         joinedFactor `gorm:"embedded"`
}

// GetChallengeAndFactor loads a challenge by id, whatever its state, and in the
// same query the factor it is bound to (nil when it names none or the user's
// factor is gone).
func (s *Store) GetChallengeAndFactor(ctx context.Context, id string) (*Challenge, *Factor, error) {
	// On the login path of stored challenges: one prepared statement (hot.go),
	// its row mapped by gorm's schema.
	rows, err := s.hotQuery(ctx, challengeAndFactorSQL, id)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, nil, err
		}
		return nil, nil, ErrNotFound
	}
	var row challengeFactorRow
	if err := s.db.ScanRows(rows, &row); err != nil {
		return nil, nil, err
	}
	c := row.Challenge
	return &c, row.F.factor(), nil
}

// sealedReadKey carries a sealedRead in a ctx (WithSealedRead).
type sealedReadKey struct{}

// sealedRead is a sealed challenge's state read ahead by InAttempt, for the
// LoadSealedChallenge that the attempt's work then makes.
type sealedRead struct {
	id, factorID, userID string
	done                 bool // read, and not yet taken
	factor               *Factor
	state                sql.NullString
	attempts             sql.NullInt64
}

// WithSealedRead asks the InAttempt that ctx is given to to read c's sealed
// state (what LoadSealedChallenge reads) with the attempt's counts: on
// PostgreSQL outside another transaction, as one more statement of the
// pipeline that begins the attempt (one round trip fewer), after the hold like
// the counts' read; elsewhere nothing is read ahead. LoadSealedChallenge of c
// inside that attempt then takes what was read, once, instead of reading.
func WithSealedRead(ctx context.Context, c *Challenge) context.Context {
	return context.WithValue(ctx, sealedReadKey{}, &sealedRead{id: c.ID, factorID: c.FactorID, userID: c.UserID})
}

// takeSealedRead returns the state read ahead for c in ctx's attempt, once.
func takeSealedRead(ctx context.Context, c *Challenge) *sealedRead {
	r, ok := ctx.Value(sealedReadKey{}).(*sealedRead)
	if !ok || !r.done || r.id != c.ID || r.factorID != c.FactorID || r.userID != c.UserID {
		return nil
	}
	if _, inTx := ctx.Value(txKey{}).(*gorm.DB); !inTx {
		return nil // read in a transaction that has ended
	}
	r.done = false
	return r
}

// LoadSealedChallenge completes a challenge whose fields came from its sealed id
// (see server/challenge): in one query it reads the factor it is bound to
// (returned, nil when gone, with the fields verifying a code needs: id, user, method,
// state, sealed secret and its key id, data, last step) and, if wrong answers gave
// the challenge a row, its state and attempts from that row.
func (s *Store) LoadSealedChallenge(ctx context.Context, c *Challenge) (*Factor, error) {
	if r := takeSealedRead(ctx, c); r != nil {
		return r.applyTo(c), nil
	}
	rows, err := s.hotQuery(ctx, sealedStateSQL, c.FactorID, c.UserID, c.ID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	r := &sealedRead{userID: c.UserID}
	if err := scanSealedState(rows, r); err != nil {
		return nil, err
	}
	return r.applyTo(c), rows.Close()
}

// applyTo gives c the state and attempts its row holds (when wrong answers gave
// it one) and returns the factor read.
func (r *sealedRead) applyTo(c *Challenge) *Factor {
	if r.state.Valid && r.attempts.Valid {
		c.State, c.Attempts = r.state.String, int(r.attempts.Int64)
	}
	return r.factor
}

// scanSealedState reads sealedStateSQL's one row into r (r.userID set).
func scanSealedState(rows rowScanner, r *sealedRead) error {
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return errors.New("storage: sealed challenge state: no row")
	}
	var (
		fID, fMethod, fState, fKeyID sql.NullString
		fSecret, fData               []byte
		fStep                        sql.NullInt64
	)
	if err := rows.Scan(&fID, &fMethod, &fState, &fSecret, &fKeyID, &fData, &fStep, &r.state, &r.attempts); err != nil {
		return err
	}
	r.factor = nil
	if fID.Valid && fMethod.Valid && fState.Valid {
		f := &Factor{ID: fID.String, UserID: r.userID, Method: fMethod.String, State: fState.String,
			SealedSecret: fSecret, SecretKeyID: fKeyID.String, Data: fData}
		if fStep.Valid {
			step := fStep.Int64
			f.LastStep = &step
		}
		r.factor = f
	}
	return nil
}

// FailSealedChallengeAttempt counts one wrong answer on a sealed challenge: the
// first creates its row (so that any replica sees the count), later ones update
// it; the challenge fails at its last allowed attempt. It returns the attempts
// still allowed, and false when the challenge was no longer open. One statement,
// so concurrent wrong answers are each counted once.
func (s *Store) FailSealedChallengeAttempt(ctx context.Context, c *Challenge, now time.Time) (remaining int, open bool, err error) {
	if !now.Before(c.ExpiresAt) || c.MaxAttempts < 1 {
		return 0, false, nil
	}
	first := ChallengeOpen
	if c.MaxAttempts <= 1 {
		first = ChallengeFailed
	}
	var out []struct {
		Attempts    int
		MaxAttempts int
	}
	err = s.DB(ctx).Raw(failSealedChallengeSQL,
		c.ID, c.UserID, c.FactorID, c.Method, first, c.MaxAttempts, c.ExpiresAt, c.ClientIP, c.CreatedAt, now,
		ChallengeFailed, ChallengeOpen).Scan(&out).Error
	if err != nil || len(out) == 0 {
		return 0, false, err
	}
	return out[0].MaxAttempts - out[0].Attempts, true, nil
}

// ConsumeChallenge marks an open, unexpired challenge accepted. It reports whether
// this caller won: of concurrent callers, exactly one does.
func (s *Store) ConsumeChallenge(ctx context.Context, id string, now time.Time) (bool, error) {
	// On the login path of stored challenges: one prepared statement (hot.go).
	n, err := s.hotExec(ctx, "UPDATE challenges SET state = ?, updated_at = ? WHERE id = ? AND state = ? AND expires_at > ? AND attempts < max_attempts",
		ChallengeAccepted, now, id, ChallengeOpen, now)
	return n == 1, err
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
