package app

import (
	"context"
	"io"
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

// Health turns NOT_SERVING while NATS is down or the database is gone, and SERVING
// again when they are back, without a restart. The test drives the ticks and waits
// for NATS's own reconnect event: nothing sleeps.
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

	hs := health.NewServer()
	rounds := make(chan healthpb.HealthCheckResponse_ServingStatus)
	tick := make(chan time.Time)
	w := &healthWatcher{
		health:   hs,
		services: func() []string { return []string{"twofactor.v1.ChallengeService"} },
		checks: []healthCheck{
			{"database", func(ctx context.Context) error { return store.Load().Ping(ctx) }},
			{"nats", func(ctx context.Context) error { return notify.HealthyContext(ctx, nc) }},
		},
		log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		rounds: rounds,
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.run(ctx, tick)
	round := func(want healthpb.HealthCheckResponse_ServingStatus, why string) {
		t.Helper()
		if got := <-rounds; got != want {
			t.Fatalf("%s: round reported %v, want %v", why, got, want)
		}
		for _, svc := range []string{"", "twofactor.v1.ChallengeService"} {
			r, err := hs.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
			if err != nil || r.GetStatus() != want {
				t.Fatalf("%s: Check(%q) = %v, %v; want %v", why, svc, r, err, want)
			}
		}
	}
	round(healthpb.HealthCheckResponse_SERVING, "start")

	emb.Shutdown()
	tick <- time.Now()
	round(healthpb.HealthCheckResponse_NOT_SERVING, "NATS stopped")

	emb = startNATS()
	defer emb.Shutdown()
	<-reconnected
	tick <- time.Now()
	round(healthpb.HealthCheckResponse_SERVING, "NATS back")

	store.Load().Close()
	tick <- time.Now()
	round(healthpb.HealthCheckResponse_NOT_SERVING, "database closed")

	store.Store(storagetest.OpenURL(t, url))
	tick <- time.Now()
	round(healthpb.HealthCheckResponse_SERVING, "database back")
}
