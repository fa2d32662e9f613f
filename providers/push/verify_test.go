package push_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twofactor/twofactor/providers/push"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// Verify redeems an approval in one conditional UPDATE: of concurrent verifiers
// on two replicas exactly one is accepted; an approval that expired is not,
// and a denial is still reported once.
func TestVerifyRedeemsApprovalOnceConcurrently(t *testing.T) {
	e := newEnv(t, push.Config{})
	replica := e.service(storagetest.OpenURL(t, storeURL(t, e)), push.Config{})
	d := e.enroll("alice")
	b := e.begin("alice")
	if _, err := e.respond(e.svc, d, push.RespondInput{ChallengeID: b.ChallengeID, Decision: push.DecisionApprove, Number: b.Number}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := map[push.Status]int{}
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			svc := e.svc
			if i%2 == 1 {
				svc = replica
			}
			st, err := svc.Verify(context.Background(), "alice", b.ChallengeID)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			got[st]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if got[push.StatusAccepted] != 1 || got[push.StatusExpired] != 7 {
		t.Fatalf("statuses %v: want one accepted, seven expired", got)
	}

	// Approved, then the challenge's time ran out before anyone verified it.
	b = e.begin("alice")
	if _, err := e.respond(e.svc, d, push.RespondInput{ChallengeID: b.ChallengeID, Decision: push.DecisionApprove, Number: b.Number}); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(e.svc.Config().ChallengeTTL + time.Second)
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
