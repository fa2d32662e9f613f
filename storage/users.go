package storage

import "context"

// userRows lists every table that holds rows of a user, with the column naming
// the user. DeleteUser empties them all; a new table with user rows joins here.
// Audit records (audit_events) are deliberately absent: the trail outlives the
// account and ages out by retention only (see AuditRecord).
func userRows() []struct {
	Model  any
	Column string
} {
	return []struct {
		Model  any
		Column string
	}{
		{&Factor{}, "user_id"},
		{&Challenge{}, "user_id"},
		{&BackupCodeSet{}, "user_id"},
		{&BackupCode{}, "user_id"},
		{&AdminCode{}, "user_id"},
		{&UserGroup{}, "user_id"},
		{&GroupAdmin{}, "admin_id"},
		{&EnforcementStart{}, "user_id"},
		{&AppPassword{}, "user_id"},
		{&WebAuthnUser{}, "user_id"},
		{&OTPCode{}, "user_id"},
		{&OTPLinkToken{}, "user_id"},
		{&FamiliarNetwork{}, "user_id"},
		{&PushEnrollment{}, "user_id"},
		{&PushDevice{}, "user_id"},
		{&PushChallenge{}, "user_id"},
		{&PushLimit{}, "user_id"},
		{&TrustedDevice{}, "user_id"},
		{&RetiredDeviceToken{}, "user_id"},
		{&CredentialsEpoch{}, "user_id"},
	}
}

// DeleteUser removes everything stored about a user, in one transaction. It
// returns the rows removed per table; every table with user rows is a key, even
// when nothing was removed from it.
func (s *Store) DeleteUser(ctx context.Context, userID string) (map[string]int64, error) {
	removed := map[string]int64{}
	err := s.InTx(ctx, func(ctx context.Context) error {
		for _, t := range userRows() {
			stmt := s.DB(ctx).Where(t.Column+" = ?", userID).Delete(t.Model)
			if stmt.Error != nil {
				return stmt.Error
			}
			removed[stmt.Statement.Table] = stmt.RowsAffected
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return removed, nil
}

// ResetFactors removes second factors of a user, as an admin does for a user who
// lost them: the factor factorID, or, when factorID is empty, all the user's
// factors and their backup codes. Open challenges of removed factors go too. It
// reports how many were removed (a set of backup codes counts as one), and
// ErrNotFound when factorID names no factor of the user.
func (s *Store) ResetFactors(ctx context.Context, userID, factorID string) (int, error) {
	if factorID != "" {
		if err := s.DeleteFactor(ctx, userID, factorID); err != nil {
			return 0, err
		}
		return 1, nil
	}
	removed := 0
	err := s.InTx(ctx, func(ctx context.Context) error {
		res := s.DB(ctx).Where("user_id = ?", userID).Delete(&Factor{})
		if res.Error != nil {
			return res.Error
		}
		removed = int(res.RowsAffected)
		if err := s.DB(ctx).Where("user_id = ? AND state = ?", userID, ChallengeOpen).Delete(&Challenge{}).Error; err != nil {
			return err
		}
		had, err := s.DeleteBackupCodes(ctx, userID)
		if had {
			removed++
		}
		return err
	})
	return removed, err
}
