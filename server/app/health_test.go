package app

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// Health turns NOT_SERVING while the database is gone, and SERVING again when it
// is back, without a restart. A NATS outage turns only the events service
// NOT_SERVING: the overall status and the RPC services stay SERVING, so a load
// balancer does not drain every replica for it. Each outage is logged once. The
// test drives the ticks and waits for NATS's own reconnect event: nothing sleeps.
func TestHealthFollowsDependencies(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	storeDir := t.TempDir()
	startNATS := func() *notify.Embedded {
		emb, err := notify.StartEmbedded(notify.EmbeddedConfig{StoreDir: filepath.Join(storeDir, "nats"), Listen: addr, ServerName: "health-test", Token: strings.Repeat("t", 32)})
		if err != nil {
			t.Fatal(err)
		}
		return emb
	}
	emb := startNATS()
	reconnected := make(chan struct{}, 1)
	nc, err := notify.Connect("nats://"+addr, nats.Token(strings.Repeat("t", 32)), nats.ReconnectHandler(func(*nats.Conn) { reconnected <- struct{}{} }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()

	url := storagetest.URL(t)
	var store atomic.Pointer[storage.Store]
	store.Store(storagetest.OpenURL(t, url))

	var logs strings.Builder // written by the watcher's goroutine, read after its rounds
	hs := health.NewServer()
	rounds := make(chan healthpb.HealthCheckResponse_ServingStatus)
	tick := make(chan time.Time)
	w := &healthWatcher{
		health:   hs,
		services: func() []string { return []string{"twofactor.v1.ChallengeService"} },
		checks: []healthCheck{
			{name: "database", check: func(ctx context.Context) error { return store.Load().Ping(ctx) }},
			{name: "nats", check: func(ctx context.Context) error { return notify.HealthyContext(ctx, nc) },
				services: []string{EventsHealthService}},
		},
		log:    slog.New(slog.NewTextHandler(&logs, nil)),
		rounds: rounds,
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.run(ctx, tick)
	const (
		serving    = healthpb.HealthCheckResponse_SERVING
		notServing = healthpb.HealthCheckResponse_NOT_SERVING
	)
	round := func(want, events healthpb.HealthCheckResponse_ServingStatus, why string) {
		t.Helper()
		if got := <-rounds; got != want {
			t.Fatalf("%s: round reported %v, want %v", why, got, want)
		}
		for svc, want := range map[string]healthpb.HealthCheckResponse_ServingStatus{
			"": want, "twofactor.v1.ChallengeService": want, EventsHealthService: events,
		} {
			r, err := hs.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
			if err != nil || r.GetStatus() != want {
				t.Fatalf("%s: Check(%q) = %v, %v; want %v", why, svc, r, err, want)
			}
		}
	}
	round(serving, serving, "start")

	emb.Shutdown()
	tick <- time.Now()
	round(serving, notServing, "NATS stopped")
	tick <- time.Now()
	round(serving, notServing, "NATS still stopped")

	emb = startNATS()
	defer emb.Shutdown()
	<-reconnected
	tick <- time.Now()
	round(serving, serving, "NATS back")

	store.Load().Close()
	tick <- time.Now()
	round(notServing, notServing, "database closed")

	store.Store(storagetest.OpenURL(t, url))
	tick <- time.Now()
	round(serving, serving, "database back")
	if n := strings.Count(logs.String(), "dependency unreachable"); n != 2 {
		t.Errorf("%d outages logged, want 2 (one of NATS over two rounds, one of the database):\n%s", n, logs.String())
	}
}
