package daemon

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/twofactor/twofactor/internal/testfix"
	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/channels/ntfy/ntfytest"
	"github.com/twofactor/twofactor/notify/natstest"
	"github.com/twofactor/twofactor/providers/push"
	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// standalone is notifyd with -database-url and the environment env, its push worker
// started on authd's store and key ring, and bob's ntfy device (topic upBob1 on an
// ntfytest server on 127.0.0.1) enrolled through authd's side.
type standalone struct {
	nt       *ntfytest.Server
	m        *Metrics
	js       jetstream.JetStream
	names    notify.Names
	pub      *notify.Publisher
	deviceID string
	logs     *testfix.LogBuffer
}

func startStandalone(t *testing.T, env map[string]string) *standalone {
	t.Helper()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "keys.json")
	if _, err := storage.EnsureKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	ring, err := storage.LoadKeyRing(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	dbURL := storagetest.URL(t)
	authd, err := push.New(storagetest.OpenURL(t, dbURL), ring, push.Config{AllowHTTP: true, AllowInternal: testfix.AnyAddress()}) // authd's side
	if err != nil {
		t.Fatal(err)
	}
	s := &standalone{nt: ntfytest.New(t), m: NewMetrics(), logs: &testfix.LogBuffer{}}
	s.deviceID = enrollNtfyDevice(t, authd, s.nt.URL()+"/upBob1")
	log := slog.New(slog.NewTextHandler(s.logs, nil))
	env["TWOFACTOR_DATABASE_URL"] = dbURL
	c, err := Parse("notifyd", []string{"-data-dir", dir}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	pd, closeStore, err := c.PushDeps(context.Background(), log)
	if err != nil || pd == nil || pd.WebPush != nil || pd.Ntfy == nil {
		t.Fatalf("push deps %+v, %v", pd, err)
	}
	t.Cleanup(closeStore)
	var nc *nats.Conn
	nc, s.js, s.names = natstest.Start(t)
	key, _ := notify.GenerateDeliveryKey()
	d, err := Start(context.Background(), Options{JS: s.js, Names: s.names, Key: key, Push: pd, Logger: log, Metrics: s.m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	s.pub = notify.NewPublisher(s.js, nc, s.names)
	return s
}

func (s *standalone) request(t *testing.T, challengeID string) {
	t.Helper()
	if err := s.pub.PublishPushRequest(context.Background(), notify.PushRequest{ChallengeID: challengeID, UserID: "bob", ExpiresAt: time.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
}

func (s *standalone) waitPushes(t *testing.T, result string, want float64) {
	t.Helper()
	waitFor := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(s.m.Pushes.WithLabelValues("ntfy", result)) != want {
		if time.Now().After(waitFor) {
			t.Fatalf("notifyd_push_wakeups_total{kind=ntfy,result=%s} = %v, want %v", result, testutil.ToFloat64(s.m.Pushes.WithLabelValues("ntfy", result)), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// notifyd with -database-url and -key-file delivers pushes: it opens authd's store
// and key ring, and its push worker wakes the user's ntfy device with the opaque
// wake-up. Without a VAPID key file Web Push is off (those devices poll); without a
// database URL push delivery is off. The test's ntfy listens on 127.0.0.1: the
// operator allows it explicitly (TWOFACTOR_PUSH_ALLOW_INTERNAL).
func TestStandalonePushDelivery(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	off, err := Parse("notifyd", []string{"-data-dir", t.TempDir()}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if d, closeFn, err := off.PushDeps(context.Background(), log); err != nil || d != nil {
		t.Fatalf("push deps without database-url: %v, %v", d, err)
	} else {
		closeFn()
	}
	s := startStandalone(t, map[string]string{"TWOFACTOR_PUSH_ALLOW_INTERNAL": "127.0.0.1"})
	s.request(t, "ch-std-1")
	s.waitPushes(t, "ok", 1)
	got := s.nt.Poll(t, "upBob1")
	var w push.Wake
	if len(got) != 1 {
		t.Fatalf("the ntfy device got %d wake-ups", len(got))
	}
	if err := json.Unmarshal([]byte(got[0].Message), &w); err != nil || w.ChallengeID != "ch-std-1" || w.DeviceID != s.deviceID {
		t.Fatalf("wake %+v, %v", w, err)
	}
}

// Without the allowance notifyd does not reach a device endpoint on 127.0.0.1 (an
// internal service a device key holder points it at): the dial is refused, the
// server sees no request, the request is acknowledged once without a retry, the
// metric says refused and the log names the host but not the topic.
func TestStandalonePushRefusesInternalEndpoint(t *testing.T) {
	s := startStandalone(t, map[string]string{})
	s.request(t, "ch-std-2")
	s.waitPushes(t, "refused", 1)
	ctx := context.Background()
	cons, err := s.js.Consumer(ctx, s.names.PushStream(), "notifyd-push")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumAckPending == 0 && info.Delivered.Consumer >= 1 {
			if info.NumRedelivered != 0 || info.Delivered.Consumer != 1 {
				t.Fatalf("push request delivered %d times, %d redelivered: want once", info.Delivered.Consumer, info.NumRedelivered)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("push request not acknowledged: %+v", info)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := s.nt.Poll(t, "upBob1"); len(got) != 0 {
		t.Fatalf("the internal endpoint got %+v", got)
	}
	if n := testutil.ToFloat64(s.m.Pushes.WithLabelValues("ntfy", "ok")); n != 0 {
		t.Fatalf("ok = %v", n)
	}
	logs := s.logs.String()
	if !strings.Contains(logs, "endpoint address refused") || !strings.Contains(logs, "host=127.0.0.1") || strings.Contains(logs, "upBob1") {
		t.Fatalf("logs %s: want the refusal with the host, without the topic", logs)
	}
}

func enrollNtfyDevice(t *testing.T, svc *push.Service, topicURL string) string {
	t.Helper()
	ctx := context.Background()
	en, err := svc.BeginEnrollment(ctx, "bob", "")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	nonce := make([]byte, 16)
	rand.Read(nonce)
	in := push.FinishInput{Token: en.Token, PublicKey: der, Name: "Phone", Platform: "test", TimestampMillis: time.Now().UnixMilli(), Nonce: nonce,
		Endpoint: push.Endpoint{Kind: storage.PushEndpointNtfy, URL: topicURL}}
	h := sha256.Sum256(push.EnrollMessage(in))
	if in.Signature, err = ecdsa.SignASN1(rand.Reader, key, h[:]); err != nil {
		t.Fatal(err)
	}
	d, err := svc.FinishEnrollment(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	return d.ID
}
