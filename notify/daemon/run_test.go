package daemon

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/twofactor/twofactor/notify"
)

// notifyd as a process would run it: external NATS URL, the key file, the outbox; it
// waits for authd's streams, answers /healthz, delivers, and stops on its context.
func TestRunStandalone(t *testing.T) {
	dir := t.TempDir()
	// As authd's data folder holds it: notifyd finds the token there by itself.
	token, err := notify.EnsureTokenFile(filepath.Join(dir, notify.TokenFileName))
	if err != nil {
		t.Fatal(err)
	}
	emb, err := notify.StartEmbedded(notify.EmbeddedConfig{StoreDir: filepath.Join(dir, "nats"), Listen: "127.0.0.1:0", Token: token})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Shutdown()
	keyFile := filepath.Join(dir, "delivery.key")
	if _, err := notify.EnsureDeliveryKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	metrics := l.Addr().String()
	l.Close()
	cfg, err := Parse("notifyd", []string{"--nats-url", emb.ClientURL(), "--data-dir", dir, "--outbox", "--metrics-listen", metrics,
		"--nats-prefix", "runtest"}, getenv(nil))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t) // only for its logger
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, e.log) }()

	nc, err := emb.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	names, _ := notify.NewNames("runtest")
	// authd creates the streams after notifyd started: notifyd waits for them.
	if err := notify.EnsureStreams(context.Background(), js, names, notify.StreamConfig{Memory: true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return Healthcheck(context.Background(), metrics) == nil })
	key, err := notify.LoadDeliveryKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	g := notify.GatewaySend{ChallengeID: "ch-run", Channel: notify.ChannelSignal, Destination: "+15550100", Code: "999000",
		ExpiresAt: time.Now().Add(time.Minute)}
	if err := notify.NewPublisher(js, nil, names).WithDeliveryKey(key).PublishGatewaySend(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		files, _ := filepath.Glob(filepath.Join(dir, "outbox", "*-signal-ch-run.txt"))
		return len(files) == 1
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Run did not stop")
	}
	if _, err := os.Stat(filepath.Join(dir, "outbox")); err != nil {
		t.Fatal(err)
	}
}
