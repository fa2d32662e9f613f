package server_test

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/twofactor/twofactor/clients/pushdevice"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/push"
	"github.com/twofactor/twofactor/server"
	"github.com/twofactor/twofactor/storage/storagetest"
)

type deviceRig struct {
	svc    *push.Service
	client pb.DeviceServiceClient
}

func newDeviceRig(t *testing.T, cfg push.Config, o server.DeviceOptions) *deviceRig {
	t.Helper()
	svc, err := push.New(storagetest.Open(t), storagetest.KeyRing(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	pb.RegisterDeviceServiceServer(g, server.NewDeviceService(svc, o))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &deviceRig{svc: svc, client: pb.NewDeviceServiceClient(conn)}
}

func (r *deviceRig) enroll(t *testing.T, user string) *pushdevice.Device {
	t.Helper()
	en, err := r.svc.BeginEnrollment(context.Background(), user, "")
	if err != nil {
		t.Fatal(err)
	}
	d, _ := pushdevice.New()
	if err := d.Enroll(context.Background(), r.client, en.Token, "Pixel", "android", nil); err != nil {
		t.Fatalf("enroll: %v", err)
	}
	if d.UserID != user || d.ID == "" {
		t.Fatalf("enrolled %+v", d)
	}
	// The token is used up.
	d2, _ := pushdevice.New()
	if err := d2.Enroll(context.Background(), r.client, en.Token, "Other", "web", nil); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("second enrollment with one token: %v", err)
	}
	return d
}

func TestDeviceServiceFlow(t *testing.T) {
	r := newDeviceRig(t, push.Config{}, server.DeviceOptions{Poll: 20 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d := r.enroll(t, "alice")

	stream, err := d.Watch(ctx, r.client)
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.svc.Begin(ctx, push.BeginInput{UserID: "alice", Client: "Nextcloud", ClientIP: "203.0.113.9", UserAgent: "Firefox"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := stream.Recv()
	if err != nil || got.GetPush().GetChallengeId() != b.ChallengeID {
		t.Fatalf("watch = %v, %v", got, err)
	}
	pending, err := d.Pending(ctx, r.client)
	if err != nil || len(pending) != 1 {
		t.Fatalf("pending = %v, %v", pending, err)
	}
	pc, err := d.Context(ctx, r.client, b.ChallengeID)
	if err != nil || pc.GetClient() != "Nextcloud" || pc.GetClientIp() != "203.0.113.9" || pc.GetNumberMode() != pb.NumberMode_NUMBER_MODE_DIGITS || pc.GetDigits() != 2 {
		t.Fatalf("context = %v, %v", pc, err)
	}
	resp, err := d.Respond(ctx, r.client, b.ChallengeID, pb.PushDecision_PUSH_DECISION_APPROVE, b.Number)
	if err != nil || resp.GetResult() != pb.PushResult_PUSH_RESULT_APPROVED {
		t.Fatalf("respond = %v, %v", resp, err)
	}
	if st, _ := r.svc.Verify(ctx, "alice", b.ChallengeID); st != push.StatusAccepted {
		t.Fatalf("verify = %s", st)
	}
	if _, err := d.Respond(ctx, r.client, b.ChallengeID, pb.PushDecision_PUSH_DECISION_APPROVE, b.Number); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("answered twice: %v", err)
	}
	// The device is revoked: its stream ends, its requests fail.
	if err := r.svc.Revoke(ctx, "alice", d.ID); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err = stream.Recv(); err != nil {
			break
		}
	}
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("stream of a revoked device ended with %v", err)
	}
	if _, err := d.Pending(ctx, r.client); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("revoked device lists: %v", err)
	}
}

func TestDeviceServiceRefusals(t *testing.T) {
	r := newDeviceRig(t, push.Config{}, server.DeviceOptions{})
	ctx := context.Background()
	d := r.enroll(t, "alice")
	b, err := r.svc.Begin(ctx, push.BeginInput{UserID: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	// A replayed request.
	auth, _ := d.Auth(push.PurposeGetContext, b.ChallengeID)
	req := &pb.GetPushContextRequest{Auth: auth, ChallengeId: b.ChallengeID}
	if _, err := r.client.GetPushContext(ctx, req); err != nil {
		t.Fatal(err)
	}
	if _, err := r.client.GetPushContext(ctx, req); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("replay: %v", err)
	}
	// A request signed for another challenge.
	auth, _ = d.Auth(push.PurposeGetContext, "other")
	if _, err := r.client.GetPushContext(ctx, &pb.GetPushContextRequest{Auth: auth, ChallengeId: b.ChallengeID}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("signed for another challenge: %v", err)
	}
	// No decision; then a wrong number: a result, not an error.
	if _, err := d.Respond(ctx, r.client, b.ChallengeID, pb.PushDecision_PUSH_DECISION_UNSPECIFIED, ""); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("no decision: %v", err)
	}
	wrong := "00"
	if b.Number == wrong {
		wrong = "11"
	}
	resp, err := d.Respond(ctx, r.client, b.ChallengeID, pb.PushDecision_PUSH_DECISION_APPROVE, wrong)
	if err != nil || resp.GetResult() != pb.PushResult_PUSH_RESULT_WRONG_NUMBER {
		t.Fatalf("wrong number = %v, %v", resp, err)
	}
	// Another user's device sees nothing of alice's push.
	m := r.enroll(t, "mallory")
	if _, err := m.Context(ctx, r.client, b.ChallengeID); status.Code(err) != codes.NotFound {
		t.Fatalf("another user's device: %v", err)
	}
	// Bad enrollment input names its field.
	en, _ := r.svc.BeginEnrollment(ctx, "alice", "")
	d3, _ := pushdevice.New()
	err = d3.Enroll(ctx, r.client, en.Token, "", "android", nil)
	if status.Code(err) != codes.InvalidArgument || status.Convert(err).Message()[:5] != "name:" {
		t.Fatalf("empty name: %v", err)
	}
}
