package notify_test

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/natstest"
)

// While NATS is down, the audit publish and every announcement fail at once with
// ErrNotConnected (the error itself shows that nothing waited for a flush, which
// would end in a deadline), and an invalid event is ErrInvalidEvent, which a
// retry cannot fix; once NATS is back they work again.
// outageToken is the test server's client token (a TCP listener needs one).
const outageToken = "notify-outage-token-0123456789abcdef"

func TestPublishFailsFastWhileDisconnected(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := filepath.Join(t.TempDir(), "nats")
	start := func() *notify.Embedded {
		emb, err := notify.StartEmbedded(notify.EmbeddedConfig{StoreDir: dir, Listen: addr, Token: outageToken})
		if err != nil {
			t.Fatal(err)
		}
		return emb
	}
	emb := start()
	reconnected, disconnected := make(chan struct{}, 1), make(chan struct{}, 1)
	nc, err := notify.Connect("nats://"+outageToken+"@"+addr, nats.ReconnectHandler(func(*nats.Conn) { reconnected <- struct{}{} }),
		nats.DisconnectErrHandler(func(*nats.Conn, error) { disconnected <- struct{}{} }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	names, _ := notify.NewNames("outage")
	sc := natstest.TestStreamConfig()
	sc.Memory = false // the streams outlive the restart
	if err := notify.EnsureStreams(context.Background(), js, names, sc); err != nil {
		t.Fatal(err)
	}
	p := notify.NewPublisher(js, nc, names)
	ev := notify.AuditEvent{Event: notify.EventChallengeBegun, UserID: "alice"}
	if _, err := p.PublishAuditAsync(notify.AuditEvent{Event: "Not Valid"}); !errors.Is(err, notify.ErrInvalidEvent) {
		t.Fatalf("invalid event: %v, want ErrInvalidEvent", err)
	}

	emb.Shutdown()
	<-disconnected
	ctx := context.Background()
	if p.Connected() {
		t.Fatal("connected to a stopped server")
	}
	if _, err := p.PublishAuditAsync(ev); !errors.Is(err, notify.ErrNotConnected) {
		t.Errorf("audit publish: %v, want ErrNotConnected", err)
	}
	if err := p.AnnounceRevoked(ctx, "ap-1"); !errors.Is(err, notify.ErrNotConnected) {
		t.Errorf("AnnounceRevoked: %v, want ErrNotConnected", err)
	}
	if err := p.AnnounceThrottleFailed(ctx, []notify.ThrottleSubject{{Kind: "user", Key: "alice"}}); !errors.Is(err, notify.ErrNotConnected) {
		t.Errorf("AnnounceThrottleFailed: %v, want ErrNotConnected", err)
	}
	if err := p.AnnouncePushResponse(ctx, "ch-1"); !errors.Is(err, notify.ErrNotConnected) {
		t.Errorf("AnnouncePushResponse: %v, want ErrNotConnected", err)
	}

	emb = start()
	defer emb.Shutdown()
	<-reconnected
	ack, err := p.PublishAuditAsync(ev)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, waitLimit)
	defer cancel()
	if err := ack.Wait(wctx); err != nil {
		t.Fatal(err)
	}
	if err := p.AnnounceThrottleFailed(wctx, []notify.ThrottleSubject{{Kind: "user", Key: "alice"}}); err != nil {
		t.Fatal(err)
	}
}
