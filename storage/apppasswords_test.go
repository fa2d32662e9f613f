package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

func appPassword(id, user string, hashByte byte) *storage.AppPassword {
	return &storage.AppPassword{
		ID: id, UserID: user, Name: "phone " + id,
		LookupHash: bytes.Repeat([]byte{hashByte}, 32),
		CreatedAt:  t0,
	}
}

func TestAppPasswordLookupRenameDelete(t *testing.T) {
	s := storagetest.Open(t)
	ctx := context.Background()
	p := appPassword("a1", "alice", 1)
	p.ReadOnly = true
	if err := s.CreateAppPassword(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAppPassword(ctx, appPassword("a2", "bob", 1)); err == nil {
		t.Fatal("a second row with the same lookup hash was inserted")
	}
	got, err := s.GetAppPasswordByHash(ctx, p.LookupHash)
	if err != nil || got.ID != "a1" || got.UserID != "alice" || !got.ReadOnly || got.FilesystemOnly || !got.CreatedAt.Equal(t0) || got.LastUsedAt != nil {
		t.Fatalf("GetAppPasswordByHash = %+v, %v", got, err)
	}
	if _, err := s.GetAppPasswordByHash(ctx, bytes.Repeat([]byte{2}, 32)); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("unknown hash: %v, want ErrNotFound", err)
	}
	if err := s.RenameAppPassword(ctx, "alice", "a1", "laptop"); err != nil {
		t.Fatal(err)
	}
	if err := s.RenameAppPassword(ctx, "bob", "a1", "stolen"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("rename by another user: %v, want ErrNotFound", err)
	}
	if got, _ := s.GetAppPassword(ctx, "alice", "a1"); got == nil || got.Name != "laptop" {
		t.Fatalf("after rename: %+v", got)
	}
	if _, err := s.GetAppPassword(ctx, "bob", "a1"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("get by another user: %v, want ErrNotFound", err)
	}
	if err := s.DeleteAppPassword(ctx, "bob", "a1"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("delete by another user: %v, want ErrNotFound", err)
	}
	if err := s.DeleteAppPassword(ctx, "alice", "a1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAppPassword(ctx, "alice", "a1"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("second delete: %v, want ErrNotFound", err)
	}
	if _, err := s.GetAppPasswordByHash(ctx, p.LookupHash); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("deleted row still found: %v", err)
	}
}

func TestListAndDeleteAppPasswordsOfUser(t *testing.T) {
	s := storagetest.Open(t)
	ctx := context.Background()
	const n = 1203 // more than one delete chunk
	for i := 0; i < n; i++ {
		p := appPassword(fmt.Sprintf("a%04d", i), "alice", 0)
		p.LookupHash = []byte(fmt.Sprintf("alice-%04d", i))
		p.CreatedAt = t0.Add(time.Duration(i) * time.Second)
		if err := s.CreateAppPassword(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateAppPassword(ctx, appPassword("b1", "bob", 9)); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListAppPasswords(ctx, "alice")
	if err != nil || len(list) != n || list[0].ID != "a0000" || list[n-1].ID != fmt.Sprintf("a%04d", n-1) {
		t.Fatalf("ListAppPasswords = %d rows, %v", len(list), err)
	}
	if c, err := s.CountAppPasswords(ctx, "alice"); err != nil || c != n {
		t.Fatalf("CountAppPasswords = %d, %v", c, err)
	}
	ids, err := s.DeleteAppPasswordsOfUser(ctx, "alice")
	if err != nil || len(ids) != n {
		t.Fatalf("DeleteAppPasswordsOfUser = %d ids, %v", len(ids), err)
	}
	if !sort.StringsAreSorted(ids) || ids[0] != "a0000" {
		t.Fatalf("ids not the deleted rows: %v…", ids[:3])
	}
	if list, _ := s.ListAppPasswords(ctx, "alice"); len(list) != 0 {
		t.Fatalf("%d rows left for alice", len(list))
	}
	if list, _ := s.ListAppPasswords(ctx, "bob"); len(list) != 1 {
		t.Fatalf("bob's rows were touched: %d left", len(list))
	}
	if ids, err := s.DeleteAppPasswordsOfUser(ctx, "nobody"); err != nil || len(ids) != 0 {
		t.Fatalf("DeleteAppPasswordsOfUser(nobody) = %v, %v", ids, err)
	}
}

func TestTouchAppPasswordAtMostOncePerInterval(t *testing.T) {
	url := storagetest.URL(t)
	a := storagetest.OpenURL(t, url)
	b := storagetest.OpenURL(t, url)
	ctx := context.Background()
	if err := a.CreateAppPassword(ctx, appPassword("p", "alice", 3)); err != nil {
		t.Fatal(err)
	}
	// Sub-second instants on purpose: the comparison must hold for them on SQLite
	// (text timestamps) as on PostgreSQL.
	now := t0.Add(1500 * time.Millisecond)
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(s *storage.Store) {
			defer wg.Done()
			ok, err := s.TouchAppPassword(ctx, "p", now, "192.0.2.1", time.Minute)
			if err != nil {
				t.Error(err)
			}
			if ok {
				wins.Add(1)
			}
		}([]*storage.Store{a, b}[i%2])
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d concurrent touches wrote, want exactly 1", wins.Load())
	}
	steps := []struct {
		at    time.Duration
		ip    string
		wrote bool
	}{
		{time.Second, "192.0.2.2", false},
		{59*time.Second + 999*time.Millisecond, "192.0.2.2", false},
		{time.Minute, "192.0.2.2", false}, // exactly one interval: not older than it
		{time.Minute + time.Microsecond, "2001:db8::1", true},
		{time.Minute + 30*time.Second, "192.0.2.3", false},
		{3 * time.Minute, "192.0.2.4", true},
	}
	for _, st := range steps {
		ok, err := b.TouchAppPassword(ctx, "p", now.Add(st.at), st.ip, time.Minute)
		if err != nil || ok != st.wrote {
			t.Fatalf("touch at +%v = %v, %v; want %v", st.at, ok, err, st.wrote)
		}
	}
	got, _ := a.GetAppPassword(ctx, "alice", "p")
	if got.LastUsedAt == nil || !got.LastUsedAt.Equal(now.Add(3*time.Minute)) || got.LastClientIP != "192.0.2.4" {
		t.Fatalf("last used = %v from %q", got.LastUsedAt, got.LastClientIP)
	}
	if ok, err := a.TouchAppPassword(ctx, "gone", now.Add(time.Hour), "192.0.2.1", time.Minute); ok || err != nil {
		t.Fatalf("touch of a missing row = %v, %v", ok, err)
	}
}
