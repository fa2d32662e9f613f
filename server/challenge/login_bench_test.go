package challenge

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/twofactor/twofactor/audit"
	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/natstest"
	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

func cpuNow() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSealedLogin is the storage and audit side of a TOTP login on a sealed
// challenge: Begin, its challenge.begun event (batched), Load, Verify with the
// factor's conditional step update and challenge.accepted recorded in the same
// transaction, and the relay publishing every event to NATS.
// cpu-ns/login counts every goroutine of the process (writer, relay, NATS).
func BenchmarkSealedLogin(b *testing.B) {
	st := storagetest.Open(b)
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	step := int64(10)
	if err := st.CreateFactor(ctx, &storage.Factor{ID: "f1", UserID: "alice", Method: "totp", Name: "phone",
		State: storage.FactorActive, SealedSecret: []byte("sealed"), SecretKeyID: "k1", LastStep: &step, CreatedAt: now, UpdatedAt: now}); err != nil {
		b.Fatal(err)
	}
	cs, err := New(st, storagetest.KeyRing(b), Config{TTL: time.Minute, MaxAttempts: 5}, func() time.Time { return now })
	if err != nil {
		b.Fatal(err)
	}
	nc, js, names := natstest.Start(b)
	relay, err := audit.NewRelay(audit.RelayConfig{Store: st, Events: notify.NewPublisher(js, nc, names)})
	if err != nil {
		b.Fatal(err)
	}
	trail := audit.NewTrail(audit.TrailConfig{Store: st, Stored: relay.Kick})
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go relay.Run(rctx)
	ev := func(name string, i int) audit.Event {
		return audit.Event{ID: fmt.Sprintf("00000000-0000-7000-8000-%012d", i), Time: now, Event: name, UserID: "alice", Method: "totp",
			Details: map[string]string{"challenge_id": "x"}}
	}
	cpu0 := cpuNow()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		from := step + int64(i)
		_, id, err := cs.Begin(ctx, Spec{UserID: "alice", FactorID: "f1", Method: "totp", Sealed: true, FromStep: &from})
		if err != nil {
			b.Fatal(err)
		}
		trail.Record(ctx, ev(notify.EventChallengeBegun, 2*i))
		c, err := cs.Load(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		out, err := cs.Verify(ctx, c, func(ctx context.Context) (bool, error) {
			return st.AdvanceLastStepFrom(ctx, "f1", &from, from+1, now)
		}, nil, func(ctx context.Context, o Outcome) error {
			return trail.RecordTx(ctx, ev(notify.EventChallengeAccepted, 2*i+1))
		})
		if err != nil || out.Result != Accepted {
			b.Fatalf("login %d: %+v, %v", i, out, err)
		}
	}
	if err := trail.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	for {
		if n, err := st.CountPendingAuditEvents(ctx); err != nil || n == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond) // the relay drains
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuNow()-cpu0)/float64(b.N), "cpu-ns/login")
}
