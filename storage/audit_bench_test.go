package storage_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// BenchmarkAddAuditEvents writes the audit trail writer's batches (outside a
// transaction) of 1, 13 and 64 events, as logins' begun events arrive; per
// event.
func BenchmarkAddAuditEvents(b *testing.B) {
	for _, size := range []int{1, 13, 64} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			st := storagetest.Open(b)
			ctx := context.Background()
			t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			batch := make([]*storage.AuditRecord, size)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += size {
				for j := range batch {
					batch[j] = &storage.AuditRecord{ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i+j), Time: t0, Event: "challenge.begun",
						UserID: "bench-00000042", Method: "totp", ClientIP: "198.51.100.7", RequestID: "r", Pending: true,
						Details: map[string]string{"challenge_id": "c"}}
				}
				if err := st.AddAuditEvents(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
