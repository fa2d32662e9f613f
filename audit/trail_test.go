package audit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/natstest"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// The trail writes in the background, but loses nothing: whatever the queue size
// (1 forces the synchronous fallback most of the time), every event recorded
// before Flush is stored once Flush returns, each user's in the order recorded;
// the relay then publishes every row once, in (time, id) order, and marks it
// published; events recorded after Close are written synchronously.
func TestTrailStoresAndRelayPublishesEverything(t *testing.T) {
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
			m := NewMetrics(nil)
			relay := newRelay(t, RelayConfig{Store: st, Events: notify.NewPublisher(js, nc, names), Metrics: m, BatchSize: 50})
			tr := NewTrail(TrailConfig{Store: st, Metrics: m, QueueSize: tc.queue, BatchSize: tc.batch, Stored: relay.Kick})
			ctx := context.Background()
			var wg sync.WaitGroup
			for w := 0; w < tc.workers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < tc.perUser; i++ {
						tr.Record(ctx, event(fmt.Sprintf("user-%d", w), w*1000+i))
					}
				}()
			}
			wg.Wait()
			flush(t, tr)
			total := tc.workers * tc.perUser
			for w := 0; w < tc.workers; w++ {
				evs, _, err := st.ListAuditEvents(ctx, fmt.Sprintf("user-%d", w), 1000, nil)
				if err != nil || len(evs) != tc.perUser || !evs[0].Pending {
					t.Fatalf("user-%d: %d events stored (%v), want %d pending", w, len(evs), err, tc.perUser)
				}
				if evs[0].Details["n"] != fmt.Sprint(w*1000+tc.perUser-1) {
					t.Fatalf("user-%d: newest is %v", w, evs[0].Details)
				}
			}
			runRelay(t, relay)
			waitFor(t, "every row published", func() bool { return pending(t, st) == 0 })
			got := streamEvents(t, js, names)
			if len(got) != total || published(m) != total {
				t.Fatalf("stream holds %d events, relay published %d; want %d", len(got), published(m), total)
			}
			if !slices.IsSortedFunc(got, func(a, b notify.AuditEvent) int { return a.Time.Compare(b.Time) }) {
				t.Fatal("the stream is not in the events' order")
			}
			closeTrail(t, tr)
			tr.Record(ctx, event("late", 99999))
			if evs, _, _ := st.ListAuditEvents(ctx, "late", 10, nil); len(evs) != 1 {
				t.Fatalf("an event recorded after Close was not written at once: %d stored", len(evs))
			}
			if err := tr.Flush(ctx); err != nil {
				t.Fatalf("Flush after Close: %v", err)
			}
		})
	}
}

// A batch the store refuses (here: one event's id already stored) is retried
// event by event: only the bad event is lost, and it is counted and logged.
func TestTrailBadEventCostsOnlyItself(t *testing.T) {
	st := storagetest.Open(t)
	m := NewMetrics(nil)
	var logs syncBuffer
	tr := NewTrail(TrailConfig{Store: st, Metrics: m, BatchSize: 64, Log: newLog(&logs)})
	ctx := context.Background()
	dup := event("other", 10)
	if err := st.AddAuditEvent(ctx, toRecord(dup)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		tr.Record(ctx, event("alice", i))
	}
	closeTrail(t, tr)
	if evs, _, _ := st.ListAuditEvents(ctx, "alice", 100, nil); len(evs) != 19 {
		t.Fatalf("%d events stored, want 19", len(evs))
	}
	if n, c := strings.Count(logs.String(), "audit event not stored"), testutil.ToFloat64(m.lost); n != 1 || c != 1 {
		t.Fatalf("%d losses logged, %v counted; want 1", n, c)
	}
}

