package natstest_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/natstest"
)

// serverURL returns the external server named by the environment, or starts an embedded
// one with a TCP listener and points the environment at it, so that the external-server
// path of Start is exercised either way.
func serverURL(t *testing.T) string {
	if u := os.Getenv(natstest.EnvURL); u != "" {
		return u
	}
	token := strings.Repeat("k", 32)
	emb, err := notify.StartEmbedded(notify.EmbeddedConfig{StoreDir: t.TempDir(), Listen: "127.0.0.1:0", Token: token})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Shutdown)
	u := strings.Replace(emb.ClientURL(), "nats://", "nats://"+token+"@", 1)
	t.Setenv(natstest.EnvURL, u)
	return u
}

func TestStartIsolatesAndCleansUp(t *testing.T) {
	url := serverURL(t)
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)

	var first, second notify.Names
	t.Run("first", func(t *testing.T) {
		_, _, first = natstest.Start(t)
		t.Run("second", func(t *testing.T) { _, _, second = natstest.Start(t) })
		if _, err := js.Stream(context.Background(), first.AuditStream()); err != nil {
			t.Fatalf("stream of a running test missing: %v", err)
		}
	})
	if first.Prefix() == second.Prefix() || !strings.HasPrefix(first.Prefix(), "t") {
		t.Fatalf("prefixes %q and %q", first.Prefix(), second.Prefix())
	}
	for _, n := range []notify.Names{first, second} {
		for _, s := range n.Streams() {
			if _, err := js.Stream(context.Background(), s); err == nil {
				t.Errorf("stream %s survived its test", s)
			}
		}
	}
}

func TestStartBareCreatesNothing(t *testing.T) {
	_, js, names := natstest.StartBare(t)
	for _, s := range names.Streams() {
		if _, err := js.Stream(context.Background(), s); err == nil {
			t.Errorf("StartBare created %s", s)
		}
	}
}

func TestDial(t *testing.T) {
	nc, _, names := natstest.Start(t)
	other := natstest.Dial(t, nc)
	sub, err := other.SubscribeSync(names.AppPasswordRevoked())
	if err != nil {
		t.Fatal(err)
	}
	other.Flush()
	if err := nc.Publish(names.AppPasswordRevoked(), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.NextMsg(notify.HealthTimeout); err != nil {
		t.Fatalf("second connection is not on the same server: %v", err)
	}
}
