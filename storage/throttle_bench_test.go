package storage_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// BenchmarkRecordThrottleFailure counts one failure of a subject, as every wrong
// answer does, on the database storagetest gives (SQLite, or PostgreSQL with
// TWOFACTOR_TEST_DATABASE_URL); the subjects rotate over 1 000 networks.
func BenchmarkRecordThrottleFailure(b *testing.B) {
	st := storagetest.Open(b)
	ctx := context.Background()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("198.51.%d.0/24", i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, _, err := st.RecordThrottleFailure(ctx, storage.ThrottleIP, keys[i%len(keys)], now, time.Hour, linear); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkResetThrottle resets a subject that has no count, as every login by
// a high-entropy factor (backup and admin codes) does for its user.
func BenchmarkResetThrottle(b *testing.B) {
	st := storagetest.Open(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := st.ResetThrottle(ctx, storage.ThrottleUser, fmt.Sprintf("user-%d", i%1000)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCountUnusedBackupCodes counts a user's unused codes, as a
// backup-code login's BeginChallenge does.
func BenchmarkCountUnusedBackupCodes(b *testing.B) {
	st := storagetest.Open(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := st.CountUnusedBackupCodes(ctx, fmt.Sprintf("user-%d", i%1000)); err != nil {
			b.Fatal(err)
		}
	}
}
