package storage_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// The outbox's queries: pending rows oldest first (time, then id), marked
// published once (a second mark changes nothing), counted.
func TestAuditOutboxPendingAndMark(t *testing.T) {
	st := storagetest.Open(t)
	ctx := context.Background()
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	var recs []*storage.AuditRecord
	for i, off := range []int{3, 1, 2, 1} {
		recs = append(recs, &storage.AuditRecord{ID: fmt.Sprintf("id-%d", i), Time: t0.Add(time.Duration(off) * time.Second),
			Event: "challenge.begun", UserID: "alice", Pending: true})
	}
	recs = append(recs, &storage.AuditRecord{ID: "published", Time: t0, Event: "challenge.begun", UserID: "alice"})
	if err := st.AddAuditEvents(ctx, recs); err != nil {
		t.Fatal(err)
	}
	got, err := st.PendingAuditEvents(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range got {
		ids = append(ids, r.ID)
	}
	if fmt.Sprint(ids) != "[id-1 id-3 id-2]" {
		t.Fatalf("pending order %v, want [id-1 id-3 id-2]", ids)
	}
	if n, err := st.MarkAuditEventsPublished(ctx, ids); err != nil || n != 3 {
		t.Fatalf("marked %d, %v", n, err)
	}
	if n, err := st.MarkAuditEventsPublished(ctx, ids); err != nil || n != 0 {
		t.Fatalf("marked again %d, %v: want 0", n, err)
	}
	if n, err := st.CountPendingAuditEvents(ctx); err != nil || n != 1 {
		t.Fatalf("%d pending (%v), want 1", n, err)
	}
	if left, _ := st.PendingAuditEvents(ctx, 10); len(left) != 1 || left[0].ID != "id-0" {
		t.Fatalf("left %+v", left)
	}
}

// Of relays racing for the lease from two stores, exactly one wins each round;
// the holder renews it, others get ErrLeaseHeld until it expires or is released.
func TestAuditRelayLease(t *testing.T) {
	url := storagetest.URL(t)
	a, b := storagetest.OpenURL(t, url), storagetest.OpenURL(t, url)
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	var won atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := a
			if i%2 == 1 {
				st = b
			}
			err := st.AcquireAuditRelayLease(ctx, fmt.Sprint("holder-", i), now, time.Minute)
			switch {
			case err == nil:
				won.Add(1)
			case !errors.Is(err, storage.ErrLeaseHeld):
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d relays won the lease, want 1", won.Load())
	}
	var l storage.AuditRelayLease
	if err := a.DB(ctx).First(&l).Error; err != nil {
		t.Fatal(err)
	}
	holder := l.Holder
	if err := b.AcquireAuditRelayLease(ctx, holder, now.Add(30*time.Second), time.Minute); err != nil {
		t.Fatalf("renewal: %v", err)
	}
	if err := a.AcquireAuditRelayLease(ctx, "other", now.Add(80*time.Second), time.Minute); !errors.Is(err, storage.ErrLeaseHeld) {
		t.Fatalf("taken before the renewed lease expired: %v", err)
	}
	if err := a.ReleaseAuditRelayLease(ctx, "other"); err != nil { // not the holder: no effect
		t.Fatal(err)
	}
	if err := a.AcquireAuditRelayLease(ctx, "other", now.Add(80*time.Second), time.Minute); !errors.Is(err, storage.ErrLeaseHeld) {
		t.Fatalf("a release by a non-holder freed the lease: %v", err)
	}
	if err := a.ReleaseAuditRelayLease(ctx, holder); err != nil {
		t.Fatal(err)
	}
	if err := a.AcquireAuditRelayLease(ctx, "other", now.Add(80*time.Second), time.Minute); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

// oldAuditRecord is the audit table as it was before the outbox: no pending column.
type oldAuditRecord struct {
	ID    string    `gorm:"primaryKey;size:36"`
	Time  time.Time `gorm:"column:occurred_at;not null"`
	Event string    `gorm:"size:64;not null"`
}

func (oldAuditRecord) TableName() string { return "audit_events" }

// Rows written before the pending column existed were published by the old
// trail: after the upgrade's Migrate they read as published, so the relay does
// not publish the whole history again.
func TestUpgradeLeavesOldAuditRowsPublished(t *testing.T) {
	st, err := storage.Open(context.Background(), storagetest.URL(t), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	db := st.DB(ctx).Session(&gorm.Session{})
	if err := db.AutoMigrate(&oldAuditRecord{}); err != nil {
		t.Fatal(err)
	}
	if err := db.Create(&oldAuditRecord{ID: "old", Time: time.Now().UTC(), Event: "challenge.begun"}).Error; err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := st.CountPendingAuditEvents(ctx); err != nil || n != 0 {
		t.Fatalf("%d old rows pending (%v), want 0", n, err)
	}
}

// The relay's hand-scanned read gives every column exactly as the GORM model
// reads it (details, empty and NULL columns, times), and marking names any
// number of rows, beyond one UPDATE's width too, changing only pending ones.
func TestAuditOutboxHotReadMatchesModel(t *testing.T) {
	st := storagetest.Open(t)
	ctx := context.Background()
	t0 := time.Date(2026, 12, 3, 9, 30, 0, 123456000, time.UTC)
	var recs []*storage.AuditRecord
	for i := range 300 {
		r := &storage.AuditRecord{ID: fmt.Sprintf("ev-%03d", i), Time: t0.Add(time.Duration(i) * time.Millisecond),
			Event: "challenge.verified", UserID: fmt.Sprint("u", i), Pending: i%7 != 3}
		if i%2 == 0 {
			r.Actor, r.Caller, r.Method, r.Result = "svc", "caller-cn", "totp", "ok"
			r.ClientIP, r.UserAgent, r.RequestID = "192.0.2.7", "agent/1", "req-1"
			r.Details = map[string]string{"factor_id": "f1", "n": fmt.Sprint(i)}
		}
		recs = append(recs, r)
	}
	if err := st.AddAuditEvents(ctx, recs); err != nil {
		t.Fatal(err)
	}
	got, err := st.PendingAuditEvents(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var want []storage.AuditRecord
	if err := st.DB(ctx).Where("pending").Order("occurred_at").Order("id").Find(&want).Error; err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || len(got) != 300-43 {
		t.Fatalf("%d pending rows read, GORM reads %d, want %d", len(got), len(want), 300-43)
	}
	for i := range got {
		g, w := got[i], want[i]
		if !g.Time.Equal(w.Time) || !g.Time.Equal(t0.Add(time.Duration(fmtIndex(t, g.ID))*time.Millisecond)) {
			t.Fatalf("row %d time %v, GORM %v", i, g.Time, w.Time)
		}
		g.Time, w.Time = time.Time{}, time.Time{}
		if fmt.Sprintf("%#v", g) != fmt.Sprintf("%#v", w) {
			t.Fatalf("row %d:\n hot  %#v\n gorm %#v", i, g, w)
		}
	}
	if lim, _ := st.PendingAuditEvents(ctx, 5); len(lim) != 5 || lim[4].ID != got[4].ID {
		t.Fatalf("limit 5: %d rows", len(lim))
	}
	var ids []string
	for _, r := range recs { // published ones too: they are not counted
		ids = append(ids, r.ID)
	}
	if n, err := st.MarkAuditEventsPublished(ctx, ids[:3]); err != nil || n != 3 {
		t.Fatalf("marked %d of the first 3, %v", n, err)
	}
	if n, err := st.MarkAuditEventsPublished(ctx, ids); err != nil || n != 300-43-3 {
		t.Fatalf("marked %d of 300 (%v), want %d", n, err, 300-43-3)
	}
	if n, err := st.CountPendingAuditEvents(ctx); err != nil || n != 0 {
		t.Fatalf("%d pending (%v), want 0", n, err)
	}
}

func fmtIndex(t *testing.T, id string) int {
	t.Helper()
	var i int
	if _, err := fmt.Sscanf(id, "ev-%d", &i); err != nil {
		t.Fatal(err)
	}
	return i
}
