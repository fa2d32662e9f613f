package server_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/twofactor/twofactor/notify"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/server"
	"github.com/twofactor/twofactor/server/challenge"
	"github.com/twofactor/twofactor/server/throttle"
	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// testCodeFactor is a test-only factor: a factor row per enrollment, a fixed
// enrollment proof, and per-challenge codes handed out by its Delivery (the
// out-of-band hook); each code is accepted once.
type testCodeFactor struct {
	st  *storage.Store
	now func() time.Time

	mu   sync.Mutex
	sent map[string]string // challenge uuid → code delivered
	used map[string]bool   // codes accepted
}

const testMethod = "test_code"

func (f *testCodeFactor) factor() server.Factor {
	return server.Factor{Name: testMethod, Method: pb.Method_METHOD_EMAIL, Enrollable: true, LowEntropy: true,
		Challenge: testCodeChallenges{f}, Enroll: testCodeEnroller{f}}
}

type testCodeEnroller struct{ f *testCodeFactor }

func (e testCodeEnroller) Begin(ctx context.Context, req *pb.BeginEnrollmentRequest) (*pb.BeginEnrollmentResponse, error) {
	now := e.f.now().UTC()
	exp := now.Add(time.Hour)
	fac := &storage.Factor{ID: uuid.NewString(), UserID: req.GetUserId(), Method: testMethod, Name: "test",
		State: storage.FactorPending, ExpiresAt: &exp, CreatedAt: now, UpdatedAt: now}
	if err := e.f.st.CreateFactor(ctx, fac); err != nil {
		return nil, err
	}
	return &pb.BeginEnrollmentResponse{FactorId: fac.ID}, nil
}

func (e testCodeEnroller) Finish(ctx context.Context, req *pb.FinishEnrollmentRequest) (*storage.Factor, error) {
	if req.GetCode() != "enroll-ok" {
		return nil, &server.WrongProof{Field: "code", Message: "wrong code"}
	}
	if ok, err := e.f.st.ActivateFactor(ctx, req.GetUserId(), req.GetFactorId(), e.f.now().UTC(), nil); err != nil || !ok {
		return nil, storage.ErrNotFound
	}
	return e.f.st.GetFactor(ctx, req.GetUserId(), req.GetFactorId())
}

type testCodeChallenges struct{ f *testCodeFactor }

func (m testCodeChallenges) Begin(ctx context.Context, in server.BeginInput) (server.BeginOutput, error) {
	fs, err := m.f.st.ListFactors(ctx, in.UserID, testMethod, storage.FactorActive)
	if err != nil {
		return server.BeginOutput{}, err
	}
	if len(fs) == 0 {
		return server.BeginOutput{}, server.ErrNoFactor
	}
	return server.BeginOutput{FactorID: fs[0].ID, Deliveries: []server.Delivery{m}}, nil
}

// Deliver "sends" the challenge's code: after the challenge is stored.
func (m testCodeChallenges) Deliver(ctx context.Context, b server.Begun) error {
	if _, err := m.f.st.GetChallenge(ctx, b.Challenge.ID); err != nil {
		return err // not stored yet: the hook ran too early
	}
	m.f.mu.Lock()
	defer m.f.mu.Unlock()
	m.f.sent[b.Challenge.ID] = "code-" + b.Challenge.ID[:8]
	return nil
}

func (m testCodeChallenges) Verify(ctx context.Context, ch *challenge.Challenge, ans server.Answer) (server.Verdict, error) {
	m.f.mu.Lock()
	defer m.f.mu.Unlock()
	switch {
	case ans.Code == "replayed-code" || m.f.used[ans.Code]:
		return server.Verdict{Reason: pb.RejectReason_REJECT_REASON_REPLAYED}, nil
	case ans.Code != m.f.sent[ch.ID]:
		return server.Verdict{Reason: pb.RejectReason_REJECT_REASON_WRONG_CODE}, nil
	}
	m.f.used[ans.Code] = true
	return server.Verdict{Accepted: true, FactorID: ch.FactorID}, nil
}

