package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/twofactor/twofactor/clients/pushdevice"
	"github.com/twofactor/twofactor/internal/testfix"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
)

// enrollPush enrolls a device for user: the token from EnrollmentService on r,
// the device's own enrollment through DeviceService on dr.
func enrollPush(t *testing.T, c *cluster, r, dr *replica, user string) *pushdevice.Device {
	t.Helper()
	token, d := pushToken(t, c, r, user)
	// The device API takes no API key.
	if err := d.Enroll(context.Background(), dr.devices(), token, "Phone", "android", nil); err != nil {
		t.Fatalf("FinishDeviceEnrollment: %v", err)
	}
	return d
}

// pushToken begins a push enrollment for user on r and returns its token and a
// new device (on the cluster's clock) to enroll with it.
func pushToken(t *testing.T, c *cluster, r *replica, user string) (string, *pushdevice.Device) {
	t.Helper()
	begin, err := r.enrollment().BeginEnrollment(c.as("selfservice"), &pb.BeginEnrollmentRequest{UserId: user, Method: pb.Method_METHOD_PUSH})
	if err != nil {
		t.Fatalf("BeginEnrollment(push): %v", err)
	}
	if begin.GetPush().GetToken() == "" || len(begin.GetPush().GetQrPng()) == 0 {
		t.Fatalf("push enrollment = %v", begin)
	}
	d, err := pushdevice.New()
	if err != nil {
		t.Fatal(err)
	}
	d.Now = c.clock.Now
	return begin.GetPush().GetToken(), d
}

func beginPush(t *testing.T, c *cluster, r *replica, user string) *pb.BeginChallengeResponse {
	t.Helper()
	resp, err := r.challenges().BeginChallenge(c.as("login"), &pb.BeginChallengeRequest{UserId: user, Method: pb.Method_METHOD_PUSH,
		Context: &pb.ClientContext{Ip: "203.0.113.7", UserAgent: "Firefox/140", Client: "web"}})
	if err != nil {
		t.Fatalf("BeginChallenge(push): %v", err)
	}
	return resp
}

func verifyPush(c *cluster, r *replica, id string, wait time.Duration) (*pb.VerifyChallengeResponse, error) {
	return r.challenges().VerifyChallenge(c.as("login"), &pb.VerifyChallengeRequest{ChallengeId: id,
		Response: &pb.VerifyChallengeRequest_Push{Push: &pb.PushWait{Wait: durationpb.New(wait)}}})
}

