package storage_test

import (
	"context"
	"sync"
	"testing"

	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

func TestCounterIncrementsAtomically(t *testing.T) {
	s := storagetest.Open(t)
	ctx := context.Background()
	if v, err := s.GetCounter(ctx, "c"); err != nil || v != 0 {
		t.Fatalf("a fresh counter: %d, %v", v, err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.IncrementCounter(ctx, "c"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if v, err := s.GetCounter(ctx, "c"); err != nil || v != 20 {
		t.Fatalf("after 20 concurrent increments: %d, %v", v, err)
	}
	if v, _ := s.GetCounter(ctx, storage.CounterAppPasswordRevocations); v != 0 {
		t.Fatalf("another counter moved: %d", v)
	}
}
