package server_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/twofactor/twofactor/notify/tglink"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/server"
)

// DevService needs the admin role, and an authd whose wiring gives no simulated
// Telegram Start (anything but embedded mode with the outbox) refuses it whatever the
// input, before reading it.
func TestDevServiceRefusedOutsideEmbeddedOutbox(t *testing.T) {
	c := newCluster(t)
	r := c.start()
	dev := pb.NewDevServiceClient(r.conn)
	req := &pb.SimulateTelegramStartRequest{Link: "https://t.me/TwofactorBot?start=abc"}
	if _, err := dev.SimulateTelegramStart(c.as("selfservice"), req); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("selfservice caller: %v", err)
	}
	for _, req := range []*pb.SimulateTelegramStartRequest{req, {Link: "not a link", ChatId: "x"}} {
		_, err := dev.SimulateTelegramStart(c.as("admin"), req)
		if status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("SimulateTelegramStart(%v): %v, want FailedPrecondition", req, err)
		}
	}
}

// With the simulated Start wired (embedded mode with the outbox), SimulateTelegramStart
// hands the link's token and the chat on; bad input is InvalidArgument naming the
// field, and is never handed on.
func TestDevServiceSimulateTelegramStartInput(t *testing.T) {
	c := newCluster(t)
	type start struct{ token, chat string }
	var got []start
	c.devTelegram = func(_ context.Context, token, chat string) error {
		got = append(got, start{token, chat})
		return nil
	}
	r := c.start()
	dev := pb.NewDevServiceClient(r.conn)
	tok := tglink.NewToken()
	link, err := tglink.DeepLink(tglink.DevBot, tok)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dev.SimulateTelegramStart(c.as("login"), &pb.SimulateTelegramStartRequest{Link: link}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("login caller: %v", err)
	}
	for _, bad := range []struct {
		req   *pb.SimulateTelegramStartRequest
		field string
	}{
		{&pb.SimulateTelegramStartRequest{}, "link"},
		{&pb.SimulateTelegramStartRequest{Link: strings.Repeat("a", tglink.MaxLinkLen+1)}, "link"},
		{&pb.SimulateTelegramStartRequest{Link: strings.Repeat("a", tglink.MaxTokenLen+1)}, "link"},
		{&pb.SimulateTelegramStartRequest{Link: "https://t.me/" + tglink.DevBot + "?start=a%20b"}, "link"},
		{&pb.SimulateTelegramStartRequest{Link: "https://example.org/?start=" + tok}, "link"},
		{&pb.SimulateTelegramStartRequest{Link: link, ChatId: "12a"}, "chat_id"},
		{&pb.SimulateTelegramStartRequest{Link: link, ChatId: strings.Repeat("1", 21)}, "chat_id"},
	} {
		_, err := dev.SimulateTelegramStart(c.as("admin"), bad.req)
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), bad.field+":") {
			t.Errorf("SimulateTelegramStart(%v): %v, want InvalidArgument naming %s", bad.req, err, bad.field)
		}
	}
	if len(got) != 0 {
		t.Fatalf("bad input handed on: %v", got)
	}
	res, err := dev.SimulateTelegramStart(c.as("admin"), &pb.SimulateTelegramStartRequest{Link: link})
	if err != nil || res.GetChatId() != server.DevTelegramChat {
		t.Fatalf("SimulateTelegramStart: %v, %v", res, err)
	}
	if _, err := dev.SimulateTelegramStart(c.as("admin"), &pb.SimulateTelegramStartRequest{Link: tok, ChatId: "-1001234"}); err != nil {
		t.Fatal(err)
	}
	if want := []start{{tok, server.DevTelegramChat}, {tok, "-1001234"}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("handed on %v, want %v", got, want)
	}
}
