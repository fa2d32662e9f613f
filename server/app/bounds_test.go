package app

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/server"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// Issue 16, finding 4, through a whole authd (on PostgreSQL when the environment
// names one, whose audit INSERT failed on a long or NUL user agent): an IP with a
// 100-character zone and a NUL in the user agent are InvalidArgument naming the
// field; a 1000-byte user agent is cut to 512 and its audit record is written.
func TestClientContextIsBounded(t *testing.T) {
	a, key := startApp(t, "-database-url", storagetest.URL(t))
	conn, err := grpc.NewClient(a.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+key)
	apw, admin := pb.NewAppPasswordServiceClient(conn), pb.NewAdminServiceClient(conn)
	verify := func(c *pb.ClientContext) error {
		_, err := apw.VerifyAppPassword(ctx, &pb.VerifyAppPasswordRequest{Login: "alice", Password: "not-an-app-password", Context: c})
		return err
	}
	for _, tc := range []struct {
		c    *pb.ClientContext
		want string
	}{
		{&pb.ClientContext{Ip: "fe80::1%" + strings.Repeat("z", 100)}, "context.ip: is longer than 64 bytes"},
		{&pb.ClientContext{Ip: "fe80::1%" + strings.Repeat("z", 40)}, "context.ip: has a zone longer than 16 bytes"},
		{&pb.ClientContext{UserAgent: "Mozilla\x00"}, "context.user_agent: contains a NUL byte"},
		{&pb.ClientContext{Client: strings.Repeat("c", 300)}, "context.client: is longer than 255 bytes"},
	} {
		if err := verify(tc.c); status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != tc.want {
			t.Errorf("%v: %v, want InvalidArgument %q", tc.c, err, tc.want)
		}
	}
	ua := strings.Repeat("é", 500) // 1000 bytes
	if err := verify(&pb.ClientContext{Ip: "192.0.2.7", UserAgent: ua}); err != nil {
		t.Fatalf("a long user agent: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := admin.ListAuditEvents(ctx, &pb.ListAuditEventsRequest{UserId: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		if ev := res.GetEvents(); len(ev) > 0 {
			if got := ev[0].GetUserAgent(); got != strings.Repeat("é", server.MaxUserAgentLen/2) {
				t.Fatalf("audited user agent: %d bytes", len(got))
			}
			if len(ev) != 1 {
				t.Fatalf("%d audit events, want only the valid call's", len(ev))
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no audit record of the call with a long user agent")
		}
		time.Sleep(10 * time.Millisecond) // the audit writer batches in the background
	}
}
