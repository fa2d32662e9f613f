package trusteddevice_test

import (
	"context"
	"testing"
)

// BenchmarkCheckRotate is one remembered login: look up, epoch, rotate (one
// transaction: the conditional UPDATE and the retired token's INSERT).
func BenchmarkCheckRotate(b *testing.B) {
	r := newService(b, nil)
	_, tok := r.issue(b, "alice")
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := r.svc.Check(ctx, "alice", tok, ip)
		if err != nil || !res.Remembered {
			b.Fatalf("Check = %+v, %v", res, err)
		}
		tok = res.Token
	}
}

// BenchmarkCheckUnknown is a well-formed token nobody issued: two index lookups.
func BenchmarkCheckUnknown(b *testing.B) {
	r := newService(b, nil)
	other := newService(b, nil)
	_, tok := other.issue(b, "alice")
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if res, err := r.svc.Check(ctx, "alice", tok, ip); err != nil || res.Reason != "unknown" {
			b.Fatalf("Check = %+v, %v", res, err)
		}
	}
}
