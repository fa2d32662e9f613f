package storage

import (
	"context"
	"fmt"

	"gorm.io/gorm"
)

// models lists every table; Migrate creates or updates them.
func models() []any {
	return append([]any{
		&Factor{},
		&Challenge{},
		&AppPassword{},
		&BackupCodeSet{},
		&BackupCode{},
		&AdminCode{},
		&UserGroup{},
		&GroupAdmin{},
		&PolicyRecord{},
		&EnforcementStart{},
		&WebAuthnUser{},
		&ThrottleState{},
		&FamiliarNetwork{},
		&AuditRecord{},
		&OTPCode{},
		&OTPSendCounter{},
		&OTPLinkToken{},
		&Counter{},
		&AuditRelayLease{},
		&TrustedDevice{},
		&RetiredDeviceToken{},
		&CredentialsEpoch{},
	}, pushModels()...)
}

// migrationLockID is the PostgreSQL advisory lock that serialises migrations of
// replicas starting at once ("tf" in ASCII, an arbitrary constant).
const migrationLockID = 0x7466

// Migrate creates or updates the schema. It is safe when several replicas start at
// once: on PostgreSQL a session advisory lock serialises them; SQLite is one file
// that one process owns, and its write lock serialises the DDL.
func (s *Store) Migrate(ctx context.Context) error {
	if s.dialect == Postgres {
		return s.db.WithContext(ctx).Connection(func(conn *gorm.DB) error {
			if err := conn.Exec("SELECT pg_advisory_lock(?)", migrationLockID).Error; err != nil {
				return fmt.Errorf("migration lock: %w", err)
			}
			defer conn.Exec("SELECT pg_advisory_unlock(?)", migrationLockID)
			if err := conn.AutoMigrate(models()...); err != nil {
				return fmt.Errorf("migrate: %w", err)
			}
			return nil
		})
	}
	if err := s.db.WithContext(ctx).AutoMigrate(models()...); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}
