package audit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/natstest"
	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// Two replicas' relays over one database (two Stores on one PostgreSQL schema or
// SQLite file) publish each row exactly once: only the lease holder publishes
// (the other's round answers ErrLeaseHeld), and when it stops, releasing the
// lease, the other takes over at once. The relays' own counts of what they
// published add up to the rows, not merely the stream's deduplicated count.
func TestTwoRelaysPublishEachRowOnce(t *testing.T) {
	url := storagetest.URL(t)
	stA, stB := storagetest.OpenURL(t, url), storagetest.OpenURL(t, url)
	nc, js, names := natstest.Start(t)
	ncB := natstest.Dial(t, nc)
	jsB, err := jetstream.New(ncB)
	if err != nil {
		t.Fatal(err)
	}
	mA, mB := NewMetrics(nil), NewMetrics(nil)
	relayA := newRelay(t, RelayConfig{Store: stA, Events: notify.NewPublisher(js, nc, names), Metrics: mA, Holder: "a", BatchSize: 16})
	relayB := newRelay(t, RelayConfig{Store: stB, Events: notify.NewPublisher(jsB, ncB, names), Metrics: mB, Holder: "b", BatchSize: 16})
	trA := NewTrail(TrailConfig{Store: stA, Stored: relayA.Kick})
	trB := NewTrail(TrailConfig{Store: stB, Stored: relayB.Kick})
	ctx := context.Background()
	record := func(from, to int) {
		var wg sync.WaitGroup
		for i := from; i < to; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tr := trA
				if i%2 == 1 {
					tr = trB
				}
				tr.Record(ctx, event(fmt.Sprintf("user-%d", i%7), i))
			}()
		}
		wg.Wait()
		flush(t, trA)
		flush(t, trB)
	}

	// A holds the lease: B's round is refused while A's lease runs.
	record(0, 10)
	if n, err := relayA.Publish(ctx); err != nil || n != 10 {
		t.Fatalf("relay a: %d published, %v", n, err)
	}
	record(10, 20)
	if n, err := relayB.Publish(ctx); !errors.Is(err, storage.ErrLeaseHeld) || n != 0 {
		t.Fatalf("relay b while a holds the lease: %d published, %v; want ErrLeaseHeld", n, err)
	}

	// Both run; the rows go out once.
	stopA := runRelay(t, relayA)
	runRelay(t, relayB)
	record(20, 300)
	waitFor(t, "300 rows published", func() bool { return pending(t, stA) == 0 && streamCount(t, js, names) == 300 })
	if published(mB) != 0 {
		t.Fatalf("relay b published %d rows while a held the lease", published(mB))
	}

	// A stops (releasing the lease): B takes over.
	stopA()
	record(300, 400)
	waitFor(t, "400 rows published", func() bool { return pending(t, stB) == 0 && streamCount(t, js, names) == 400 })
	if a, b := published(mA), published(mB); a+b != 400 || b == 0 {
		t.Fatalf("relays published a=%d b=%d, want 400 in all (each row once), b taking over", a, b)
	}
	ids := map[string]bool{}
	for _, e := range streamEvents(t, js, names) {
		if ids[e.ID] {
			t.Fatalf("event %s twice on the stream", e.ID)
		}
		ids[e.ID] = true
	}
	if len(ids) != 400 {
		t.Fatalf("%d distinct events on the stream, want 400", len(ids))
	}
}

