package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/natstest"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/otpcode"
	"github.com/twofactor/twofactor/server"
	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// A push whose request could not be published (this replica's NATS connection
// closed) fails BeginChallenge with Unavailable and is withdrawn: no device
// sees it, it blocks no next push, and it counts neither toward the day's cap
// nor toward the backoff. The next begin, on a replica with NATS, works and counts.
func TestPushUnpublishedIsWithdrawn(t *testing.T) {
	c := newCluster(t)
	a, b := c.start(), c.start()
	d := enrollPush(t, c, a, a, "alice")
	a.nc.Close() // a can no longer publish push requests
	for range 3 {
		_, err := a.challenges().BeginChallenge(c.as("login"), &pb.BeginChallengeRequest{UserId: "alice", Method: pb.Method_METHOD_PUSH})
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("begin with NATS closed: %v, want Unavailable", err)
		}
	}
	ctx := context.Background()
	if pending, err := d.Pending(ctx, b.devices()); err != nil || len(pending) != 0 {
		t.Fatalf("pending after unpublished pushes = %v, %v; want none", pending, err)
	}
	st := storagetest.OpenURL(t, c.url)
	l, err := st.GetPushLimit(ctx, "alice")
	if err != nil || l.PendingID != "" || l.DayCount != 0 || l.Level != 0 || !l.NextAllowedAt.IsZero() {
		t.Fatalf("limit after unpublished pushes = %+v, %v; want nothing reserved", l, err)
	}
	begun := beginPush(t, c, b, "alice") // old code: ResourceExhausted (a push pending)
	pending, err := d.Pending(ctx, b.devices())
	if err != nil || len(pending) != 1 || pending[0].GetChallengeId() == "" {
		t.Fatalf("pending = %v, %v; want the published push", pending, err)
	}
	if l, err = st.GetPushLimit(ctx, "alice"); err != nil || l.DayCount != 1 || l.PendingID == "" {
		t.Fatalf("limit after a published push = %+v, %v; want it counted and pending", l, err)
	}
	// The withdrawn challenges are gone for VerifyChallenge too; the published one is pending.
	if v, err := verifyPush(c, b, begun.GetChallengeId(), 0); err != nil || v.GetResult() != pb.VerifyResult_VERIFY_RESULT_PENDING {
		t.Fatalf("verify = %v, %v", v, err)
	}
}

// deliveryFailedLog is the message of a logged delivery failure.
const deliveryFailedLog = `"msg":"out-of-band delivery failed"`

// natsOutbox publishes sends as authd does (GatewaySender, over its replica's
// own NATS connection) and keeps those published, so a test reads the code.
type natsOutbox struct {
	g   server.GatewaySender
	mem *memOutbox
}

func (o natsOutbox) SendOutOfBand(ctx context.Context, s *otpcode.Send) error {
	if err := o.g.SendOutOfBand(ctx, s); err != nil {
		return err
	}
	return o.mem.SendOutOfBand(ctx, s)
}

// A code whose send could not be published (this replica's NATS connection
// closed) fails BeginChallenge, BeginEnrollment and ResendChallenge with Unavailable and is
// taken back from the daily caps of the user and the destination; the sends
// really published still count up to the cap.
func TestOTPCodeUnpublishedSendsAreNotCounted(t *testing.T) {
	c := newCluster(t)
	key, err := notify.GenerateDeliveryKey()
	if err != nil {
		t.Fatal(err)
	}
	mem := &memOutbox{}
	var conns []*nats.Conn
	c.factorFns = append(c.factorFns, func(st *storage.Store) []server.Factor {
		p, err := otpcode.New(st, c.ring, otpcode.Config{UserDailyCap: 3, DestinationDailyCap: 3}, otpcode.Options{Clock: c.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		nc := natstest.Dial(t, c.nc)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, nc)
		return server.OTPCodeFactors(p, natsOutbox{g: server.GatewaySender{Events: notify.NewPublisher(js, nc, c.names).WithDeliveryKey(key)}, mem: mem})
	})
	a, b := c.start(), c.start()
	enrollOTP(t, c, b, mem, "alice", pb.Method_METHOD_EMAIL, "alice@example.com") // send 1 of 3
	conns[0].Close()                                                              // a can no longer publish
	ctx := c.as("login")
	for range 3 {
		_, err := a.challenges().BeginChallenge(ctx, &pb.BeginChallengeRequest{UserId: "alice", Method: pb.Method_METHOD_EMAIL})
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("begin with NATS closed: %v, want Unavailable", err)
		}
	}
	logged := strings.Count(c.logs.String(), deliveryFailedLog)
	_, err = a.enrollment().BeginEnrollment(c.as("selfservice"), &pb.BeginEnrollmentRequest{UserId: "alice", Method: pb.Method_METHOD_EMAIL,
		Options: &pb.BeginEnrollmentRequest_OutOfBand{OutOfBand: &pb.OutOfBandEnrollmentOptions{Destination: "alice@example.com"}}})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("enrollment with NATS closed: %v, want Unavailable", err)
	}
	// The cause is logged as a challenge's is (old code: the enrollment's was not).
	if n := strings.Count(c.logs.String(), deliveryFailedLog); n != logged+1 {
		t.Fatalf("enrollment's failed delivery logged %d times, want once", n-logged)
	}
	// The pending factor whose id the caller never got is gone (old code: it
	// held a slot of the channel's cap until it expired).
	list, err := b.enrollment().ListFactors(c.as("selfservice"), &pb.ListFactorsRequest{UserId: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range list.GetFactors() {
		if f.GetState() == pb.FactorState_FACTOR_STATE_PENDING {
			t.Fatalf("the unpublished enrollment left a pending factor %s", f.GetId())
		}
	}
	bc := beginOTP(t, c, b, "alice", pb.Method_METHOD_EMAIL) // 2 (old code: the cap was used up)
	c.clock.Add(time.Minute)
	_, err = a.challenges().ResendChallenge(ctx, &pb.ResendChallengeRequest{ChallengeId: bc.GetChallengeId()})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("resend with NATS closed: %v, want Unavailable", err)
	}
	st, err := b.challenges().GetChallengeStatus(ctx, &pb.GetChallengeStatusRequest{ChallengeId: bc.GetChallengeId()})
	if err != nil || st.GetDelivery().GetSends() != 1 || st.GetDelivery().GetState() != pb.DeliveryState_DELIVERY_STATE_FAILED ||
		st.GetDelivery().GetReason() != otpcode.DeliveryNotPublished {
		t.Fatalf("status after an unpublished resend = %v, %v", st, err)
	}
	beginOTP(t, c, b, "alice", pb.Method_METHOD_EMAIL) // 3
	_, err = b.challenges().BeginChallenge(ctx, &pb.BeginChallengeRequest{UserId: "alice", Method: pb.Method_METHOD_EMAIL})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("fourth published send of the day: %v, want ResourceExhausted", err)
	}
	if n := mem.count(); n != 3 {
		t.Fatalf("%d messages published, want 3", n)
	}
}
