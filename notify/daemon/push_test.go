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
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/channels/ntfy/ntfytest"
	"github.com/twofactor/twofactor/notify/natstest"
	"github.com/twofactor/twofactor/providers/push"
	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// notifyd with -database-url and -key-file delivers pushes: it opens authd's store
// and key ring, and its push worker wakes the user's ntfy device with the opaque
// wake-up. Without a VAPID key file Web Push is off (those devices poll); without a
// database URL push delivery is off.
func TestStandalonePushDelivery(t *testing.T) {
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
	authd, err := push.New(storagetest.OpenURL(t, dbURL), ring, push.Config{AllowHTTP: true}) // authd's side
	if err != nil {
		t.Fatal(err)
	}
	nt := ntfytest.New(t)
	deviceID := enrollNtfyDevice(t, authd, nt.URL()+"/upBob1")

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	off, err := Parse("notifyd", []string{"-data-dir", dir}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if d, closeFn, err := off.PushDeps(context.Background(), log); err != nil || d != nil {
		t.Fatalf("push deps without database-url: %v, %v", d, err)
	} else {
		closeFn()
	}
	c, err := Parse("notifyd", []string{"-data-dir", dir}, func(k string) string {
		return map[string]string{"TWOFACTOR_DATABASE_URL": dbURL}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	pd, closeStore, err := c.PushDeps(context.Background(), log)
	if err != nil || pd == nil || pd.WebPush != nil || pd.Ntfy == nil {
		t.Fatalf("push deps %+v, %v", pd, err)
	}
	defer closeStore()
	nc, js, names := natstest.Start(t)
	key, _ := notify.GenerateDeliveryKey()
	m := NewMetrics()
	d, err := Start(context.Background(), Options{JS: js, Names: names, Key: key, Push: pd, Logger: log, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	pub := notify.NewPublisher(js, nc, names)
	if err := pub.PublishPushRequest(context.Background(), notify.PushRequest{ChallengeID: "ch-std-1", UserID: "bob", ExpiresAt: time.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(nt.Poll(t, "upBob1")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the ntfy device was not woken")
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitFor := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(m.Pushes.WithLabelValues("ntfy", "ok")) != 1 {
		if time.Now().After(waitFor) {
			t.Fatalf("notifyd_push_wakeups_total{kind=ntfy,result=ok} = %v", testutil.ToFloat64(m.Pushes.WithLabelValues("ntfy", "ok")))
		}
		time.Sleep(10 * time.Millisecond)
	}
	var w push.Wake
	if err := json.Unmarshal([]byte(nt.Poll(t, "upBob1")[0].Message), &w); err != nil || w.ChallengeID != "ch-std-1" || w.DeviceID != deviceID {
		t.Fatalf("wake %+v, %v", w, err)
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
