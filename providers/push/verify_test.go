package push_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twofactor/twofactor/internal/testfix"
	"github.com/twofactor/twofactor/providers/push"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// Verify redeems an approval in one conditional UPDATE: another user's verify
// does not; of concurrent verifiers on two replicas exactly one is accepted; an
// approval that expired is not, and a denial is still reported once.
func TestVerifyRedeemsApprovalOnceConcurrently(t *testing.T) {
	e := newEnv(t, push.Config{})
	replica := e.service(storagetest.OpenURL(t, storeURL(t, e)), push.Config{})
	d := e.enroll("alice")
	b := e.begin("alice")
	if _, err := e.respond(e.svc, d, push.RespondInput{ChallengeID: b.ChallengeID, Decision: push.DecisionApprove, Number: b.Number}); err != nil {
		t.Fatal(err)
	}
	// Another user's verify, which the UPDATE tries first, neither redeems the
	// approval nor learns of it.
	if st, err := replica.Verify(context.Background(), "bob", b.ChallengeID); !errors.Is(err, push.ErrNotFound) {
		t.Fatalf("another user's verify: %s, %v; want ErrNotFound", st, err)
	}
	replicas := []*push.Service{e.svc, replica}
	statuses := make([]push.Status, 8)
	errs := testfix.AtOnce(len(statuses), func(i int) (err error) {
		statuses[i], err = replicas[i%2].Verify(context.Background(), "alice", b.ChallengeID)
		return err
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	got := map[push.Status]int{}
	for _, st := range statuses {
		got[st]++
	}
	if got[push.StatusAccepted] != 1 || got[push.StatusExpired] != 7 {
		t.Fatalf("statuses %v: want one accepted, seven expired", got)
	}

	// Approved, then the challenge's time ran out before anyone verified it.
	b = e.begin("alice")
	if _, err := e.respond(e.svc, d, push.RespondInput{ChallengeID: b.ChallengeID, Decision: push.DecisionApprove, Number: b.Number}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(e.svc.Config().ChallengeTTL + time.Second)
	if st, err := e.svc.Verify(context.Background(), "alice", b.ChallengeID); st != push.StatusExpired || err != nil {
		t.Fatalf("expired approval: %s, %v", st, err)
	}

	// A denial is reported once, by the read that follows the UPDATE finding nothing.
	b = e.begin("alice")
	if _, err := e.respond(e.svc, d, push.RespondInput{ChallengeID: b.ChallengeID, Decision: push.DecisionDeny}); err != nil {
		t.Fatal(err)
	}
	if st, err := replica.Verify(context.Background(), "alice", b.ChallengeID); st != push.StatusDenied || err != nil {
		t.Fatalf("denial: %s, %v", st, err)
	}
	if st, _ := e.svc.Verify(context.Background(), "alice", b.ChallengeID); st != push.StatusExpired {
		t.Fatalf("second verify of a denial: %s", st)
	}
}
