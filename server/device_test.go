package server_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/twofactor/twofactor/clients/pushdevice"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/push"
	"github.com/twofactor/twofactor/server"
	"github.com/twofactor/twofactor/server/throttle"
	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

type deviceRig struct {
	svc    *push.Service
	client pb.DeviceServiceClient
	g      *grpc.Server
}

func newDeviceRig(t *testing.T, cfg push.Config, o server.DeviceOptions) *deviceRig {
	t.Helper()
	return newDeviceRigWith(t, cfg, func(*storage.Store) server.DeviceOptions { return o })
}

// newDeviceRigWith builds the options on the rig's store (e.g. a throttle's Guard).
func newDeviceRigWith(t *testing.T, cfg push.Config, opts func(*storage.Store) server.DeviceOptions) *deviceRig {
	t.Helper()
	store := storagetest.Open(t)
	svc, err := push.New(store, storagetest.KeyRing(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	pb.RegisterDeviceServiceServer(g, server.NewDeviceService(svc, opts(store)))
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
	return &deviceRig{svc: svc, client: pb.NewDeviceServiceClient(conn), g: g}
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

// Refused device requests are counted before they are evaluated (throttle.Guard,
// on the rig's store): after DeviceDelayAfter bad signatures, stale timestamps or
// replays the device is delayed, and even a well-signed request is refused
// (ResourceExhausted with a RetryInfo) without being looked at; once the delay
// is over it is accepted and the count starts again. Bad requests naming other
// devices from one network delay that network (IPDelayAfter), whatever device
// they name. Real ECDSA keys (clients/pushdevice) sign every request.
func TestDeviceRequestsThrottled(t *testing.T) {
	clock := &testClock{t: time.Now()} // the devices enroll on their own clocks
	tcfg := throttle.Config{BaseDelay: time.Second, MaxDelay: time.Minute, DeviceDelayAfter: 2, IPDelayAfter: 6}
	r := newDeviceRigWith(t, push.Config{Now: clock.Now}, func(st *storage.Store) server.DeviceOptions {
		th, err := throttle.New(st, tcfg, clock.Now)
		if err != nil {
			t.Fatal(err)
		}
		return server.DeviceOptions{Guard: th.Guard}
	})
	ctx := context.Background()
	d, bob := r.enroll(t, "alice"), r.enroll(t, "bob")
	d.Now, bob.Now = clock.Now, clock.Now
	list := func(a *pb.DeviceAuth) error {
		_, err := r.client.ListPendingPushes(ctx, &pb.ListPendingPushesRequest{Auth: a})
		return err
	}
	good, _ := d.Auth(push.PurposeListPending)
	if err := list(good); err != nil {
		t.Fatal(err)
	}
	// Three refusals of three kinds: the first two are free, the third delays.
	forged, _ := d.Auth(push.PurposeListPending)
	forged.Signature[3] ^= 1
	stale, _ := d.Auth(push.PurposeListPending)
	stale.TimestampMs -= (2 * time.Minute).Milliseconds()
	for i, bad := range []*pb.DeviceAuth{forged, stale, good} { // good again: a replay
		if err := list(bad); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("bad request %d: %v", i, err)
		}
	}
	fresh, _ := d.Auth(push.PurposeListPending)
	err := list(fresh)
	wait := retryDelay(t, err)
	if wait <= 0 || wait > 2*time.Second {
		t.Fatalf("delayed device: %v (retry after %v)", err, wait)
	}
	// Not evaluated: the same signed request passes once the delay is over.
	clock.Add(wait)
	if err := list(fresh); err != nil {
		t.Fatalf("after the delay: %v", err)
	}
	// The success reset the device's count: two refusals are free again.
	for range 2 {
		bad, _ := d.Auth(push.PurposeListPending)
		bad.Signature[3] ^= 1
		if err := list(bad); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("refusal after the reset: %v", err)
		}
	}
	ok, _ := d.Auth(push.PurposeListPending)
	if err := list(ok); err != nil {
		t.Fatalf("within the free refusals: %v", err)
	}

	// The network: two more refusals (naming a device that does not exist) pass
	// the network's six free ones, counted with the five above: now bob's
	// well-signed request from it waits too.
	for range 2 {
		ghost, _ := bob.Auth(push.PurposeListPending)
		ghost.DeviceId = "00000000-0000-4000-8000-000000000000"
		if err := list(ghost); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("unknown device: %v", err)
		}
	}
	fine, _ := bob.Auth(push.PurposeListPending)
	if wait := retryDelay(t, list(fine)); wait <= 0 {
		t.Fatal("the network is not delayed after its refusals")
	}
}

