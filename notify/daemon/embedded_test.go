package daemon

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/natstest"
)

// authd's embedded mode: the key is generated into the data folder, every channel goes
// to the outbox, and a code published through the key's publisher lands in a file.
func TestEmbeddedOutbox(t *testing.T) {
	_, js, names := natstest.Start(t)
	dir := t.TempDir()
	e := newEnvOn(t, js, names)
	o, err := EmbeddedOptions(js, names, filepath.Join(dir, "delivery.key"), filepath.Join(dir, "outbox"), e.log)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(dir, "delivery.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("delivery key: %v", err)
	}
	o.Observe = func(out notify.Outcome) { e.outcomes <- out }
	d, err := Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	pub := notify.NewPublisher(js, nil, names).WithDeliveryKey(o.Key)
	for _, ch := range notify.GatewayChannels {
		g := notify.GatewaySend{ChallengeID: "ch-emb-" + ch, Channel: ch, Destination: "dest-" + ch, Code: "271828",
			Text: "code 271828", ExpiresAt: time.Now().Add(time.Minute)}
		if err := pub.PublishGatewaySend(context.Background(), g); err != nil {
			t.Fatal(err)
		}
	}
	for range notify.GatewayChannels {
		if o := e.next(t); o.Result != notify.OutcomeDelivered {
			t.Fatalf("outcome %+v", o)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "outbox", "*.txt"))
	if len(files) != len(notify.GatewayChannels) {
		t.Fatalf("outbox holds %v", files)
	}
	b, _ := os.ReadFile(files[0])
	if !strings.Contains(string(b), "code 271828") {
		t.Fatalf("outbox file %s", b)
	}
	if strings.Contains(e.logs.String(), "271828") || !strings.Contains(e.logs.String(), files[0]) && !strings.Contains(e.logs.String(), filepath.Base(files[0])) {
		t.Errorf("logs: %s", e.logs.String())
	}
	// A second start reuses the key.
	o2, err := EmbeddedOptions(js, names, filepath.Join(dir, "delivery.key"), filepath.Join(dir, "outbox"), e.log)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := o.Key.SealGatewaySend(notify.GatewaySend{ChallengeID: "c", Channel: "sms", Destination: "d", Code: "1"})
	dec, _ := notify.DecodeGatewaySend(data)
	if _, err := o2.Key.OpenGatewaySend(dec); err != nil {
		t.Fatalf("the second start has another key: %v", err)
	}
}