// A factor is one registration: a test-only factor registered in this file
// goes through enrollment, ListFactors, the policy, challenges (accepted,
// rejected, replayed), throttling and the audit trail with nothing else edited.
func TestTestOnlyFactorIsOneRegistration(t *testing.T) {
	c := newCluster(t)
	c.throttle = throttle.Config{IPDelayAfter: 2, UserDelayAfter: 3, UserLockAfter: 100, LockDuration: 15 * time.Minute}
	f := &testCodeFactor{st: storagetest.OpenURL(t, c.url), now: c.clock.Now, sent: map[string]string{}, used: map[string]bool{}}
	c.factors = []server.Factor{f.factor()}
	r := c.start()
	ctx := c.as("all")

	// Enrollment: a wrong proof is InvalidArgument naming the field, a right one activates.
	en, err := r.enrollment().BeginEnrollment(ctx, &pb.BeginEnrollmentRequest{UserId: "alice", Method: pb.Method_METHOD_EMAIL})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.enrollment().FinishEnrollment(ctx, &pb.FinishEnrollmentRequest{UserId: "alice", FactorId: en.GetFactorId(), Proof: &pb.FinishEnrollmentRequest_Code{Code: "nope"}})
	if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), "code:") {
		t.Fatalf("wrong proof: %v", err)
	}
	if _, err := r.enrollment().FinishEnrollment(ctx, &pb.FinishEnrollmentRequest{UserId: "alice", FactorId: en.GetFactorId(), Proof: &pb.FinishEnrollmentRequest_Code{Code: "enroll-ok"}}); err != nil {
		t.Fatal(err)
	}
	list, err := r.enrollment().ListFactors(ctx, &pb.ListFactorsRequest{UserId: "alice"})
	if err != nil || len(list.GetFactors()) != 1 || list.GetFactors()[0].GetMethod() != pb.Method_METHOD_EMAIL ||
		list.GetFactors()[0].GetState() != pb.FactorState_FACTOR_STATE_ACTIVE {
		t.Fatalf("ListFactors: %v, %v", list, err)
	}

	// A method no factor registers stays unusable.
	if _, err := r.challenges().BeginChallenge(ctx, &pb.BeginChallengeRequest{UserId: "alice", Method: pb.Method_METHOD_SMS}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("unregistered method: %v, want InvalidArgument", err)
	}

	// Policy: not allowed, then allowed.
	directory(t, c, r)
	setAllowed := func(ms ...pb.Method) {
		t.Helper()
		if _, err := r.admin().SetPolicy(c.as("admin"), &pb.SetPolicyRequest{ActorId: "root", Policy: &pb.Policy{AllowedMethods: ms}}); err != nil {
			t.Fatalf("SetPolicy(%v): %v", ms, err)
		}
	}
	setAllowed(pb.Method_METHOD_TOTP)
	begin := func() (string, error) {
		resp, err := r.challenges().BeginChallenge(ctx, &pb.BeginChallengeRequest{UserId: "alice", Method: pb.Method_METHOD_EMAIL})
		return resp.GetChallengeId(), err
	}
	if _, err := begin(); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("not allowed by policy: %v, want FailedPrecondition", err)
	}
	setAllowed(pb.Method_METHOD_TOTP, pb.Method_METHOD_EMAIL)
	req, err := r.challenges().GetLoginRequirements(ctx, &pb.GetLoginRequirementsRequest{UserId: "alice"})
	if err != nil || !equalMethods(req.GetAvailableMethods(), []pb.Method{pb.Method_METHOD_EMAIL}) {
		t.Fatalf("GetLoginRequirements: %v, %v", req, err)
	}

	verify := func(id, code string) *pb.VerifyChallengeResponse {
		t.Helper()
		resp, err := r.challenges().VerifyChallenge(ctx, &pb.VerifyChallengeRequest{ChallengeId: id, Response: &pb.VerifyChallengeRequest_Code{Code: code}})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	id, err := begin()
	if err != nil {
		t.Fatal(err)
	}
	if got := verify(id, "wrong"); got.GetResult() != pb.VerifyResult_VERIFY_RESULT_REJECTED || got.GetReason() != pb.RejectReason_REJECT_REASON_WRONG_CODE {
		t.Fatalf("wrong code: %v", got)
	}
	f.mu.Lock()
	code := f.sent[strings.SplitN(id, ".", 2)[0]]
	f.mu.Unlock()
	got := verify(id, code)
	if got.GetResult() != pb.VerifyResult_VERIFY_RESULT_ACCEPTED || got.GetMethod() != pb.Method_METHOD_EMAIL || got.GetUserId() != "alice" {
		t.Fatalf("right code: %v", got)
	}
	if again := verify(id, code); again.GetResult() != pb.VerifyResult_VERIFY_RESULT_EXPIRED {
		t.Fatalf("used challenge: %v, want expired", again)
	}
	id2, err := begin()
	if err != nil {
		t.Fatal(err)
	}
	if got := verify(id2, code); got.GetReason() != pb.RejectReason_REJECT_REASON_REPLAYED {
		t.Fatalf("replayed code: %v", got)
	}

	// Throttling: the user's failures delay the next attempt.
	for range 3 {
		verify(id2, "wrong")
	}
	if got := verify(id2, "wrong"); got.GetResult() != pb.VerifyResult_VERIFY_RESULT_THROTTLED || got.GetRetryAfter().AsDuration() <= 0 {
		t.Fatalf("after failures: %v, want throttled", got)
	}

	// The audit trail names the method.
	for _, event := range []string{notify.EventFactorEnrolled, notify.EventChallengeBegun, notify.EventChallengeAccepted, notify.EventChallengeRejected, notify.EventThrottled} {
		recs := c.auditOf(event)
		if len(recs) == 0 || recs[len(recs)-1].Method != testMethod || recs[len(recs)-1].UserID != "alice" {
			t.Errorf("audit %s: %+v", event, recs)
		}
	}
}

