// Package natstest starts the NATS JetStream that tests run against: the machine's server
// when TWOFACTOR_TEST_NATS_URL names one, otherwise an embedded server with no TCP listener
// in a temporary folder. Every call gets its own random subject prefix, so tests sharing a
// server never see each other's messages, and its streams are deleted when the test ends.
package natstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/twofactor/twofactor/notify"
)

// EnvURL names the environment variable holding the URL of an external NATS server.
const EnvURL = "TWOFACTOR_TEST_NATS_URL"

// Start connects to NATS and creates the streams (notify.EnsureStreams with
// TestStreamConfig) under a fresh random prefix. It fails the test if NATS cannot be
// reached or has no JetStream.
func Start(t testing.TB) (*nats.Conn, jetstream.JetStream, notify.Names) {
	t.Helper()
	nc, js, names := StartBare(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := notify.EnsureStreams(ctx, js, names, TestStreamConfig()); err != nil {
		t.Fatalf("natstest: %v", err)
	}
	return nc, js, names
}

// StartBare is Start without creating the streams (for tests of stream creation itself).
// The cleanup still deletes every stream carrying the prefix.
func StartBare(t testing.TB) (*nats.Conn, jetstream.JetStream, notify.Names) {
	t.Helper()
	names, err := notify.NewNames(randomPrefix(t))
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	var dial func() (*nats.Conn, error)
	if url := os.Getenv(EnvURL); url != "" {
		dial = func() (*nats.Conn, error) {
			return nats.Connect(url, nats.Name("twofactor-test"), nats.Timeout(5*time.Second))
		}
	} else {
		emb, err := notify.StartEmbedded(notify.EmbeddedConfig{StoreDir: t.TempDir(), ServerName: "natstest"})
		if err != nil {
			t.Fatalf("natstest: %v", err)
		}
		t.Cleanup(emb.Shutdown)
		dial = func() (*nats.Conn, error) { return emb.Connect(nats.Name("twofactor-test")) }
	}
	nc, err := dial()
	if err != nil {
		t.Fatalf("natstest: cannot connect to NATS (%s=%q): %v", EnvURL, os.Getenv(EnvURL), err)
	}
	dialers.Store(nc, dial)
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		t.Fatalf("natstest: %v", err)
	}
	t.Cleanup(func() {
		deleteStreams(t, js, names)
		dialers.Delete(nc)
		nc.Close()
	})
	if err := notify.Healthy(nc); err != nil {
		t.Fatalf("natstest: NATS is not usable (is JetStream enabled?): %v", err)
	}
	return nc, js, names
}

var dialers sync.Map // *nats.Conn -> func() (*nats.Conn, error)

// Dial opens another connection to the server nc (returned by Start) is connected to, as a
// second replica would. It is closed when the test ends.
func Dial(t testing.TB, nc *nats.Conn) *nats.Conn {
	t.Helper()
	d, ok := dialers.Load(nc)
	if !ok {
		t.Fatalf("natstest: Dial: connection was not returned by Start")
	}
	c, err := d.(func() (*nats.Conn, error))()
	if err != nil {
		t.Fatalf("natstest: Dial: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestStreamConfig keeps streams in memory with short lifetimes.
func TestStreamConfig() notify.StreamConfig {
	return notify.StreamConfig{
		GatewayMaxAge:    10 * time.Minute,
		NoticeMaxAge:     time.Hour,
		PushMaxAge:       5 * time.Minute,
		AuditMaxAge:      time.Hour,
		StatusMaxAge:     time.Hour,
		DeadLetterMaxAge: time.Hour,
		DeliveredTTL:     time.Hour,
		Replicas:         1,
		Memory:           true,
	}
}

func randomPrefix(t testing.TB) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("natstest: random prefix: %v", err)
	}
	return "t" + hex.EncodeToString(b[:])
}

func deleteStreams(t testing.TB, js jetstream.JetStream, names notify.Names) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	up := strings.ToUpper(names.Prefix()) + "_"
	lister := js.StreamNames(ctx)
	var mine []string
	for name := range lister.Name() {
		if strings.HasPrefix(name, up) || strings.HasPrefix(name, "KV_"+up) {
			mine = append(mine, name)
		}
	}
	if err := lister.Err(); err != nil {
		t.Errorf("natstest: list streams for cleanup: %v", err)
	}
	for _, name := range mine {
		if err := js.DeleteStream(ctx, name); err != nil {
			t.Errorf("natstest: delete stream %s: %v", name, err)
		}
	}
}
