package apppasswords_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/twofactor/twofactor/providers/apppasswords"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// BenchmarkVerify measures the verify path on the database storagetest gives
// (SQLite unless TWOFACTOR_TEST_DATABASE_URL names a PostgreSQL server), with
// 1000 app passwords of 100 users stored. The clock stands still, so last use is
// written once and the loop measures lookups.
func BenchmarkVerify(b *testing.B) {
	for _, m := range []struct {
		name string
		size int
	}{{"cached", 10000}, {"uncached", 0}} {
		b.Run(m.name, func(b *testing.B) {
			ctx := context.Background()
			r := newReplica(b, storagetest.URL(b), storagetest.KeyRing(b), m.size, nil)
			var passwords []string
			for i := 0; i < 1000; i++ {
				_, pw, err := r.svc.Issue(ctx, fmt.Sprintf("user%d", i%100), "sync", apppasswords.Scope{})
				if err != nil {
					b.Fatal(err)
				}
				passwords = append(passwords, pw)
			}
			b.Run("serial", func(b *testing.B) {
				i := 0
				for b.Loop() {
					if res, err := r.svc.Verify(ctx, fmt.Sprintf("user%d", i%100), passwords[i%1000], "192.0.2.1"); err != nil || !res.Valid {
						b.Fatalf("Verify = %+v, %v", res, err)
					}
					i++
				}
			})
			b.Run("parallel", func(b *testing.B) {
				b.RunParallel(func(pb *testing.PB) {
					i := 0
					for pb.Next() {
						if res, err := r.svc.Verify(ctx, fmt.Sprintf("user%d", i%100), passwords[i%1000], "192.0.2.1"); err != nil || !res.Valid {
							b.Errorf("Verify = %+v, %v", res, err)
							return
						}
						i++
					}
				})
			})
			b.Run("unknown", func(b *testing.B) {
				for b.Loop() {
					if res, _ := r.svc.Verify(ctx, "user1", "tfap_0123456789abcdefghjkmnpqrs38f93sc", "192.0.2.1"); res.Valid {
						b.Fatal("accepted")
					}
				}
			})
			b.Run("malformed", func(b *testing.B) {
				for b.Loop() {
					if res, _ := r.svc.Verify(ctx, "user1", "correct horse battery staple", "192.0.2.1"); res.Valid {
						b.Fatal("accepted")
					}
				}
			})
		})
	}
}
