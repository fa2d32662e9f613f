package storage_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// linear blocks for failures seconds and locks at 10.
func linear(failures int, now time.Time) (time.Time, bool) {
	return now.Add(time.Duration(failures) * time.Second), failures >= 10
}

func TestThrottleCountsAcrossReplicasWithoutLosingOne(t *testing.T) {
	url := storagetest.URL(t)
	a, b := storagetest.OpenURL(t, url), storagetest.OpenURL(t, url)
	ctx := context.Background()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		st := a
		if i%2 == 1 {
			st = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := st.RecordThrottleFailure(ctx, storage.ThrottleUser, "alice", now, 12*time.Hour, linear)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := a.GetThrottle(ctx, storage.ThrottleUser, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if got.Failures != n || !got.Locked || !got.BlockedUntil.Equal(now.Add(n*time.Second)) {
		t.Fatalf("after %d concurrent failures: %+v", n, got)
	}
}

func TestThrottleWindowResetAndClear(t *testing.T) {
	st := storagetest.Open(t)
	ctx := context.Background()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := 0; i < 3; i++ {
		if _, _, err := st.RecordThrottleFailure(ctx, storage.ThrottleIP, "203.0.113.0/32", now, time.Hour, linear); err != nil {
			t.Fatal(err)
		}
	}
	// A longer delay already in force is never shortened.
	short := func(int, time.Time) (time.Time, bool) { return now, false }
	got, _, err := st.RecordThrottleFailure(ctx, storage.ThrottleIP, "203.0.113.0/32", now, time.Hour, short)
	if err != nil || got.Failures != 4 || !got.BlockedUntil.Equal(now.Add(3*time.Second)) {
		t.Fatalf("fourth failure: %+v %v", got, err)
	}
	// The row the upsert hands back is the row stored, as gorm reads it.
	if stored, err := st.GetThrottle(ctx, storage.ThrottleIP, "203.0.113.0/32"); err != nil || stored.Failures != got.Failures ||
		!stored.FirstFailure.Equal(got.FirstFailure) || !stored.LastFailure.Equal(got.LastFailure) ||
		!stored.BlockedUntil.Equal(got.BlockedUntil) || stored.Locked != got.Locked {
		t.Fatalf("returned %+v, stored %+v (%v)", got, stored, err)
	}
	later := now.Add(2 * time.Hour)
	got, _, err = st.RecordThrottleFailure(ctx, storage.ThrottleIP, "203.0.113.0/32", later, time.Hour, linear)
	if err != nil || got.Failures != 1 || !got.FirstFailure.Equal(later) {
		t.Fatalf("a failure after the window starts again: %+v %v", got, err)
	}
	if n, err := st.DeleteThrottlesBefore(ctx, later); err != nil || n != 0 {
		t.Fatalf("sweep removed a live state: %d %v", n, err)
	}
	if ok, err := st.ResetThrottle(ctx, storage.ThrottleIP, "203.0.113.0/32"); !ok || err != nil {
		t.Fatalf("reset: %v %v", ok, err)
	}
	if _, err := st.GetThrottle(ctx, storage.ThrottleIP, "203.0.113.0/32"); err != storage.ErrNotFound {
		t.Fatalf("after reset: %v", err)
	}
}

func TestAuditEventsPageAndSurviveUserDeletion(t *testing.T) {
	st := storagetest.Open(t)
	ctx := context.Background()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := 0; i < 7; i++ {
		r := &storage.AuditRecord{ID: fmt.Sprintf("00000000-0000-0000-0000-%012d", i), Time: t0.Add(time.Duration(i/2) * time.Second),
			Event: "challenge.rejected", UserID: "alice", Details: map[string]string{"i": fmt.Sprint(i)}}
		if err := st.AddAuditEvent(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.AddAuditEvent(ctx, &storage.AuditRecord{ID: "10000000-0000-0000-0000-000000000000", Time: t0, Event: "x", UserID: "bob"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	var seen []string
	var cur *storage.AuditCursor
	for page := 0; ; page++ {
		evs, next, err := st.ListAuditEvents(ctx, "alice", 3, cur)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			seen = append(seen, e.Details["i"])
		}
		if next == nil {
			break
		}
		cur = next
	}
	if fmt.Sprint(seen) != "[6 5 4 3 2 1 0]" {
		t.Fatalf("pages newest first: %v", seen)
	}
	if n, err := st.DeleteAuditEventsBefore(ctx, t0.Add(time.Second)); err != nil || n != 3 {
		t.Fatalf("retention removed %d, %v", n, err)
	}
}

// AddAuditEvents writes a batch in one statement, all or nothing: a batch with
// a duplicate id stores none of its events.
func TestAddAuditEventsBatch(t *testing.T) {
	st := storagetest.Open(t)
	ctx := context.Background()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600))
	var batch []*storage.AuditRecord
	for i := 0; i < 50; i++ {
		batch = append(batch, &storage.AuditRecord{ID: fmt.Sprintf("00000000-0000-0000-0000-%012d", i), Time: t0.Add(time.Duration(i) * time.Second),
			Event: "challenge.accepted", UserID: "alice", Details: map[string]string{"i": fmt.Sprint(i)}})
	}
	if err := st.AddAuditEvents(ctx, batch); err != nil {
		t.Fatal(err)
	}
	evs, _, err := st.ListAuditEvents(ctx, "alice", 100, nil)
	if err != nil || len(evs) != 50 || evs[0].Details["i"] != "49" || !evs[49].Time.Equal(t0) {
		t.Fatalf("stored %d events (%v), want 50 newest first", len(evs), err)
	}
	dup := []*storage.AuditRecord{
		{ID: "20000000-0000-0000-0000-000000000000", Time: t0, Event: "x", UserID: "bob"},
		{ID: batch[0].ID, Time: t0, Event: "x", UserID: "bob"},
	}
	if err := st.AddAuditEvents(ctx, dup); err == nil {
		t.Fatal("a batch with a duplicate id was accepted")
	}
	if evs, _, _ := st.ListAuditEvents(ctx, "bob", 10, nil); len(evs) != 0 {
		t.Fatalf("a failed batch stored %d events", len(evs))
	}
	if err := st.AddAuditEvents(ctx, nil); err != nil {
		t.Fatal(err)
	}
}
