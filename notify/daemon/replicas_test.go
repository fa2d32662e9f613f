package daemon

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/channels"
	"github.com/twofactor/twofactor/notify/natstest"
)

// A notifyd killed after the provider accepted a code (and its id was recorded) but
// before it acknowledged: the replica that gets the redelivery does not send it again.
func TestKilledMidDeliveryNoDuplicate(t *testing.T) {
	nc, js, names := natstest.Start(t)
	e := newEnvOn(t, js, names)
	api := newSMSAPI(t)
	var crashed atomic.Bool
	a := e.start(t, map[string]channels.Sender{notify.ChannelSMS: api.sender(t)}, func(o *Options) {
		o.AckWait = 500 * time.Millisecond
		o.afterRecord = func(notify.Message) bool { return !crashed.Swap(true) }
	})
	e.publish(t, "ch-kill", notify.ChannelSMS, "+15550177", "777111")
	e.expect(t, notify.OutcomeAbandoned)
	a.Stop() // the killed replica is gone; its delivery was never acknowledged

	js2, err := jetstream.New(natstest.Dial(t, nc))
	if err != nil {
		t.Fatal(err)
	}
	e2 := newEnvOn(t, js2, names)
	e2.key, e2.outcomes = e.key, e.outcomes
	e2.start(t, map[string]channels.Sender{notify.ChannelSMS: api.sender(t)}, func(o *Options) { o.AckWait = 500 * time.Millisecond })
	out := e.expect(t, notify.OutcomeDuplicate)
	if out[0].Message.Attempt != 2 {
		t.Fatalf("redelivery at attempt %d", out[0].Message.Attempt)
	}
	if n, dup := api.total(); n != 1 || len(dup) != 0 {
		t.Fatalf("provider accepted %d messages (duplicates %v), want 1", n, dup)
	}
	if n := streamMsgs(t, e, names.GatewayStream()); n != 0 {
		t.Fatalf("work queue holds %d messages", n)
	}
}

// twoNotifyd starts two notifyd replicas on a fresh NATS prefix, each on its own
// connection, sending channel through a sender of its own (from build) within lim.
// It returns the env of the first, whose outcomes both report to and whose pub is
// one authd, and a publisher on the second connection as another authd.
func twoNotifyd(t *testing.T, channel string, build func(*testing.T) channels.Sender, lim Limits) (*env, *notify.Publisher) {
	t.Helper()
	nc, js, names := natstest.Start(t)
	e := newEnvOn(t, js, names)
	js2, err := jetstream.New(natstest.Dial(t, nc))
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range []jetstream.JetStream{js, js2} {
		ej := newEnvOn(t, j, names)
		ej.key, ej.outcomes = e.key, e.outcomes
		ej.start(t, map[string]channels.Sender{channel: build(t)}, func(o *Options) {
			o.Limits = map[string]Limits{channel: lim}
		})
	}
	return e, notify.NewPublisher(js2, nil, names).WithDeliveryKey(e.key)
}

// Two notifyd replicas (own connections, one durable per channel) and two publishers
// (as two authd replicas): every message is sent exactly once.
func TestTwoReplicasEachMessageOnce(t *testing.T) {
	api := newSMSAPI(t)
	e, pub2 := twoNotifyd(t, notify.ChannelSMS, api.sender, Limits{Concurrency: 3, Rate: 2000, Burst: 4})
	const n = 40
	for i := 0; i < n; i++ {
		p := e.pub
		if i%2 == 1 {
			p = pub2
		}
		code := fmt.Sprintf("%06d", 100000+i)
		g := notify.GatewaySend{ChallengeID: fmt.Sprintf("ch-r%d", i), Channel: notify.ChannelSMS, Destination: "+15550188",
			Code: code, Text: "code " + code, ExpiresAt: t0.Add(time.Minute)}
		if err := p.PublishGatewaySend(context.Background(), g); err != nil {
			t.Fatal(err)
		}
		// authd retrying a publish (lost acknowledgement) is stored once.
		if i%10 == 0 {
			if err := pub2.PublishGatewaySend(context.Background(), g); err != nil {
				t.Fatal(err)
			}
		}
	}
	results := make([]string, n)
	for i := range results {
		results[i] = notify.OutcomeDelivered
	}
	e.expect(t, results...)
	if got, dup := api.total(); got != n || len(dup) != 0 {
		t.Fatalf("provider accepted %d messages (duplicates %v), want %d", got, dup, n)
	}
}

// After publishing and delivering (SMS, Signal, Telegram; an email refused) through a
// real embedded server with file storage, the JetStream store holds neither a code, a
// destination nor a provider credential in clear: not in the work
// queue, the dead letters, the status stream or the delivered-ids bucket.
func TestJetStreamFilesHoldNoSecrets(t *testing.T) {
	dir := t.TempDir()
	emb, err := notify.StartEmbedded(notify.EmbeddedConfig{StoreDir: dir, ServerName: "scan"})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Shutdown()
	nc, err := emb.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	names := notify.DefaultNames()
	if err := notify.EnsureStreams(context.Background(), js, names, notify.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	e := newEnvOn(t, js, names)
	api := newSMSAPI(t)
	refuse := newSMSAPI(t)
	refuse.status = 400
	sig, tg := newSignalProvider(t), newTelegramProvider(t)
	d := e.start(t, map[string]channels.Sender{notify.ChannelSMS: api.sender(t), notify.ChannelEmail: refuse.sender(t),
		notify.ChannelSignal: sig.build(t), notify.ChannelTelegram: tg.build(t)}, nil)
	secrets := []string{twilioToken, tgToken}
	for i := 0; i < 5; i++ {
		code, dest := fmt.Sprintf("93%04d", i), fmt.Sprintf("+1555099%04d", i)
		secrets = append(secrets, code, dest)
		e.publish(t, fmt.Sprintf("ch-f%d", i), notify.ChannelSMS, dest, code)
	}
	e.publish(t, "ch-fmail", notify.ChannelEmail, "carol.secret@example.org", "939999")
	secrets = append(secrets, "carol.secret@example.org", "939999")
	e.publish(t, "ch-fsignal", notify.ChannelSignal, "+15550998877", "938877")
	e.publish(t, "ch-ftg", notify.ChannelTelegram, "5550997766", "937766")
	secrets = append(secrets, "+15550998877", "938877", "5550997766", "937766")
	got := map[string]int{}
	for i := 0; i < 8; i++ {
		got[e.next(t).Result]++
	}
	if got[notify.OutcomeDelivered] != 7 || got[notify.OutcomeDeadLettered] != 1 {
		t.Fatalf("outcomes %v", got)
	}
	// A control: a retained message holding a canary, which the scan must find, shows
	// that it reads message bytes as they are stored.
	const canary = "scan-canary-5d1e"
	if err := e.pub.PublishGatewayStatus(context.Background(), notify.GatewayStatus{ChallengeID: "ctl", Error: canary}); err != nil {
		t.Fatal(err)
	}
	d.Stop()
	nc.Close()
	emb.Shutdown()
	scanned, found := 0, false
	err = filepath.WalkDir(dir, func(path string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		scanned += len(b)
		found = found || bytes.Contains(b, []byte(canary))
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds %q in clear", path, s)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if scanned == 0 || !found {
		t.Fatalf("scanned %d bytes and did not find the canary: the scan does not see stored messages", scanned)
	}
	assertNoSecretsIn(t, e.logs.String(), secrets)
}

func assertNoSecretsIn(t *testing.T, text string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if bytes.Contains([]byte(text), []byte(s)) {
			t.Errorf("logs hold %q", s)
		}
	}
}
