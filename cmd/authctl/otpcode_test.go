package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/twofactor/twofactor/notify"
)

// lastCode reads the last code published for channel on authd's gateway stream.
func lastCode(t *testing.T, js jetstream.JetStream, channel string) (string, string) {
	t.Helper()
	names := notify.DefaultNames()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, names.GatewayStream())
	if err != nil {
		t.Fatal(err)
	}
	m, err := stream.GetLastMsgForSubject(ctx, names.GatewaySend(channel))
	if err != nil {
		t.Fatal(err)
	}
	g, err := notify.DecodeGatewaySend(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	return g.Code, m.Header.Get(jetstream.MsgIDHeader)
}

// Enroll an email address and an SMS number with authctl, then log in with
// each: the code is read where notifyd would read it, on the gateway stream.
func TestCodeEnrollAndLogin(t *testing.T) {
	natsAddr := freePort(t)
	addr, dataDir := startAuthd(t, "-nats-listen", natsAddr)
	nc, err := nats.Connect("nats://" + natsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ method, to, masked string }{
		{"email", "alice@example.com", "a•••@example.com"},
		{"sms", "+4915123456712", "+49 •••• ••12"},
	} {
		s := start(t, addr, dataDir, "code", "enroll", "alice", "-method", tc.method, "-to", tc.to)
		s.until(`^A 6-digit code was sent to ` + regexp.QuoteMeta(tc.masked))
		code, _ := lastCode(t, js, tc.method)
		s.answer("000000x")
		s.answer(code)
		if out := s.wait(); !strings.Contains(out, "Enrolled") {
			t.Fatalf("%s enroll:\n%s", tc.method, out)
		}

		s = start(t, addr, dataDir, "login", "alice", "-method", tc.method)
		s.until(`^A 6-digit code was sent to `)
		s.answer("resend") // during the cooldown: refused, the login goes on
		s.until(`Not resent: .*resend is allowed in`)
		code, msgID := lastCode(t, js, tc.method)
		s.answer(code)
		if out := s.wait(); !strings.Contains(out, "Accepted: alice") {
			t.Fatalf("%s login:\n%s", tc.method, out)
		}
		if msgID == "" {
			t.Fatal("gateway send without a message id")
		}
	}
}
