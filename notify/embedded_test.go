package notify_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/natstest"
)

func TestEmbeddedNoListener(t *testing.T) {
	emb, err := notify.StartEmbedded(notify.EmbeddedConfig{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Shutdown()
	if u := emb.ClientURL(); u != "" {
		t.Fatalf("ClientURL() = %q, want empty without a listener", u)
	}
	if a := emb.Server().Addr(); a != nil {
		t.Fatalf("server listens on %v, want no TCP listener", a)
	}
	nc, err := emb.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := notify.Healthy(nc); err != nil {
		t.Fatal(err)
	}
}

func TestEmbeddedListener(t *testing.T) {
	emb, err := notify.StartEmbedded(notify.EmbeddedConfig{StoreDir: t.TempDir(), Listen: "127.0.0.1:0", ServerName: "tcp", Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Shutdown()
	u := emb.ClientURL()
	if u == "" || strings.HasSuffix(u, ":4222") || strings.HasSuffix(u, ":-1") {
		t.Fatalf("ClientURL() = %q, want a free port", u)
	}
	nc, err := notify.Connect(u, nats.Token(testToken))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	info, err := js.AccountInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.Streams != 0 {
		t.Fatalf("fresh server has %d streams", info.Streams)
	}
}

func TestStartEmbeddedRejects(t *testing.T) {
	for _, cfg := range []notify.EmbeddedConfig{
		{StoreDir: ""},
		{StoreDir: t.TempDir(), Listen: "nohostport"},
		{StoreDir: t.TempDir(), Listen: "127.0.0.1:http"},
		{StoreDir: t.TempDir(), Listen: "127.0.0.1:70000", Token: testToken},
		{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"},                 // anonymous listener
		{StoreDir: t.TempDir(), Listen: "127.0.0.1:0", Token: "short"}, // guessable token
	} {
		if emb, err := notify.StartEmbedded(cfg); err == nil {
			emb.Shutdown()
			t.Errorf("StartEmbedded(%+v) accepted", cfg)
		}
	}
}

func TestEmbeddedListenTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	emb, err := notify.StartEmbedded(notify.EmbeddedConfig{StoreDir: t.TempDir(), Listen: l.Addr().String(), Token: testToken, ReadyTimeout: 300 * time.Millisecond})
	if err == nil {
		emb.Shutdown()
		t.Fatalf("started on a port that is taken")
	}
}

func TestHealthy(t *testing.T) {
	nc, _, _ := natstest.Start(t)
	if err := notify.Healthy(nc); err != nil {
		t.Fatalf("Healthy: %v", err)
	}
	other := natstest.Dial(t, nc)
	other.Close()
	if err := notify.Healthy(other); err == nil {
		t.Fatal("Healthy accepted a closed connection")
	}
	if err := notify.Healthy(nil); err == nil {
		t.Fatal("Healthy accepted nil")
	}
	// A server without JetStream is not healthy.
	srv, err := server.NewServer(&server.Options{DontListen: true, Port: server.RANDOM_PORT, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	defer srv.Shutdown()
	if !srv.ReadyForConnections(5 * time.Second) {
		t.Fatal("plain server not ready")
	}
	plain, err := nats.Connect("", nats.InProcessServer(srv))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if err := notify.Healthy(plain); err == nil {
		t.Fatal("Healthy accepted a server without JetStream")
	}
}
