package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/natstest"
	"github.com/twofactor/twofactor/providers/otpcode"
	"github.com/twofactor/twofactor/server"
)

// GatewaySender publishes on the real JetStream gateway stream, sealed under the
// delivery key: a resend under its own message id is kept, a repeated publish of
// one send is de-duplicated; a notice goes to the notice stream, sealed too.
func TestGatewaySenderPublishes(t *testing.T) {
	nc, js, names := natstest.Start(t)
	key, err := notify.GenerateDeliveryKey()
	if err != nil {
		t.Fatal(err)
	}
	g := server.GatewaySender{Events: notify.NewPublisher(js, nc, names).WithDeliveryKey(key)}
	ctx := context.Background()
	first := &otpcode.Send{Kind: otpcode.KindCode, Channel: otpcode.SMS, ID: "0b6f3c3e-5d0a-4a43-9d7e-2f7d1f7a9c11", Seq: 1,
		UserID: "alice", Destination: "+4915123456712", Code: "123456", Text: "123456 is your code", Locale: "de",
		ExpiresAt: time.Now().Add(5 * time.Minute)}
	resend := *first
	resend.Seq = 2
	notice := &otpcode.Send{Kind: otpcode.KindNotice, Channel: otpcode.Email, ID: "c4d8", UserID: "alice", Destination: "a@example.com",
		Subject: "changed", Text: "moved to b•••@example.org", ExpiresAt: time.Now().Add(24 * time.Hour)}
	for _, s := range []*otpcode.Send{first, &resend, first, notice} {
		if err := g.SendOutOfBand(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	stream, err := js.Stream(ctx, names.GatewayStream())
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Fatalf("%d messages in the gateway stream; want the send and its resend", info.State.Msgs)
	}
	var ids []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(m.Data), "123456") || strings.Contains(string(m.Data), "15123456712") {
			t.Fatalf("message %d holds the code or the number in clear", seq)
		}
		g, err := notify.DecodeGatewaySend(m.Data)
		if err != nil || g.Channel != otpcode.SMS || m.Subject != names.GatewaySend(otpcode.SMS) {
			t.Fatalf("message %d: %+v %v", seq, g, err)
		}
		if g, err = key.OpenGatewaySend(g); err != nil || g.Code != "123456" || g.Destination != first.Destination ||
			g.Text != first.Text || g.Locale != "de" {
			t.Fatalf("message %d opened: %v", seq, err)
		}
		ids = append(ids, m.Header.Get(jetstream.MsgIDHeader))
	}
	if ids[0] != first.ID || ids[1] != first.ID+"_2" {
		t.Fatalf("message ids %v", ids)
	}
	ns, err := js.Stream(ctx, names.NoticeStream())
	if err != nil {
		t.Fatal(err)
	}
	m, err := ns.GetLastMsgForSubject(ctx, names.GatewayNotice(otpcode.Email))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(m.Data), "a@example.com") || strings.Contains(string(m.Data), "moved") || m.Header.Get(jetstream.MsgIDHeader) != "c4d8" {
		t.Fatalf("notice on NATS: %s", m.Data)
	}
	dec, err := notify.DecodeGatewaySend(m.Data)
	if err == nil {
		dec, err = key.OpenGatewaySend(dec)
	}
	if err != nil || dec.Kind != notify.KindNotice || dec.Destination != notice.Destination || dec.Text != notice.Text || dec.Code != "" {
		t.Fatalf("notice opened %+v %v", dec, err)
	}
	if err := g.SendOutOfBand(ctx, &otpcode.Send{Kind: "other", Channel: otpcode.Email, ID: "x", Destination: "a@example.com", Text: "t"}); err == nil {
		t.Fatal("a send of unknown kind was published")
	}
}