// retryDelay checks a ResourceExhausted status and returns its RetryInfo.
func retryDelay(t *testing.T, err error) time.Duration {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted {
		t.Fatalf("want ResourceExhausted, got %v", err)
	}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	t.Fatalf("%v: no RetryInfo", err)
	return 0
}

// A device watching its pushes does not hold a graceful stop: Drain's channel
// ends the stream (Unavailable, so the device reconnects elsewhere) and
// GracefulStop returns.
func TestWatchPushesEndsOnStop(t *testing.T) {
	stopping := make(chan struct{})
	r := newDeviceRig(t, push.Config{}, server.DeviceOptions{Poll: time.Hour, Stopping: stopping})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := r.enroll(t, "alice")
	b, err := r.svc.Begin(ctx, push.BeginInput{UserID: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	stream, err := d.Watch(ctx, r.client)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := stream.Recv(); err != nil || got.GetPush().GetChallengeId() != b.ChallengeID {
		t.Fatalf("watch = %v, %v", got, err) // the stream is open and served
	}
	stopped := make(chan struct{})
	close(stopping)
	go func() { r.g.GracefulStop(); close(stopped) }()
	_, err = stream.Recv()
	if status.Code(err) != codes.Unavailable || errors.Is(err, io.EOF) {
		t.Fatalf("stream at stop ended with %v, want Unavailable", err)
	}
	<-stopped // would hang (and the test time out) if the stream held it
}

// watchStream is the server side of a WatchPushes stream, without a network:
// the test controls when the caller's context ends.
type watchStream struct {
	grpc.ServerStream
	ctx  context.Context
	sent chan *pb.WatchPushesResponse
}

func (s *watchStream) Context() context.Context { return s.ctx }
func (s *watchStream) Send(m *pb.WatchPushesResponse) error {
	s.sent <- m
	return nil
}

// A caller whose deadline passes gets DeadlineExceeded, not OK: with OK its
// Recv could read io.EOF before its own deadline fired, and a listener would
// take a deadline for the server ending the stream.
func TestWatchPushesEndsWithTheCallersStatus(t *testing.T) {
	r := newDeviceRig(t, push.Config{}, server.DeviceOptions{Poll: time.Hour})
	d := r.enroll(t, "alice")
	if _, err := r.svc.Begin(context.Background(), push.BeginInput{UserID: "alice"}); err != nil {
		t.Fatal(err)
	}
	h := server.NewDeviceService(r.svc, server.DeviceOptions{Poll: time.Hour})
	for _, end := range []struct {
		cause error
		want  codes.Code
	}{{context.DeadlineExceeded, codes.DeadlineExceeded}, {context.Canceled, codes.Canceled}} {
		ctx, cancel := context.WithCancelCause(context.Background())
		ctx = &endedWith{Context: ctx, err: &end.cause}
		s := &watchStream{ctx: ctx, sent: make(chan *pb.WatchPushesResponse, 1)}
		auth, _ := d.Auth(push.PurposeWatch)
		done := make(chan error, 1)
		go func() { done <- h.WatchPushes(&pb.WatchPushesRequest{Auth: auth}, s) }()
		<-s.sent // served: now the caller's context ends
		cancel(end.cause)
		if err := <-done; status.Code(err) != end.want {
			t.Fatalf("ended by %v: WatchPushes returned %v, want %v", end.cause, err, end.want)
		}
	}
}

// endedWith reports err as the context's error once it is done, as a context
// whose deadline passed does (context.WithDeadline cannot be ended at will).
type endedWith struct {
	context.Context
	err *error
}

func (c *endedWith) Err() error {
	if c.Context.Err() != nil {
		return *c.err
	}
	return nil
}
