package storage_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// The login path's statements (hot.go) run outside gorm: what they write reads
// back through gorm, inside InTx they are part of the transaction (rolled back
// with it), and any number of statement variants works.
func TestHotStatements(t *testing.T) {
	s := storagetest.Open(t)
	ctx := context.Background()
	if err := s.CreateFactor(ctx, &storage.Factor{ID: "f", UserID: "u", Method: "totp", Name: "x", State: storage.FactorActive}); err != nil {
		t.Fatal(err)
	}
	used := t0.Add(90 * time.Second)
	if ok, err := s.AdvanceLastStepFrom(ctx, "f", nil, 100, used); err != nil || !ok {
		t.Fatalf("advance: %v, %v", ok, err)
	}
	f, err := s.GetFactor(ctx, "u", "f")
	if err != nil {
		t.Fatal(err)
	}
	if f.LastStep == nil || *f.LastStep != 100 || f.LastUsedAt == nil || !f.LastUsedAt.Equal(used) {
		t.Fatalf("after advance: last step %v, last used %v; want 100, %v", f.LastStep, f.LastUsedAt, used)
	}

	rollback := errors.New("roll back")
	from := int64(100)
	err = s.InTx(ctx, func(ctx context.Context) error {
		if ok, err := s.AdvanceLastStepFrom(ctx, "f", &from, 101, used); err != nil || !ok {
			return fmt.Errorf("advance in tx: %v, %v", ok, err)
		}
		heads, err := s.ListFactorHeads(ctx, "u", "totp", storage.FactorActive, 2)
		if err != nil || len(heads) != 1 || heads[0].LastStep == nil || *heads[0].LastStep != 101 {
			return fmt.Errorf("the transaction does not see its own update: %+v, %v", heads, err)
		}
		return rollback
	})
	if !errors.Is(err, rollback) {
		t.Fatal(err)
	}
	heads, err := s.ListFactorHeads(ctx, "u", "totp", storage.FactorActive, 2)
	if err != nil || len(heads) != 1 || *heads[0].LastStep != 100 {
		t.Fatalf("after the rollback: %+v, %v; want step 100", heads, err)
	}

	// More statement variants than are kept prepared.
	for n := 1; n <= 40; n++ {
		subjects := make([]storage.ThrottleSubject, n)
		for i := range subjects {
			subjects[i] = storage.ThrottleSubject{Kind: "ip", Key: fmt.Sprintf("192.0.2.%d", i)}
		}
		if got, err := s.GetThrottles(ctx, subjects); err != nil || len(got) != 0 {
			t.Fatalf("%d subjects: %v, %v", n, got, err)
		}
	}
}