// A relay reads its rows before it takes the lease (an idle replica writes no
// lease); the holder it takes over from may publish and mark those rows between
// that read and the takeover. The new holder reads again under the lease and
// sends none of them a second time. Here B's clock, read when it takes the
// lease, is where A publishes the rows B has read and stops.
func TestTakeoverRereadsUnderTheLease(t *testing.T) {
	url := storagetest.URL(t)
	stA, stB := storagetest.OpenURL(t, url), storagetest.OpenURL(t, url)
	nc, js, names := natstest.Start(t)
	mA, mB := NewMetrics(nil), NewMetrics(nil)
	relayA := newRelay(t, RelayConfig{Store: stA, Events: notify.NewPublisher(js, nc, names), Metrics: mA, Holder: "a"})
	ctx := context.Background()
	var handedOver atomic.Bool
	relayB := newRelay(t, RelayConfig{Store: stB, Events: notify.NewPublisher(js, nc, names), Metrics: mB, Holder: "b",
		Now: func() time.Time {
			if handedOver.CompareAndSwap(false, true) {
				if n, err := relayA.Publish(ctx); err != nil || n != 10 {
					t.Errorf("relay a before the takeover: %d published, %v", n, err)
				}
				relayA.release()
			}
			return time.Now()
		}})
	tr := NewTrail(TrailConfig{Store: stA})
	for i := 0; i < 10; i++ {
		tr.Record(ctx, event("alice", i))
	}
	flush(t, tr)
	if n, err := relayA.Publish(ctx); err != nil || n != 10 {
		t.Fatalf("relay a: %d published, %v", n, err)
	}
	for i := 10; i < 20; i++ {
		tr.Record(ctx, event("alice", i))
	}
	flush(t, tr)

	if n, err := relayB.Publish(ctx); err != nil || n != 0 {
		t.Fatalf("relay b taking over: %d published, %v; want 0 (a published them)", n, err)
	}
	if !handedOver.Load() {
		t.Fatal("relay b never took the lease: the test saw no takeover")
	}
	if a, b := published(mA), published(mB); a != 20 || b != 0 {
		t.Fatalf("relays published a=%d b=%d, want 20 and 0 (each row once)", a, b)
	}
	if n := pending(t, stB); n != 0 {
		t.Fatalf("%d rows pending", n)
	}
	tr.Record(ctx, event("alice", 20))
	flush(t, tr)
	if n, err := relayB.Publish(ctx); err != nil || n != 1 {
		t.Fatalf("relay b holding the lease: %d published, %v; want the new row", n, err)
	}
}

