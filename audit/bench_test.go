package audit

import (
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/natstest"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// cpuTime is the process's user+system CPU time so far (the embedded NATS
// server and the store run in this process too).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkTrailToStream is the whole cost of an event recorded outside a
// transaction until it is on the stream: the batched INSERT, the relay's read,
// publish and mark. cpu-ns/event counts every goroutine of the process.
func BenchmarkTrailToStream(b *testing.B) {
	st := storagetest.Open(b)
	nc, js, names := natstest.Start(b)
	relay, err := NewRelay(RelayConfig{Store: st, Events: notify.NewPublisher(js, nc, names)})
	if err != nil {
		b.Fatal(err)
	}
	tr := NewTrail(TrailConfig{Store: st, Stored: relay.Kick})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go relay.Run(ctx)
	b.SetParallelism(4)
	cpu0 := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(benchSeq.Add(1))
			tr.Record(ctx, event(fmt.Sprint("user-", i%100), i))
		}
	})
	if err := tr.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	for {
		p, err := st.CountPendingAuditEvents(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if p == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond) // the relay drains; polling less costs it less CPU
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/event")
}

var benchSeq atomic.Int64

// BenchmarkRecordInTx is the record of an action inside its transaction: one
// more INSERT in a transaction that commits anyway (here a one-row action).
func BenchmarkRecordInTx(b *testing.B) {
	st := storagetest.Open(b)
	tr := NewTrail(TrailConfig{Store: st})
	ctx := context.Background()
	for _, withRecord := range []bool{false, true} {
		b.Run(fmt.Sprint("record=", withRecord), func(b *testing.B) {
			cpu0 := cpuTime()
			for i := 0; i < b.N; i++ {
				user := fmt.Sprint("user-", i%100)
				err := st.InTx(ctx, func(ctx context.Context) error {
					if err := st.SetUserGroups(ctx, user, []string{"g"}); err != nil {
						return err
					}
					if withRecord {
						return tr.Append(ctx, event(user, int(benchSeq.Add(1))))
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}