// Events recorded without an id or a time (as the device service records them)
// are each stored under a fresh id at the trail's clock, none lost as a
// duplicate, whether written by the writer or in a transaction.
func TestTrailCompletesEventsWithoutID(t *testing.T) {
	st := storagetest.Open(t)
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	tr := NewTrail(TrailConfig{Store: st, Now: func() time.Time { return at }})
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		tr.Record(ctx, Event{Event: "push.answered", UserID: "alice"})
	}
	if err := st.InTx(ctx, func(ctx context.Context) error {
		return tr.RecordTx(ctx, Event{Event: "push.answered", UserID: "alice"}, Event{Event: "push.answered", UserID: "alice"})
	}); err != nil {
		t.Fatal(err)
	}
	closeTrail(t, tr)
	evs, _, err := st.ListAuditEvents(ctx, "alice", 100, nil)
	if err != nil || len(evs) != 5 {
		t.Fatalf("%d events stored (%v), want 5", len(evs), err)
	}
	for _, e := range evs {
		if e.ID == "" || !e.Time.Equal(at) {
			t.Fatalf("stored %+v", e)
		}
	}
}

// The writer's linger never holds back a flush: with a linger of an hour, Flush
// still returns once the event is stored, and Close once everything is.
func TestTrailLingerEndsAtFlush(t *testing.T) {
	st := storagetest.Open(t)
	tr := NewTrail(TrailConfig{Store: st, BatchSize: 64, Linger: time.Hour})
	ctx := context.Background()
	tr.Record(ctx, event("alice", 1))
	flush(t, tr) // a flush that waited for the linger would time out
	if evs, _, _ := st.ListAuditEvents(ctx, "alice", 10, nil); len(evs) != 1 {
		t.Fatalf("%d events stored after the flush, want 1", len(evs))
	}
	tr.Record(ctx, event("alice", 2))
	closeTrail(t, tr)
	if evs, _, _ := st.ListAuditEvents(ctx, "alice", 10, nil); len(evs) != 2 {
		t.Fatalf("%d events stored after close, want 2", len(evs))
	}
}