// A relay whose holder died (it never released) is taken over when its lease
// expires, by the other relay's clock.
func TestRelayLeaseExpires(t *testing.T) {
	url := storagetest.URL(t)
	stA, stB := storagetest.OpenURL(t, url), storagetest.OpenURL(t, url)
	nc, js, names := natstest.Start(t)
	pub := notify.NewPublisher(js, nc, names)
	var now atomic.Int64
	now.Store(t0.UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	a := newRelay(t, RelayConfig{Store: stA, Events: pub, Holder: "a", Now: clock, LeaseTTL: time.Minute})
	b := newRelay(t, RelayConfig{Store: stB, Events: pub, Holder: "b", Now: clock, LeaseTTL: time.Minute})
	ctx := context.Background()
	tr := NewTrail(TrailConfig{Store: stA})
	tr.Record(ctx, event("alice", 1))
	flush(t, tr)
	if n, err := a.Publish(ctx); n != 1 || err != nil {
		t.Fatalf("a: %d, %v", n, err)
	}
	tr.Record(ctx, event("alice", 2))
	flush(t, tr)
	now.Add(int64(59 * time.Second))
	if _, err := b.Publish(ctx); !errors.Is(err, storage.ErrLeaseHeld) {
		t.Fatalf("b before a's lease expired: %v", err)
	}
	now.Add(int64(2 * time.Second))
	if n, err := b.Publish(ctx); n != 1 || err != nil {
		t.Fatalf("b after a's lease expired: %d, %v", n, err)
	}
	if _, err := a.Publish(ctx); err != nil {
		t.Fatalf("a with nothing left to publish: %v", err) // no rows: no lease asked for
	}
	tr.Record(ctx, event("alice", 3))
	flush(t, tr)
	if _, err := a.Publish(ctx); !errors.Is(err, storage.ErrLeaseHeld) {
		t.Fatalf("a after b took the lease: %v", err)
	}
}

// testNATSToken is the embedded test server's client token (a TCP listener needs one).
const testNATSToken = "relay-test-token-0123456789abcdefghij"

// restartableNATS is an embedded NATS server with a TCP listener and a file
// store that a test can stop and start again on the same port and folder, as a
// NATS restart does.
type restartableNATS struct {
	t    *testing.T
	addr string
	dir  string
	emb  *notify.Embedded
}

func startRestartableNATS(t *testing.T) *restartableNATS {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &restartableNATS{t: t, addr: l.Addr().String(), dir: filepath.Join(t.TempDir(), "nats")}
	l.Close()
	n.start()
	t.Cleanup(func() { n.stop() })
	return n
}

func (n *restartableNATS) start() {
	emb, err := notify.StartEmbedded(notify.EmbeddedConfig{StoreDir: n.dir, Listen: n.addr, ServerName: "outage-test", Token: testNATSToken})
	if err != nil {
		n.t.Fatal(err)
	}
	n.emb = emb
}

func (n *restartableNATS) stop() {
	if n.emb != nil {
		n.emb.Shutdown()
		n.emb = nil
	}
}

// With NATS killed in the middle of a load of audited actions (in transactions,
// as logins are, and outside them), every action keeps succeeding within its
// deadline (nothing waits for NATS), the relay logs the outage once and its
// recovery once, and after NATS returns every row reaches the stream, each once
// by id. It always runs against its own embedded server, which it restarts.
func TestRelayCatchesUpAfterNATSOutage(t *testing.T) {
	srv := startRestartableNATS(t)
	reconnected := make(chan struct{}, 1)
	nc, err := notify.Connect("nats://"+testNATSToken+"@"+srv.addr, nats.ReconnectWait(10*time.Millisecond),
		nats.ReconnectHandler(func(*nats.Conn) {
			select {
			case reconnected <- struct{}{}:
			default:
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	names, _ := notify.NewNames("outage")
	sc := natstest.TestStreamConfig()
	sc.Memory = false // the stream outlives the restart
	ctx := context.Background()
	if err := notify.EnsureStreams(ctx, js, names, sc); err != nil {
		t.Fatal(err)
	}
	st := storagetest.Open(t)
	var logs syncBuffer
	m := NewMetrics(nil)
	relay := newRelay(t, RelayConfig{Store: st, Events: notify.NewPublisher(js, nc, names), Log: newLog(&logs), Metrics: m,
		PublishTimeout: time.Second})
	tr := NewTrail(TrailConfig{Store: st, Metrics: m, Stored: relay.Kick})
	runRelay(t, relay)

	l := startLoad(t, st, tr)
	l.await(200)
	srv.stop()
	waitFor(t, "the relay to notice the outage", func() bool { failing, _ := relay.Failing(); return failing })
	l.await(l.done.Load() + 400) // actions go on while NATS is down
	if pending(t, st) == 0 {
		t.Fatal("nothing pending during the outage: the test saw no outage")
	}
	srv.start()
	<-reconnected
	l.await(l.done.Load() + 200)
	rows := l.stop()
	flush(t, tr)
	if l.failed.Load() != 0 {
		t.Fatalf("%d actions failed or ran out of time during the outage", l.failed.Load())
	}
	waitFor(t, "every row published", func() bool { return pending(t, st) == 0 })
	ids := map[string]bool{}
	for _, e := range streamEvents(t, js, names) {
		ids[e.ID] = true
	}
	if len(ids) != rows {
		t.Fatalf("%d distinct events on the stream, %d rows stored", len(ids), rows)
	}
	var stored int64
	st.DB(ctx).Model(&storage.AuditRecord{}).Count(&stored)
	if int(stored) != rows {
		t.Fatalf("%d rows stored, %d recorded", stored, rows)
	}
	if f, r := strings.Count(logs.String(), "publishing to NATS fails"), strings.Count(logs.String(), "publishing to NATS recovered"); f != 1 || r != 1 {
		t.Fatalf("outage logged %d times and recovery %d times, want once each:\n%s", f, r, logs.String())
	}
}

// load runs audited actions on four goroutines until stopped: half of them a
// transaction (an action and its record), half a record outside one. Each has a
// deadline of 5 s (an RPC's order of magnitude); one that fails or runs out of it
// is counted in failed.
type load struct {
	t      *testing.T
	cancel context.CancelFunc
	wg     sync.WaitGroup
	done   atomic.Int64
	failed atomic.Int64
}

func startLoad(t *testing.T, st *storage.Store, tr *Trail) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{t: t, cancel: cancel}
	var seq atomic.Int64
	for w := 0; w < 4; w++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				n := int(seq.Add(1))
				octx, ocancel := context.WithTimeout(context.Background(), 5*time.Second)
				user := fmt.Sprintf("user-%d", n%50)
				var err error
				if n%2 == 0 {
					err = st.InTx(octx, func(ctx context.Context) error {
						if err := st.SetUserGroups(ctx, user, []string{fmt.Sprint("g", n)}); err != nil {
							return err
						}
						return tr.Append(ctx, event(user, n))
					})
				} else {
					tr.Record(octx, event(user, n))
				}
				if err != nil || octx.Err() != nil {
					l.failed.Add(1)
				}
				ocancel()
				l.done.Add(1)
			}
		}()
	}
	return l
}

// await waits until n actions are done.
func (l *load) await(n int64) {
	l.t.Helper()
	waitFor(l.t, fmt.Sprintf("%d actions", n), func() bool { return l.done.Load() >= n })
}

// stop ends the load and returns how many actions it ran.
func (l *load) stop() int {
	l.cancel()
	l.wg.Wait()
	return int(l.done.Load())
}
