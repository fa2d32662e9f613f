package push_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/natstest"
	"github.com/twofactor/twofactor/providers/push"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// wakeRecorder wraps a Waker and records whether the wake-up had arrived when the
// waiting Verify returned, so a test tells a wake-up from a timeout.
type wakeRecorder struct {
	push.Waker
	woken atomic.Bool
}

func (w *wakeRecorder) SubscribePushResponse(id string) (<-chan struct{}, func(), error) {
	ch, stop, err := w.Waker.SubscribePushResponse(id)
	if err != nil {
		return nil, nil, err
	}
	return ch, func() {
		select {
		case <-ch:
			w.woken.Store(true)
		default:
		}
		stop()
	}, nil
}

// Two replicas on one store and one NATS: begin on A, the device answers on B, the
// verify waiting on A (for up to 30 s) is woken by B's announcement.
func TestVerifyWaitWokenAcrossReplicas(t *testing.T) {
	e := newEnv(t, push.Config{})
	nc, js, names := natstest.Start(t)
	pubA := notify.NewPublisher(js, nc, names)
	nc2 := natstest.Dial(t, nc) // replica B's own connection
	pubB := notify.NewPublisher(js, nc2, names)
	a := e.svc
	b := e.service(storagetest.OpenURL(t, e.url), push.Config{})
	d := e.enroll("alice")
	begun := e.begin("alice")
	ctx := context.Background()

	rec := &wakeRecorder{Waker: pubA}
	waiting := make(chan struct{})
	push.SetWaitingHook(func(string) { close(waiting) })
	t.Cleanup(func() { push.SetWaitingHook(nil) })
	type result struct {
		st  push.Status
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := a.VerifyWait(ctx, rec, "alice", begun.ChallengeID, 30*time.Second)
		done <- result{st, err}
	}()
	// Answer on B once A read the challenge pending and waits.
	<-waiting
	dev, err := b.Authenticate(ctx, e.request(d, push.PurposeRespond, begun.ChallengeID, push.DecisionApprove, begun.Number),
		push.PurposeRespond, begun.ChallengeID, push.DecisionApprove, begun.Number)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Respond(ctx, dev, push.RespondInput{ChallengeID: begun.ChallengeID,
		Decision: push.DecisionApprove, Number: begun.Number}); err != nil {
		t.Fatal(err)
	}
	if err := pubB.AnnouncePushResponse(ctx, begun.ChallengeID); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.st != push.StatusAccepted {
		t.Fatalf("verify wait = %s, %v", r.st, r.err)
	}
	if !rec.woken.Load() {
		t.Fatal("the verify returned without the announcement's wake-up")
	}
	// Redeemed once: B's verify now sees it used.
	if st, _ := b.Verify(ctx, "alice", begun.ChallengeID); st != push.StatusExpired {
		t.Fatalf("verify on B after A redeemed = %s", st)
	}
}

// A verify waiting on a challenge that is already answered returns at once.
func TestVerifyWaitAnsweredBefore(t *testing.T) {
	e := newEnv(t, push.Config{})
	nc, js, names := natstest.Start(t)
	pub := notify.NewPublisher(js, nc, names)
	d := e.enroll("alice")
	b := e.begin("alice")
	if _, err := e.respond(e.svc, d, push.RespondInput{ChallengeID: b.ChallengeID, Decision: push.DecisionDeny}); err != nil {
		t.Fatal(err)
	}
	rec := &wakeRecorder{Waker: pub}
	st, err := e.svc.VerifyWait(context.Background(), rec, "alice", b.ChallengeID, 30*time.Second)
	if err != nil || st != push.StatusDenied || rec.woken.Load() {
		t.Fatalf("verify wait = %s, %v (woken %v)", st, err, rec.woken.Load())
	}
}
