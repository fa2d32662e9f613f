package notify_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/natstest"
)

// A publish says it certainly reached no stream (notify.NotPublished) only
// when that is so: the connection closed, no stream for the subject, or it
// failed before sending. A publish whose acknowledgement it stopped waiting for
// may have been stored (or be sent from the reconnect buffer): not marked.
func TestNotPublishedOnlyWhenCertain(t *testing.T) {
	nc, _, names := natstest.Start(t)
	ctx := context.Background()

	// The streams exist, but the context ends before the acknowledgement.
	own := natstest.Dial(t, nc)
	js, err := jetstream.New(own)
	if err != nil {
		t.Fatal(err)
	}
	pub := notify.NewPublisher(js, own, names)
	expired, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel()
	err = pub.PublishPushRequest(expired, notify.PushRequest{ChallengeID: "c-1", UserID: "alice", ExpiresAt: time.Now().Add(time.Minute)})
	if err == nil || notify.NotPublished(err) {
		t.Fatalf("publish with an ended context: %v, NotPublished %v; want an error not marked", err, notify.NotPublished(err))
	}
	// Invalid before sending.
	if err := pub.PublishPushRequest(ctx, notify.PushRequest{UserID: "alice"}); !notify.NotPublished(err) {
		t.Fatalf("invalid push request: %v, want NotPublished", err)
	}
	// No delivery key: refused before sending.
	if err := pub.PublishGatewaySend(ctx, notify.GatewaySend{Kind: notify.KindCode, ChallengeID: "c-2", Channel: "email"}); !notify.NotPublished(err) {
		t.Fatalf("gateway send without a key: %v, want NotPublished", err)
	}
	// No stream listens: JetStream has no responder.
	none, err := notify.NewNames("nostream")
	if err != nil {
		t.Fatal(err)
	}
	other := notify.NewPublisher(js, own, none)
	if err := other.PublishPushRequest(ctx, notify.PushRequest{ChallengeID: "c-3", UserID: "alice", ExpiresAt: time.Now().Add(time.Minute)}); !notify.NotPublished(err) {
		t.Fatalf("publish with no stream: %v, want NotPublished", err)
	}
	// The connection closed.
	own.Close()
	if err := pub.PublishPushRequest(ctx, notify.PushRequest{ChallengeID: "c-4", UserID: "alice", ExpiresAt: time.Now().Add(time.Minute)}); !notify.NotPublished(err) {
		t.Fatalf("publish on a closed connection: %v, want NotPublished", err)
	}
}

// A connection that closes while the publish waits for its acknowledgement
// (nats.ErrConnectionClosed, the same error as a publish on a connection closed
// before) may have delivered the message: here a responder on the subject gets
// it and closes the publisher's connection instead of answering. Not marked, so
// a caller keeps what it reserved for a message that may be stored.
func TestConnectionClosedWhileWaitingIsNotMarked(t *testing.T) {
	nc, _, names := natstest.StartBare(t) // no streams: the responder stands for one
	own := natstest.Dial(t, nc)
	js, err := jetstream.New(own)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	sub, err := nc.Subscribe(names.PushRequest(), func(m *nats.Msg) {
		got <- m.Data
		own.Close() // the stored message's acknowledgement never reaches the publisher
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = notify.NewPublisher(js, own, names).PublishPushRequest(ctx, notify.PushRequest{ChallengeID: "c-5", UserID: "alice", ExpiresAt: time.Now().Add(time.Minute)})
	select {
	case <-got:
	default:
		t.Fatalf("the responder never got the message (publish: %v)", err)
	}
	if !errors.Is(err, nats.ErrConnectionClosed) || notify.NotPublished(err) {
		t.Fatalf("publish whose connection closed after sending: %v, NotPublished %v; want ErrConnectionClosed, not marked", err, notify.NotPublished(err))
	}
}