// Begin on A, the device answers on B, the verify waiting on A is woken by B's
// announcement through NATS.
func TestPushLoginAcrossReplicas(t *testing.T) {
	c := newCluster(t)
	waiting := make(chan string, 4)
	c.pushOnWait = func(id string) { waiting <- id }
	a, b := c.start(), c.start()
	d := enrollPush(t, c, a, b, "alice")
	list, err := a.enrollment().ListFactors(c.as("selfservice"), &pb.ListFactorsRequest{UserId: "alice"})
	if err != nil || len(list.GetFactors()) != 1 || list.GetFactors()[0].GetMethod() != pb.Method_METHOD_PUSH {
		t.Fatalf("factors = %v, %v", list, err)
	}
	req, err := a.challenges().GetLoginRequirements(c.as("login"), &pb.GetLoginRequirementsRequest{UserId: "alice"})
	if err != nil || len(req.GetAvailableMethods()) != 1 || req.GetAvailableMethods()[0] != pb.Method_METHOD_PUSH {
		t.Fatalf("requirements = %v, %v", req, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stream, err := d.Watch(ctx, b.devices())
	if err != nil {
		t.Fatal(err)
	}
	begun := beginPush(t, c, a, "alice")
	if len(begun.GetPush().GetNumber()) != 2 || begun.GetPush().GetDevices() != 1 {
		t.Fatalf("begun = %v", begun)
	}
	// Without a wait: pending, and no attempt used.
	if v, err := verifyPush(c, a, begun.GetChallengeId(), 0); err != nil || v.GetResult() != pb.VerifyResult_VERIFY_RESULT_PENDING || v.GetRemainingAttempts() != 5 {
		t.Fatalf("verify before the answer = %v, %v", v, err)
	}
	type result struct {
		v   *pb.VerifyChallengeResponse
		err error
		at  time.Time
	}
	done := make(chan result, 1)
	go func() {
		v, err := verifyPush(c, a, begun.GetChallengeId(), 30*time.Second)
		done <- result{v, err, time.Now()}
	}()
	msg, err := stream.Recv() // the device learns of the push through its stream on B
	if err != nil {
		t.Fatal(err)
	}
	pid := msg.GetPush().GetChallengeId()
	pc, err := d.Context(ctx, b.devices(), pid)
	if err != nil || pc.GetClientIp() != "203.0.113.7" || pc.GetUserAgent() != "Firefox/140" || pc.GetClient() != "web" {
		t.Fatalf("context = %v, %v", pc, err)
	}
	<-waiting // A waits for the answer
	answered := time.Now()
	if resp, err := d.Respond(ctx, b.devices(), pid, pb.PushDecision_PUSH_DECISION_APPROVE, begun.GetPush().GetNumber()); err != nil || resp.GetResult() != pb.PushResult_PUSH_RESULT_APPROVED {
		t.Fatalf("respond = %v, %v", resp, err)
	}
	r := <-done
	if r.err != nil || r.v.GetResult() != pb.VerifyResult_VERIFY_RESULT_ACCEPTED || r.v.GetUserId() != "alice" {
		t.Fatalf("waiting verify = %v, %v", r.v, r.err)
	}
	// Woken by the announcement: long before the 30 s wait ran out.
	woke := r.at.Sub(answered)
	if woke > 10*time.Second {
		t.Fatalf("the verify returned %s after the answer: not woken by the announcement", woke)
	}
	t.Logf("from the device's RespondPush on B to the accepted verify on A: %s", woke)
	// Redeemed once.
	if v, _ := verifyPush(c, b, begun.GetChallengeId(), 0); v.GetResult() != pb.VerifyResult_VERIFY_RESULT_EXPIRED {
		t.Fatalf("second verify = %v", v)
	}
}

func TestPushDeniedAndLimits(t *testing.T) {
	c := newCluster(t)
	a, b := c.start(), c.start()
	d := enrollPush(t, c, a, a, "alice")
	ctx := context.Background()
	begun := beginPush(t, c, a, "alice")
	// A second begin while one is pending: refused on any replica.
	if _, err := b.challenges().BeginChallenge(c.as("login"), &pb.BeginChallengeRequest{UserId: "alice", Method: pb.Method_METHOD_PUSH}); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("begin while pending: %v", err)
	}
	pending, err := d.Pending(ctx, a.devices())
	if err != nil || len(pending) != 1 {
		t.Fatalf("pending = %v, %v", pending, err)
	}
	wrong := "00"
	if begun.GetPush().GetNumber() == wrong {
		wrong = "11"
	}
	resp, err := d.Respond(ctx, b.devices(), pending[0].GetChallengeId(), pb.PushDecision_PUSH_DECISION_APPROVE, wrong)
	if err != nil || resp.GetResult() != pb.PushResult_PUSH_RESULT_WRONG_NUMBER {
		t.Fatalf("wrong number = %v, %v", resp, err)
	}
	v, err := verifyPush(c, a, begun.GetChallengeId(), 5*time.Second)
	if err != nil || v.GetResult() != pb.VerifyResult_VERIFY_RESULT_REJECTED || v.GetReason() != pb.RejectReason_REJECT_REASON_DENIED {
		t.Fatalf("verify after a wrong number = %v, %v", v, err)
	}
	if v, _ := verifyPush(c, a, begun.GetChallengeId(), 0); v.GetResult() != pb.VerifyResult_VERIFY_RESULT_EXPIRED {
		t.Fatalf("verify after the denial was reported = %v", v)
	}
	c.flushAudit()
	for _, ev := range []string{`"event":"push.fatigue_suspected"`, `"event":"challenge.rejected"`} {
		if !strings.Contains(c.logs.String(), ev) {
			t.Errorf("audit trail lacks %s", ev)
		}
	}
	// The denial backs the next push off 10 s, then exactly one of concurrent begins wins.
	if _, err := a.challenges().BeginChallenge(c.as("login"), &pb.BeginChallengeRequest{UserId: "alice", Method: pb.Method_METHOD_PUSH}); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("begin during the backoff: %v", err)
	}
	c.clock.Add(10 * time.Second)
	replicas := []*replica{a, b}
	errs := testfix.AtOnce(10, func(i int) error {
		_, err := replicas[i%2].challenges().BeginChallenge(c.as("login"), &pb.BeginChallengeRequest{UserId: "alice", Method: pb.Method_METHOD_PUSH})
		return err
	})
	won, refused := 0, 0
	for _, err := range errs {
		switch status.Code(err) {
		case codes.OK:
			won++
		case codes.ResourceExhausted:
			refused++
		default:
			t.Errorf("begin: %v", err)
		}
	}
	if won != 1 || refused != 9 {
		t.Fatalf("%d begun, %d refused: want exactly one", won, refused)
	}
	// Exactly the pushes begun were handed to notifyd: the first and the one winner.
	st, err := c.js.Stream(ctx, c.names.PushStream())
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil || info.State.Msgs != 2 {
		t.Fatalf("push requests published: %v, %v; want 2", info.State.Msgs, err)
	}
}

// "This was not me" locks push approval until the user signs in with another factor.
func TestPushNotMeLocksUntilAnotherFactor(t *testing.T) {
	c := newCluster(t)
	c.pushLockOnNotMe = true
	r := c.start()
	d := enrollPush(t, c, r, r, "alice")
	backup := issueBackupCodes(t, c, r, "alice")
	ctx := context.Background()
	beginPush(t, c, r, "alice")
	pending, err := d.Pending(ctx, r.devices())
	if err != nil || len(pending) != 1 {
		t.Fatalf("pending = %v, %v", pending, err)
	}
	resp, err := d.Respond(ctx, r.devices(), pending[0].GetChallengeId(), pb.PushDecision_PUSH_DECISION_NOT_ME, "")
	if err != nil || resp.GetResult() != pb.PushResult_PUSH_RESULT_NOT_ME || !resp.GetLocked() {
		t.Fatalf("not me = %v, %v", resp, err)
	}
	c.clock.Add(2 * time.Hour) // past any backoff: only the lock refuses
	_, err = r.challenges().BeginChallenge(c.as("login"), &pb.BeginChallengeRequest{UserId: "alice", Method: pb.Method_METHOD_PUSH})
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(status.Convert(err).Message(), "locked") {
		t.Fatalf("begin while locked: %v", err)
	}
	id := beginWith(t, c, r, "alice", pb.Method_METHOD_BACKUP_CODE)
	v, err := r.challenges().VerifyChallenge(c.as("login"), &pb.VerifyChallengeRequest{ChallengeId: id,
		Response: &pb.VerifyChallengeRequest_Code{Code: backup[0]}})
	if err != nil || v.GetResult() != pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
		t.Fatalf("backup code login = %v, %v", v, err)
	}
	beginPush(t, c, r, "alice")
}
