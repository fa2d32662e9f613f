package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/twofactor/twofactor/internal/testfix"
	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/storage"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// syncBuffer is the shared log capture (a name kept for the tests that use it).
type syncBuffer = testfix.LogBuffer

func newLog(buf *syncBuffer) *slog.Logger { return buf.Logger() }

// event is a test event with a fixed id (ordered by n) and time.
func event(user string, n int) Event {
	return Event{ID: fmt.Sprintf("00000000-0000-7000-8000-%012d", n), Time: t0.Add(time.Duration(n) * time.Microsecond),
		Event: notify.EventChallengeBegun, UserID: user, Method: "totp", Details: map[string]string{"n": fmt.Sprint(n)}}
}

// waitFor polls cond until it holds, failing the test after 30 s. It waits on a
// real condition (rows published, a relay failing), never on luck.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// streamEvents reads every message of the audit stream, in stream order.
func streamEvents(t *testing.T, js jetstream.JetStream, names notify.Names) []notify.AuditEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, names.AuditStream())
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []notify.AuditEvent
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		e, err := notify.DecodeAuditEvent(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if m.Header.Get(jetstream.MsgIDHeader) != e.ID {
			t.Fatalf("message %d: id header %q, event id %q", seq, m.Header.Get(jetstream.MsgIDHeader), e.ID)
		}
		out = append(out, e)
	}
	return out
}

// streamCount is the number of messages the audit stream holds.
func streamCount(t *testing.T, js jetstream.JetStream, names notify.Names) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, names.AuditStream())
	if err != nil {
		return 0 // NATS not back yet
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0
	}
	return info.State.Msgs
}

func pending(t *testing.T, st *storage.Store) int64 {
	t.Helper()
	n, err := st.CountPendingAuditEvents(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func published(m *Metrics) int { return int(testutil.ToFloat64(m.published)) }

// runRelay runs r until the test ends (or stop is called), and waits for it.
func runRelay(t *testing.T, r *Relay) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func newRelay(t *testing.T, cfg RelayConfig) *Relay {
	t.Helper()
	if cfg.Interval == 0 {
		cfg.Interval = 10 * time.Millisecond
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff, cfg.MaxBackoff = 5*time.Millisecond, 50*time.Millisecond
	}
	r, err := NewRelay(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func flush(t *testing.T, tr *Trail) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func closeTrail(t *testing.T, tr *Trail) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.Close(ctx); err != nil {
		t.Fatal(err)
	}
}
