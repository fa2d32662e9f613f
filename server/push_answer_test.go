package server_test

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/twofactor/twofactor/clients/pushdevice"
	"github.com/twofactor/twofactor/internal/testfix"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/push/pushsig"
)

// The device's answer is recorded in the transaction that authenticated its
// request: of concurrent answers on two replicas exactly one is recorded; a
// refused answer (already answered) still spends its nonce, so the same signed
// request replayed is not authenticated; the approval is redeemed once.
func TestPushAnswerInTheRequestsTransaction(t *testing.T) {
	c := newCluster(t)
	a, b := c.start(), c.start()
	d := enrollPush(t, c, a, a, "alice")
	ctx := context.Background()
	begun := beginPush(t, c, a, "alice")
	pending, err := d.Pending(ctx, a.devices())
	if err != nil || len(pending) != 1 {
		t.Fatalf("pending = %v, %v", pending, err)
	}
	pid, number := pending[0].GetChallengeId(), begun.GetPush().GetNumber()
	replicas := []*replica{a, b}
	errs := testfix.AtOnce(8, func(i int) error {
		resp, err := d.Respond(ctx, replicas[i%2].devices(), pid, pb.PushDecision_PUSH_DECISION_APPROVE, number)
		if err == nil && resp.GetResult() != pb.PushResult_PUSH_RESULT_APPROVED {
			t.Errorf("respond = %v", resp)
		}
		return err
	})
	codesSeen := map[codes.Code]int{}
	for _, err := range errs {
		codesSeen[status.Code(err)]++
	}
	if codesSeen[codes.OK] != 1 || codesSeen[codes.FailedPrecondition] != 7 {
		t.Fatalf("answers: %v; want one recorded, seven already answered", codesSeen)
	}

	auth, err := d.Auth(pushsig.PurposeRespond, pid, pushdevice.DecisionName(pb.PushDecision_PUSH_DECISION_DENY), "")
	if err != nil {
		t.Fatal(err)
	}
	req := &pb.RespondPushRequest{Auth: auth, ChallengeId: pid, Decision: pb.PushDecision_PUSH_DECISION_DENY}
	if _, err := b.devices().RespondPush(ctx, req); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("answer to an answered push: %v, want FailedPrecondition", err)
	}
	if _, err := a.devices().RespondPush(ctx, req); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("the refused request replayed: %v, want Unauthenticated (its nonce spent)", err)
	}

	if v, err := verifyPush(c, b, begun.GetChallengeId(), 0); err != nil || v.GetResult() != pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
		t.Fatalf("verify = %v, %v", v, err)
	}
	if v, _ := verifyPush(c, a, begun.GetChallengeId(), 0); v.GetResult() != pb.VerifyResult_VERIFY_RESULT_EXPIRED {
		t.Fatalf("second verify = %v", v)
	}
	// The approval settled the user's limits in the same transaction: the next push may begin at once.
	beginPush(t, c, b, "alice")
}
