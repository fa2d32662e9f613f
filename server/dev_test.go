package server_test

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
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
