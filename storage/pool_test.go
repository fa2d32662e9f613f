package storage_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// While a transaction holds the database's writer, reads still answer (on
// SQLite they go to the read pool, not to the one writer connection), and a write
// outside the transaction waits for it instead of failing as busy.
func TestReadsBesideAnOpenTransaction(t *testing.T) {
	s := storagetest.Open(t)
	ctx := context.Background()
	f := func(id string) *storage.Factor {
		return &storage.Factor{ID: id, UserID: "u", Method: "totp", Name: id, State: storage.FactorActive, CreatedAt: t0, UpdatedAt: t0}
	}
	if err := s.CreateFactor(ctx, f("before")); err != nil {
		t.Fatal(err)
	}
	inTx, release, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- s.InTx(ctx, func(ctx context.Context) error {
			if err := s.CreateFactor(ctx, f("in-tx")); err != nil {
				return err
			}
			close(inTx)
			<-release
			return nil
		})
	}()
	<-inTx
	// The deadline only turns a hang (a read queued behind the writer) into a
	// failure; it measures nothing.
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	got, err := s.GetFactor(rctx, "u", "before")
	if err != nil || got.Name != "before" {
		t.Fatalf("read beside the open transaction: %+v, %v", got, err)
	}
	if _, err := s.GetFactor(rctx, "u", "in-tx"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a read saw the open transaction's row: %v", err)
	}
	wrote := make(chan error, 1)
	go func() { wrote <- s.CreateFactor(ctx, f("after")) }()
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-wrote; err != nil {
		t.Fatalf("a write beside the transaction: %v", err)
	}
	for _, id := range []string{"in-tx", "after"} {
		if _, err := s.GetFactor(ctx, "u", id); err != nil {
			t.Fatalf("%s after the commit: %v", id, err)
		}
	}
}
