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
