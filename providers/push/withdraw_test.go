package push_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/twofactor/twofactor/internal/testfix"
	"github.com/twofactor/twofactor/providers/push"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// A push never published is withdrawn at most once, however many callers try
// at once on two replicas: it leaves the user's pending slot and the day's count
// (which never drops below the pushes begun), keeps the backoff, and a verify
// finds it expired. A push a device answered first is not withdrawn; another
// user's and an unknown one are not either.
func TestWithdrawOnceAndNotAfterAnAnswer(t *testing.T) {
	e := newEnv(t, push.Config{})
	replica := e.service(storagetest.OpenURL(t, storeURL(t, e)), push.Config{})
	ctx := context.Background()
	d := e.enroll("alice")
	b := e.begin("alice")
	replicas := []*push.Service{e.svc, replica}
	var won atomic.Int32
	errs := testfix.AtOnce(8, func(i int) error {
		ok, err := replicas[i%2].Withdraw(ctx, "alice", b.ChallengeID)
		if ok {
			won.Add(1)
		}
		return err
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if won.Load() != 1 {
		t.Fatalf("%d callers withdrew the push, want 1", won.Load())
	}
	l, err := e.store.GetPushLimit(ctx, "alice")
	if err != nil || l.PendingID != "" || l.DayCount != 0 || l.Level != 0 || !l.NextAllowedAt.IsZero() {
		t.Fatalf("limit after the withdrawal = %+v, %v; want nothing reserved", l, err)
	}
	if st, err := e.svc.Verify(ctx, "alice", b.ChallengeID); st != push.StatusExpired || err != nil {
		t.Fatalf("verify of a withdrawn push: %s, %v", st, err)
	}
	if _, err := e.respond(e.svc, d, push.RespondInput{ChallengeID: b.ChallengeID, Decision: push.DecisionApprove, Number: b.Number}); !errors.Is(err, push.ErrExpired) {
		t.Fatalf("answering a withdrawn push: %v, want ErrExpired (it is over, not answered)", err)
	}

	// The next push begins at once; answered, it is not withdrawn.
	b = e.begin("alice")
	if _, err := e.respond(e.svc, d, push.RespondInput{ChallengeID: b.ChallengeID, Decision: push.DecisionApprove, Number: b.Number}); err != nil {
		t.Fatal(err)
	}
	for _, who := range []struct{ user, id string }{{"alice", b.ChallengeID}, {"bob", b.ChallengeID}, {"alice", "00000000-0000-4000-8000-000000000000"}} {
		if ok, err := replica.Withdraw(ctx, who.user, who.id); ok || err != nil {
			t.Fatalf("withdraw %s of %s: %v, %v; want false, nil", who.id, who.user, ok, err)
		}
	}
	if l, err := e.store.GetPushLimit(ctx, "alice"); err != nil || l.DayCount != 1 {
		t.Fatalf("limit after an answered push = %+v, %v; want it counted", l, err)
	}
	if st, err := e.svc.Verify(ctx, "alice", b.ChallengeID); st != push.StatusAccepted || err != nil {
		t.Fatalf("verify of the answered push: %s, %v", st, err)
	}
}