// Inside a transaction the record is written in it: it is in the store when the
// transaction commits, with no flush (the writer lingers for an hour and is never
// flushed), and gone with the action when the transaction rolls back.
func TestRecordCommitsAndRollsBackWithTheAction(t *testing.T) {
	st := storagetest.Open(t)
	tr := NewTrail(TrailConfig{Store: st, Linger: time.Hour})
	ctx := context.Background()
	err := st.InTx(ctx, func(ctx context.Context) error {
		if err := st.SetUserGroups(ctx, "alice", []string{"staff"}); err != nil {
			return err
		}
		tr.Record(ctx, event("alice", 1))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if evs, _, _ := st.ListAuditEvents(ctx, "alice", 10, nil); len(evs) != 1 || !evs[0].Pending {
		t.Fatalf("committed: %+v, want the one pending record", evs)
	}
	boom := errors.New("boom")
	err = st.InTx(ctx, func(ctx context.Context) error {
		if err := st.SetUserGroups(ctx, "bob", []string{"staff"}); err != nil {
			return err
		}
		if err := tr.Append(ctx, event("bob", 2)); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	groups, _ := st.ListUserGroups(ctx, "bob")
	if evs, _, _ := st.ListAuditEvents(ctx, "bob", 10, nil); len(evs) != 0 || len(groups) != 0 {
		t.Fatalf("rolled back: %d records, groups %v; want neither", len(evs), groups)
	}
}

// A crash (the store closed, the process gone, the trail never flushed nor
// closed) loses no record of an action that committed inside a transaction: the
// next process finds every one pending, and its relay publishes them all.
func TestCrashLosesNoCommittedRecord(t *testing.T) {
	url := storagetest.URL(t)
	st := storagetest.OpenURL(t, url)
	tr := NewTrail(TrailConfig{Store: st, Linger: time.Hour}) // never flushed or closed
	ctx := context.Background()
	const n = 40
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := fmt.Sprintf("user-%d", i)
			err := st.InTx(ctx, func(ctx context.Context) error {
				if err := st.SetUserGroups(ctx, user, []string{"staff"}); err != nil {
					return err
				}
				return tr.Append(ctx, event(user, i))
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := st.Close(); err != nil { // the crash
		t.Fatal(err)
	}

	st2 := storagetest.OpenURL(t, url)
	for i := 0; i < n; i++ {
		user := fmt.Sprintf("user-%d", i)
		groups, _ := st2.ListUserGroups(ctx, user)
		evs, _, err := st2.ListAuditEvents(ctx, user, 10, nil)
		if err != nil || len(groups) != 1 || len(evs) != 1 || !evs[0].Pending {
			t.Fatalf("%s: groups %v, records %+v (%v): want the action and its pending record", user, groups, evs, err)
		}
	}
	nc, js, names := natstest.Start(t)
	m := NewMetrics(nil)
	runRelay(t, newRelay(t, RelayConfig{Store: st2, Events: notify.NewPublisher(js, nc, names), Metrics: m}))
	waitFor(t, "the outbox published", func() bool { return pending(t, st2) == 0 })
	if got := len(streamEvents(t, js, names)); got != n || published(m) != n {
		t.Fatalf("stream holds %d, relay published %d; want %d", got, published(m), n)
	}
}

// A client's hostile strings (over-long, NUL bytes, invalid UTF-8, a megabyte of
// user agent, hundreds of details) are stored cut to their columns, on SQLite and
// PostgreSQL alike (PostgreSQL refuses NUL and invalid UTF-8 in text, and an
// over-long varchar), and published below NATS's payload limit.
func TestHostileFieldsAreStoredAndPublished(t *testing.T) {
	st := storagetest.Open(t)
	nc, js, names := natstest.Start(t)
	e := event("alice\x00", 1)
	e.UserAgent = strings.Repeat("é", 1<<19) + "\x00\xff"
	e.ClientIP = "fe80::1%" + strings.Repeat("x", 100)
	e.RequestID = "\xff\xfe" + strings.Repeat("r", 100)
	e.Details = map[string]string{}
	for i := 0; i < 300; i++ {
		e.Details[fmt.Sprintf("k%03d", i)] = strings.Repeat("v", 1000)
	}
	tr := NewTrail(TrailConfig{Store: st})
	ctx := context.Background()
	tr.Record(ctx, e)
	closeTrail(t, tr)
	evs, _, err := st.ListAuditEvents(ctx, "alice", 10, nil)
	if err != nil || len(evs) != 1 {
		t.Fatalf("stored %d (%v), want 1", len(evs), err)
	}
	r := evs[0]
	if len(r.UserAgent) > maxUserAgent || !utf8.ValidString(r.UserAgent) || len(r.ClientIP) > maxClientIP || len(r.Details) != maxDetails {
		t.Fatalf("stored user agent %d bytes, client ip %d, %d details", len(r.UserAgent), len(r.ClientIP), len(r.Details))
	}
	runRelay(t, newRelay(t, RelayConfig{Store: st, Events: notify.NewPublisher(js, nc, names)}))
	waitFor(t, "the event published", func() bool { return pending(t, st) == 0 })
	if got := streamEvents(t, js, names); len(got) != 1 || got[0].UserAgent != r.UserAgent {
		t.Fatalf("stream: %d events", len(got))
	}
}

// clean always gives valid UTF-8 without NUL, within its bound, and keeps a
// clean string that fits as it is.
func FuzzClean(f *testing.F) {
	for _, s := range []string{"", "abc", "é\x00\xff", strings.Repeat("日本", 40), "\xf0\x9f\x98"} {
		f.Add(s, 7)
	}
	f.Fuzz(func(t *testing.T, s string, n int) {
		if n < 0 || n > 1<<16 {
			return
		}
		got := clean(s, n)
		if !utf8.ValidString(got) || strings.IndexByte(got, 0) >= 0 || len(got) > n {
			t.Fatalf("clean(%q, %d) = %q", s, n, got)
		}
		if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 && len(s) <= n && got != s {
			t.Fatalf("clean(%q, %d) = %q, want it unchanged", s, n, got)
		}
		if !strings.HasPrefix(clean(s, 1<<20), got) {
			t.Fatalf("clean(%q, %d) = %q is not a prefix of the whole cleaned string", s, n, got)
		}
	})
}