// panicky is a factor whose Begin panics: the interceptor chain's recovery
// answers Internal naming the request id, and logs the panic with it.
type panicky struct{}

func (panicky) Begin(context.Context, server.BeginInput) (server.BeginOutput, error) { panic("boom") }
func (panicky) Verify(context.Context, *challenge.Challenge, server.Answer) (server.Verdict, error) {
	return server.Verdict{}, nil
}

func TestPanicIsInternalWithRequestID(t *testing.T) {
	c := newCluster(t)
	c.factors = []server.Factor{{Name: "panicky", Method: pb.Method_METHOD_SIGNAL, Challenge: panicky{}}}
	r := c.start()
	ctx := metadata.AppendToOutgoingContext(c.as("login"), "x-request-id", "req-panic-1")
	var hdr metadata.MD
	_, err := r.challenges().BeginChallenge(ctx, &pb.BeginChallengeRequest{UserId: "alice", Method: pb.Method_METHOD_SIGNAL}, grpc.Header(&hdr))
	if status.Code(err) != codes.Internal || !strings.Contains(status.Convert(err).Message(), "req-panic-1") {
		t.Fatalf("panic: %v, want Internal naming the request id", err)
	}
	if got := hdr.Get("x-request-id"); len(got) != 1 || got[0] != "req-panic-1" {
		t.Fatalf("x-request-id header %v", got)
	}
	logs := c.logs.String()
	if !strings.Contains(logs, `"msg":"panic"`) || !strings.Contains(logs, `"request_id":"req-panic-1"`) || !strings.Contains(logs, `"caller":"`) {
		t.Fatalf("logs lack the panic, its request id or the caller:\n%s", grep(logs, "req-panic-1"))
	}
}
