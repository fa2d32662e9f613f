package audit

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/natstest"
	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// recordingPublisher remembers the ids it was given, in order.
type recordingPublisher struct {
	Publisher
	mu  sync.Mutex
	ids []string
}

func (p *recordingPublisher) PublishAuditAsync(ev notify.AuditEvent) (*notify.AuditAck, error) {
	p.mu.Lock()
	p.ids = append(p.ids, ev.ID)
	p.mu.Unlock()
	return p.Publisher.PublishAuditAsync(ev)
}

func (p *recordingPublisher) published() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.ids...)
}

// timerRequest is one timer a relay asked the test for.
type timerRequest struct {
	d    time.Duration
	fire chan time.Time
}

// A kicked relay lingers before its round, and the rows stored during the
// linger go in that same round, in order; the kicks that came meanwhile do not
// make another round. The timers are the test's: nothing waits for real time.
func TestRelayLingersAfterAKick(t *testing.T) {
	st := storagetest.Open(t)
	nc, js, names := natstest.Start(t)
	pub := &recordingPublisher{Publisher: notify.NewPublisher(js, nc, names)}
	const linger, interval = 17 * time.Millisecond, time.Hour
	relay := newRelay(t, RelayConfig{Store: st, Events: pub, Linger: linger, Interval: interval})
	timers := make(chan timerRequest)
	relay.after = func(d time.Duration) (<-chan time.Time, func() bool) {
		tr := timerRequest{d: d, fire: make(chan time.Time, 1)}
		timers <- tr
		return tr.fire, func() bool { return true }
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); relay.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		for {
			select {
			case <-timers: // a timer asked for while stopping
			case <-done:
				return
			}
		}
	})
	next := func(want time.Duration) timerRequest {
		t.Helper()
		select {
		case tr := <-timers:
			if tr.d != want {
				t.Fatalf("relay asked for a %v timer, want %v", tr.d, want)
			}
			return tr
		case <-time.After(10 * time.Second): // a bound on a broken relay, not a timed assertion
			t.Fatalf("relay asked for no %v timer", want)
			return timerRequest{}
		}
	}
	store := func(from, n int) {
		t.Helper()
		var recs []*storage.AuditRecord
		for i := from; i < from+n; i++ {
			recs = append(recs, &storage.AuditRecord{ID: fmt.Sprintf("ev-%03d", i), Time: t0.Add(time.Duration(i) * time.Second),
				Event: "challenge.begun", UserID: "alice", Pending: true})
		}
		if err := st.AddAuditEvents(context.Background(), recs); err != nil {
			t.Fatal(err)
		}
	}
	pending := func() int64 {
		t.Helper()
		n, err := st.CountPendingAuditEvents(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	next(interval) // the first round found nothing; idle
	store(0, 3)
	relay.Kick()
	l := next(linger) // kicked: lingering, not publishing yet
	if n := pending(); n != 3 || len(pub.published()) != 0 {
		t.Fatalf("during the linger: %d pending, %d published; want 3 and 0", n, len(pub.published()))
	}
	store(3, 5)
	relay.Kick() // absorbed by this round
	l.fire <- time.Time{}
	next(interval) // one round, then idle again
	got := pub.published()
	if fmt.Sprint(got) != "[ev-000 ev-001 ev-002 ev-003 ev-004 ev-005 ev-006 ev-007]" {
		t.Fatalf("one round published %v, want ev-000…ev-007 in order", got)
	}
	if n := pending(); n != 0 {
		t.Fatalf("%d pending after the round", n)
	}
	if len(relay.kick) != 0 {
		t.Fatal("a kick that came during the linger is left for another round")
	}

	// Linger < 0: a kick starts the round at once.
	relay.cfg.Linger = -1
	store(8, 1)
	relay.Kick()
	next(interval)
	if got := pub.published(); len(got) != 9 || got[8] != "ev-008" {
		t.Fatalf("without a linger: published %v", got)
	}
}
