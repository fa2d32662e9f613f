package server_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/natstest"
	"github.com/twofactor/twofactor/server"
	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// The trail writes in the background, but loses nothing: whatever the queue size
// (1 forces the synchronous fallback most of the time), every event recorded
// before Flush is in the store and on the audit stream once Flush returns, each
// user's events in the order they were recorded; events recorded after Close are
// written synchronously.
func TestTrailAuditorBatchesWithoutLoss(t *testing.T) {
	for _, tc := range []struct {
		name             string
		queue, batch     int
		workers, perUser int
	}{
		{"defaults", 0, 0, 8, 40},
		{"small batches", 64, 3, 8, 40},
		{"queue of one", 1, 0, 8, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := storagetest.Open(t)
			nc, js, names := natstest.Start(t)
			a := &server.TrailAuditor{Store: st, Events: notify.NewPublisher(js, nc, names), Metrics: server.NewMetrics(),
				QueueSize: tc.queue, BatchSize: tc.batch}
			ctx := context.Background()
			t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
			var wg sync.WaitGroup
			for w := 0; w < tc.workers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < tc.perUser; i++ {
						a.Record(ctx, server.AuditEvent{ID: fmt.Sprintf("00000000-0000-0000-%04d-%012d", w, i), Time: t0.Add(time.Duration(i) * time.Millisecond),
							Event: notify.EventChallengeBegun, UserID: fmt.Sprintf("user-%d", w), Method: "totp",
							Details: map[string]string{"i": fmt.Sprint(i)}})
					}
				}()
			}
			wg.Wait()
			fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := a.Flush(fctx); err != nil {
				t.Fatal(err)
			}
			for w := 0; w < tc.workers; w++ {
				evs, _, err := st.ListAuditEvents(ctx, fmt.Sprintf("user-%d", w), 1000, nil)
				if err != nil || len(evs) != tc.perUser {
					t.Fatalf("user-%d: %d events stored (%v), want %d", w, len(evs), err, tc.perUser)
				}
				if evs[0].Details["i"] != fmt.Sprint(tc.perUser-1) {
					t.Fatalf("user-%d: newest is %v", w, evs[0].Details)
				}
			}
			s, err := js.Stream(ctx, names.AuditStream())
			if err != nil {
				t.Fatal(err)
			}
			info, err := s.Info(ctx)
			if err != nil || info.State.Msgs != uint64(tc.workers*tc.perUser) {
				t.Fatalf("audit stream holds %d messages (%v), want %d", info.State.Msgs, err, tc.workers*tc.perUser)
			}
			if err := a.Close(fctx); err != nil {
				t.Fatal(err)
			}
			a.Record(ctx, server.AuditEvent{ID: "10000000-0000-0000-0000-000000000000", Time: t0, Event: notify.EventChallengeBegun, UserID: "late"})
			if evs, _, _ := st.ListAuditEvents(ctx, "late", 10, nil); len(evs) != 1 {
				t.Fatalf("an event recorded after Close was not written at once: %d stored", len(evs))
			}
			if err := a.Flush(fctx); err != nil {
				t.Fatalf("Flush after Close: %v", err)
			}
		})
	}
}

// A batch the store refuses (here: one event's id already stored) is retried
// event by event: only the bad event is lost, and it is counted.
func TestTrailAuditorBadEventCostsOnlyItself(t *testing.T) {
	st := storagetest.Open(t)
	m := server.NewMetrics()
	a := &server.TrailAuditor{Store: st, Metrics: m, BatchSize: 64}
	ctx := context.Background()
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	dup := "20000000-0000-0000-0000-000000000000"
	if err := st.AddAuditEvent(ctx, &storage.AuditRecord{ID: dup, Time: t0, Event: "x", UserID: "other"}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		id := fmt.Sprintf("30000000-0000-0000-0000-%012d", i)
		if i == 10 {
			id = dup
		}
		a.Record(ctx, server.AuditEvent{ID: id, Time: t0, Event: notify.EventChallengeBegun, UserID: "alice"})
	}
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := a.Close(fctx); err != nil {
		t.Fatal(err)
	}
	if evs, _, _ := st.ListAuditEvents(ctx, "alice", 100, nil); len(evs) != 19 {
		t.Fatalf("%d events stored, want 19", len(evs))
	}
}

// The writer's linger never holds back a flush: with a linger of an hour, Flush
// still returns once the event is stored, and Close once everything is.
func TestTrailAuditorLingerEndsAtFlush(t *testing.T) {
	st := storagetest.Open(t)
	a := &server.TrailAuditor{Store: st, Metrics: server.NewMetrics(), BatchSize: 64, Linger: time.Hour}
	ctx := context.Background()
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	// The deadline only turns a hang into a failure: a flush that waited for the
	// linger would take an hour.
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	a.Record(ctx, server.AuditEvent{ID: "40000000-0000-0000-0000-000000000001", Time: t0, Event: notify.EventChallengeBegun, UserID: "alice"})
	if err := a.FlushStore(fctx); err != nil {
		t.Fatalf("flush behind a lingering batch: %v", err)
	}
	if evs, _, _ := st.ListAuditEvents(ctx, "alice", 10, nil); len(evs) != 1 {
		t.Fatalf("%d events stored after the flush, want 1", len(evs))
	}
	a.Record(ctx, server.AuditEvent{ID: "40000000-0000-0000-0000-000000000002", Time: t0, Event: notify.EventChallengeBegun, UserID: "alice"})
	if err := a.Close(fctx); err != nil {
		t.Fatalf("close behind a lingering batch: %v", err)
	}
	if evs, _, _ := st.ListAuditEvents(ctx, "alice", 10, nil); len(evs) != 2 {
		t.Fatalf("%d events stored after close, want 2", len(evs))
	}
}
