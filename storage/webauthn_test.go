package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

func TestEnsureWebAuthnUserFirstWriterWins(t *testing.T) {
	url := storagetest.URL(t)
	a, b := storagetest.OpenURL(t, url), storagetest.OpenURL(t, url)
	ctx := context.Background()
	got := make([][]byte, 16)
	var wg sync.WaitGroup
	for i := range got {
		wg.Add(1)
		go func(i int, s *storage.Store) {
			defer wg.Done()
			h, err := s.EnsureWebAuthnUser(ctx, "alice", []byte(fmt.Sprintf("handle-%02d", i)), t0)
			if err != nil {
				t.Error(err)
			}
			got[i] = h
		}(i, []*storage.Store{a, b}[i%2])
	}
	wg.Wait()
	for i := range got {
		if !bytes.Equal(got[i], got[0]) || len(got[0]) == 0 {
			t.Fatalf("caller %d got handle %q, caller 0 %q: every caller must see the stored one", i, got[i], got[0])
		}
	}
	other, err := a.EnsureWebAuthnUser(ctx, "bob", []byte("handle-bob"), t0)
	if err != nil || string(other) != "handle-bob" {
		t.Fatalf("bob: %q, %v", other, err)
	}
	if _, err := a.EnsureWebAuthnUser(ctx, "carol", []byte("handle-bob"), t0); err == nil {
		t.Fatal("two users got the same handle")
	}
}

func TestActivateFactorWithDataRefusesDuplicateCredential(t *testing.T) {
	s := storagetest.Open(t)
	ctx := context.Background()
	for _, id := range []string{"f1", "f2"} {
		if err := s.CreateFactor(ctx, &storage.Factor{ID: id, UserID: "u" + id, Method: "webauthn", Name: "k", State: storage.FactorPending}); err != nil {
			t.Fatal(err)
		}
	}
	ok, err := s.ActivateFactorWithData(ctx, "uf1", "f1", t0, []byte(`{"a":1}`), []byte("cred"))
	if err != nil || !ok {
		t.Fatalf("first activation: %v, %v", ok, err)
	}
	if ok, _ := s.ActivateFactorWithData(ctx, "uf1", "f1", t0, []byte(`{}`), []byte("cred2")); ok {
		t.Fatal("an active factor was activated again")
	}
	if _, err := s.ActivateFactorWithData(ctx, "uf2", "f2", t0, []byte(`{}`), []byte("cred")); !errors.Is(err, storage.ErrDuplicate) {
		t.Fatalf("same credential id on another factor: err = %v, want ErrDuplicate", err)
	}
	f, err := s.GetFactorByCredentialID(ctx, []byte("cred"))
	if err != nil || f.ID != "f1" || string(f.Data) != `{"a":1}` || f.State != storage.FactorActive {
		t.Fatalf("stored factor = %+v, %v", f, err)
	}
}

func TestSwapFactorDataExactlyOnce(t *testing.T) {
	url := storagetest.URL(t)
	a, b := storagetest.OpenURL(t, url), storagetest.OpenURL(t, url)
	ctx := context.Background()
	old := []byte(`{"signCount":1}`)
	if err := a.CreateFactor(ctx, &storage.Factor{ID: "f", UserID: "u", Method: "webauthn", Name: "k", State: storage.FactorActive, Data: old}); err != nil {
		t.Fatal(err)
	}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(i int, s *storage.Store) {
			defer wg.Done()
			ok, err := s.SwapFactorData(ctx, "f", old, []byte(fmt.Sprintf(`{"signCount":%d}`, i+2)), t0, true)
			if err != nil {
				t.Error(err)
			}
			if ok {
				wins.Add(1)
			}
		}(i, []*storage.Store{a, b}[i%2])
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d callers swapped the same data, want exactly 1", wins.Load())
	}
	f, _ := a.GetFactor(ctx, "u", "f")
	if bytes.Equal(f.Data, old) || f.LastUsedAt == nil {
		t.Fatalf("factor after swap: data %s, last used %v", f.Data, f.LastUsedAt)
	}
}
