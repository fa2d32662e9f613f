package push_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/twofactor/twofactor/internal/testfix"
	"github.com/twofactor/twofactor/providers/push"
	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

func TestApproveWithNumberRedeemsOnce(t *testing.T) {
	for _, p1363 := range []bool{false, true} {
		e := newEnv(t, push.Config{})
		ctx := context.Background()
		d := e.enrollWith("alice", push.Endpoint{Kind: storage.PushEndpointPoll}, p1363)
		b := e.begin("alice")
		if len(b.Number) != 2 || len(b.Devices) != 1 || b.Devices[0].ID != d.id {
			t.Fatalf("begun = %+v", b)
		}
		dev, err := e.svc.Authenticate(ctx, e.request(d, push.PurposeListPending), push.PurposeListPending)
		if err != nil {
			t.Fatal(err)
		}
		pending, err := e.svc.ListPending(ctx, dev)
		if err != nil || len(pending) != 1 || pending[0].ChallengeID != b.ChallengeID {
			t.Fatalf("pending = %+v, %v", pending, err)
		}
		pc, err := e.svc.Context(ctx, dev, b.ChallengeID)
		if err != nil {
			t.Fatal(err)
		}
		if pc.Login.Client != "Nextcloud" || pc.Login.ClientIP != "203.0.113.7" || pc.Login.UserAgent != "Firefox/140" ||
			pc.Digits != 2 || pc.NumberMode != push.NumberDigits || len(pc.Login.Choices) != 0 {
			t.Fatalf("context = %+v", pc)
		}
		if st, _ := e.svc.Verify(ctx, "alice", b.ChallengeID); st != push.StatusPending {
			t.Fatalf("before the answer: %s", st)
		}
		r, err := e.respond(e.svc, d, push.RespondInput{ChallengeID: b.ChallengeID, Decision: push.DecisionApprove, Number: b.Number})
		if err != nil || !r.Approved || r.Event != push.EventApproved || r.SuspectedFatigue {
			t.Fatalf("respond = %+v, %v", r, err)
		}
		if st, err := e.svc.Verify(ctx, "alice", b.ChallengeID); st != push.StatusAccepted || err != nil {
			t.Fatalf("verify = %s, %v", st, err)
		}
		if st, _ := e.svc.Verify(ctx, "alice", b.ChallengeID); st != push.StatusExpired {
			t.Fatalf("second verify = %s, want expired (redeemed once)", st)
		}
		if _, err := e.svc.Verify(ctx, "bob", b.ChallengeID); !errors.Is(err, push.ErrNotFound) {
			t.Fatalf("verify by another user = %v", err)
		}
		// Approved: the next push is allowed at once.
		e.begin("alice")
	}
}

func TestWrongNumberDeniesAndBacksOff(t *testing.T) {
	e := newEnv(t, push.Config{Digits: 6})
	ctx := context.Background()
	d := e.enroll("alice")
	b := e.begin("alice")
	wrong := "000000"
	if b.Number == wrong {
		wrong = "111111"
	}
	r, err := e.respond(e.svc, d, push.RespondInput{ChallengeID: b.ChallengeID, Decision: push.DecisionApprove, Number: wrong})
	if err != nil || r.Approved || r.Event != push.EventWrongNumber || !r.SuspectedFatigue {
		t.Fatalf("respond = %+v, %v", r, err)
	}
	if st, _ := e.svc.Verify(ctx, "alice", b.ChallengeID); st != push.StatusDenied {
		t.Fatalf("verify = %s", st)
	}
	if st, _ := e.svc.Verify(ctx, "alice", b.ChallengeID); st != push.StatusExpired {
		t.Fatalf("second verify of a denial = %s, want expired (reported once)", st)
	}
	// A second answer, even the right one, is refused.
	if _, err := e.respond(e.svc, d, push.RespondInput{ChallengeID: b.ChallengeID, Decision: push.DecisionApprove, Number: b.Number}); !errors.Is(err, push.ErrAnswered) {
		t.Fatalf("answer after a wrong number = %v", err)
	}
	_, err = e.svc.Begin(ctx, push.BeginInput{UserID: "alice"})
	var le *push.LimitError
	if !errors.As(err, &le) || le.Reason != push.LimitBackoff || le.RetryAfter != 10*time.Second {
		t.Fatalf("begin after a wrong number = %v", err)
	}
}

func TestBackoffDoublesUpToMax(t *testing.T) {
	e := newEnv(t, push.Config{DailyCap: 100})
	ctx := context.Background()
	d := e.enroll("alice")
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second}
	for i := 0; i < 12; i++ {
		b := e.begin("alice")
		if _, err := e.respond(e.svc, d, push.RespondInput{ChallengeID: b.ChallengeID, Decision: push.DecisionDeny}); err != nil {
			t.Fatal(err)
		}
		_, err := e.svc.Begin(ctx, push.BeginInput{UserID: "alice"})
		var le *push.LimitError
		if !errors.As(err, &le) || le.Reason != push.LimitBackoff {
			t.Fatalf("deny %d: begin = %v", i, err)
		}
		exp := time.Hour
		if i < len(want) {
			exp = want[i]
		} else if d := 10 * time.Second << i; d < time.Hour {
			exp = d
		}
		if le.RetryAfter != exp {
			t.Fatalf("deny %d: retry after %s, want %s", i, le.RetryAfter, exp)
		}
		e.clock.Advance(le.RetryAfter)
	}
	// An approval resets the backoff.
	b := e.begin("alice")
	if _, err := e.respond(e.svc, d, push.RespondInput{ChallengeID: b.ChallengeID, Decision: push.DecisionApprove, Number: b.Number}); err != nil {
		t.Fatal(err)
	}
	b = e.begin("alice")
	if _, err := e.respond(e.svc, d, push.RespondInput{ChallengeID: b.ChallengeID, Decision: push.DecisionDeny}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Begin(ctx, push.BeginInput{UserID: "alice"}); err.(*push.LimitError).RetryAfter != 10*time.Second {
		t.Fatalf("after an approval the backoff restarts at 10 s: %v", err)
	}
}

func TestExpiredUnansweredBacksOff(t *testing.T) {
	e := newEnv(t, push.Config{ChallengeTTL: time.Minute})
	ctx := context.Background()
	d := e.enroll("alice")
	b := e.begin("alice")
	if _, err := e.svc.Begin(ctx, push.BeginInput{UserID: "alice"}); limitReason(err) != push.LimitPending {
		t.Fatalf("second begin while pending = %v", err)
	}
	e.clock.Advance(time.Minute)
	if _, err := e.respond(e.svc, d, push.RespondInput{ChallengeID: b.ChallengeID, Decision: push.DecisionApprove, Number: b.Number}); !errors.Is(err, push.ErrExpired) {
		t.Fatalf("answer after expiry = %v", err)
	}
	dev, _ := e.svc.Authenticate(ctx, e.request(d, push.PurposeGetContext, b.ChallengeID), push.PurposeGetContext, b.ChallengeID)
	if _, err := e.svc.Context(ctx, dev, b.ChallengeID); !errors.Is(err, push.ErrExpired) {
		t.Fatalf("context after expiry = %v", err)
	}
	if st, _ := e.svc.Verify(ctx, "alice", b.ChallengeID); st != push.StatusExpired {
		t.Fatalf("verify = %s", st)
	}
	// Unanswered: the next push waits 10 s from the expiry.
	e.clock.Advance(5 * time.Second)
	if _, err := e.svc.Begin(ctx, push.BeginInput{UserID: "alice"}); limitReason(err) != push.LimitBackoff || err.(*push.LimitError).RetryAfter != 5*time.Second {
		t.Fatalf("begin after an unanswered push = %v", err)
	}
	e.clock.Advance(5 * time.Second)
	e.begin("alice")
}

func TestAnsweredTwiceConcurrently(t *testing.T) {
	e := newEnv(t, push.Config{})
	replica := e.service(storagetest.OpenURL(t, storeURL(t, e)), push.Config{})
	d := e.enroll("alice")
	b := e.begin("alice")
	replicas := []*push.Service{e.svc, replica}
	errs := testfix.AtOnce(8, func(i int) error {
		_, err := e.respond(replicas[i%2], d, push.RespondInput{ChallengeID: b.ChallengeID, Decision: push.DecisionApprove, Number: b.Number})
		return err
	})
	wins, answered := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case errors.Is(err, push.ErrAnswered):
			answered++
		default:
			t.Errorf("respond: %v", err)
		}
	}
	if wins != 1 || answered != 7 {
		t.Fatalf("wins %d, answered %d: want exactly one answer recorded", wins, answered)
	}
	var accepted int
	for range 4 {
		if st, _ := replica.Verify(context.Background(), "alice", b.ChallengeID); st == push.StatusAccepted {
			accepted++
		}
	}
	if accepted != 1 {
		t.Fatalf("accepted %d times", accepted)
	}
}

func TestForgedAndReplayedRequests(t *testing.T) {
	e := newEnv(t, push.Config{})
	ctx := context.Background()
	d := e.enroll("alice")
	b := e.begin("alice")
	in := push.RespondInput{ChallengeID: b.ChallengeID, Decision: push.DecisionApprove, Number: b.Number}
	fields := in.RespondFields()
	auth := func(r push.Request, f ...string) error {
		_, err := e.svc.Authenticate(ctx, r, push.PurposeRespond, f...)
		return err
	}
	// Signed by another key.
	forger := &device{key: newKey(t), id: d.id}
	if err := auth(e.request(forger, push.PurposeRespond, fields...), fields...); !errors.Is(err, push.ErrUnauthenticated) {
		t.Fatalf("forged key: %v", err)
	}
	// Signed for other fields (a deny turned into an approval).
	r := e.request(d, push.PurposeRespond, b.ChallengeID, push.DecisionDeny, "")
	if err := auth(r, fields...); !errors.Is(err, push.ErrUnauthenticated) {
		t.Fatalf("altered fields: %v", err)
	}
	// Signed for another purpose.
	if err := auth(e.request(d, push.PurposeGetContext, fields...), fields...); !errors.Is(err, push.ErrUnauthenticated) {
		t.Fatalf("other purpose: %v", err)
	}
	// A flipped signature bit.
	r = e.request(d, push.PurposeRespond, fields...)
	r.Signature[len(r.Signature)-1] ^= 1
	if err := auth(r, fields...); !errors.Is(err, push.ErrUnauthenticated) {
		t.Fatalf("flipped bit: %v", err)
	}
	// Outside the ±60 s window.
	for _, skew := range []time.Duration{-61 * time.Second, 61 * time.Second} {
		r = e.request(d, push.PurposeRespond, fields...)
		e.clock.Advance(-skew)
		err := auth(r, fields...)
		e.clock.Advance(skew)
		if !errors.Is(err, push.ErrUnauthenticated) {
			t.Fatalf("skew %s: %v", skew, err)
		}
	}
	// Within the window, once; a replay fails even on another replica.
	replica := e.service(storagetest.OpenURL(t, storeURL(t, e)), push.Config{})
	r = e.request(d, push.PurposeRespond, fields...)
	e.clock.Advance(59 * time.Second)
	if err := auth(r, fields...); err != nil {
		t.Fatalf("valid request: %v", err)
	}
	if _, err := replica.Authenticate(ctx, r, push.PurposeRespond, fields...); !errors.Is(err, push.ErrUnauthenticated) {
		t.Fatalf("replay on another replica: %v", err)
	}
	// An unknown device, a short nonce.
	if err := auth(e.request(&device{key: d.key, id: "nope"}, push.PurposeRespond, fields...), fields...); !errors.Is(err, push.ErrUnauthenticated) {
		t.Fatalf("unknown device: %v", err)
	}
	r = e.request(d, push.PurposeRespond, fields...)
	r.Nonce = r.Nonce[:8]
	if err := auth(r, fields...); !errors.Is(err, push.ErrUnauthenticated) {
		t.Fatalf("short nonce: %v", err)
	}
}

func TestOtherUsersDeviceAndRevokedDevice(t *testing.T) {
	e := newEnv(t, push.Config{})
	ctx := context.Background()
	alice := e.enroll("alice")
	mallory := e.enroll("mallory")
	b := e.begin("alice")
	in := push.RespondInput{ChallengeID: b.ChallengeID, Decision: push.DecisionApprove, Number: b.Number}
	if _, err := e.respond(e.svc, mallory, in); !errors.Is(err, push.ErrNotFound) {
		t.Fatalf("another user's device answers: %v", err)
	}
	dev, err := e.svc.Authenticate(ctx, e.request(mallory, push.PurposeGetContext, b.ChallengeID), push.PurposeGetContext, b.ChallengeID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Context(ctx, dev, b.ChallengeID); !errors.Is(err, push.ErrNotFound) {
		t.Fatalf("another user's device reads the context: %v", err)
	}
	if p, _ := e.svc.ListPending(ctx, dev); len(p) != 0 {
		t.Fatalf("another user's device lists %v", p)
	}
	if err := e.svc.Revoke(ctx, "mallory", alice.id); !errors.Is(err, push.ErrNotFound) {
		t.Fatalf("revoke another user's device: %v", err)
	}
	if err := e.svc.Revoke(ctx, "alice", alice.id); err != nil {
		t.Fatal(err)
	}
	if _, err := e.respond(e.svc, alice, in); !errors.Is(err, push.ErrUnauthenticated) {
		t.Fatalf("revoked device answers: %v", err)
	}
	if err := e.svc.Revoke(ctx, "alice", alice.id); !errors.Is(err, push.ErrNotFound) {
		t.Fatalf("second revoke: %v", err)
	}
	if _, err := e.svc.Begin(ctx, push.BeginInput{UserID: "alice"}); !errors.Is(err, push.ErrNoDevice) {
		t.Fatalf("begin without devices: %v", err)
	}
}

func TestNotMeLocksUntilUnlock(t *testing.T) {
	e := newEnv(t, push.Config{LockOnNotMe: true})
	ctx := context.Background()
	d := e.enroll("alice")
	b := e.begin("alice")
	r, err := e.respond(e.svc, d, push.RespondInput{ChallengeID: b.ChallengeID, Decision: push.DecisionNotMe})
	if err != nil || r.Event != push.EventNotMe || !r.Locked || !r.SuspectedFatigue {
		t.Fatalf("not me = %+v, %v", r, err)
	}
	if st, _ := e.svc.Verify(ctx, "alice", b.ChallengeID); st != push.StatusDenied {
		t.Fatalf("verify = %s", st)
	}
	e.clock.Advance(2 * time.Hour)
	if _, err := e.svc.Begin(ctx, push.BeginInput{UserID: "alice"}); limitReason(err) != push.LimitLocked {
		t.Fatalf("begin while locked = %v", err)
	}
	if err := e.svc.Unlock(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	e.begin("alice")
}

func TestNumberModes(t *testing.T) {
	ctx := context.Background()
	t.Run("choice", func(t *testing.T) {
		e := newEnv(t, push.Config{NumberMode: push.NumberChoice, Digits: 3})
		d := e.enroll("alice")
		b := e.begin("alice")
		dev, _ := e.svc.Authenticate(ctx, e.request(d, push.PurposeGetContext, b.ChallengeID), push.PurposeGetContext, b.ChallengeID)
		pc, err := e.svc.Context(ctx, dev, b.ChallengeID)
		if err != nil {
			t.Fatal(err)
		}
		ch := pc.Login.Choices
		if len(ch) != 3 || ch[0] == ch[1] || ch[1] == ch[2] || ch[0] == ch[2] || len(b.Number) != 3 {
			t.Fatalf("choices %v for %q", ch, b.Number)
		}
		found := false
		for _, c := range ch {
			found = found || c == b.Number
		}
		if !found {
			t.Fatalf("the number %q is not among the choices %v", b.Number, ch)
		}
		r, err := e.respond(e.svc, d, push.RespondInput{ChallengeID: b.ChallengeID, Decision: push.DecisionApprove, Number: b.Number})
		if err != nil || !r.Approved {
			t.Fatalf("respond = %+v, %v", r, err)
		}
	})
	t.Run("none", func(t *testing.T) {
		e := newEnv(t, push.Config{NumberMode: push.NumberNone})
		d := e.enroll("alice")
		b := e.begin("alice")
		if b.Number != "" {
			t.Fatalf("tap only shows %q", b.Number)
		}
		r, err := e.respond(e.svc, d, push.RespondInput{ChallengeID: b.ChallengeID, Decision: push.DecisionApprove})
		if err != nil || !r.Approved {
			t.Fatalf("respond = %+v, %v", r, err)
		}
	})
	for _, cfg := range []push.Config{{Digits: 1}, {Digits: 7}, {NumberMode: "emoji"}, {EnrollmentTTL: 6 * time.Minute}} {
		if _, err := push.New(storagetest.Open(t), storagetest.KeyRing(t), cfg); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
}

func TestConcurrentBeginsExactlyAllowed(t *testing.T) {
	e := newEnv(t, push.Config{DailyCap: 3})
	replica := e.service(storagetest.OpenURL(t, storeURL(t, e)), push.Config{DailyCap: 3})
	d := e.enroll("alice")
	ctx := context.Background()
	for round := 0; round < 4; round++ {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var begun []*push.Begun
		reasons := map[string]int{}
		for i := range 12 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				svc := e.svc
				if i%2 == 1 {
					svc = replica
				}
				b, err := svc.Begin(ctx, push.BeginInput{UserID: "alice"})
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					if limitReason(err) == "" {
						t.Errorf("begin: %v", err)
					}
					reasons[limitReason(err)]++
					return
				}
				begun = append(begun, b)
			}()
		}
		wg.Wait()
		if round == 3 { // the daily cap of 3 is used up
			if len(begun) != 0 || reasons[push.LimitDailyCap] != 12 {
				t.Fatalf("round %d: %d begun, refusals %v", round, len(begun), reasons)
			}
			break
		}
		if len(begun) != 1 || reasons[push.LimitPending] != 11 {
			t.Fatalf("round %d: %d begun, refusals %v: want exactly one", round, len(begun), reasons)
		}
		b := begun[0]
		if _, err := e.respond(e.svc, d, push.RespondInput{ChallengeID: b.ChallengeID, Decision: push.DecisionApprove, Number: b.Number}); err != nil {
			t.Fatal(err)
		}
	}
	var n int64
	e.store.DB(ctx).Model(&storage.PushChallenge{}).Count(&n)
	if n != 3 {
		t.Fatalf("%d challenges stored, want 3 (a refused begin writes none)", n)
	}
	// The next UTC day has its own cap.
	e.clock.Advance(24 * time.Hour)
	e.begin("alice")
}

func TestSecretsSealed(t *testing.T) {
	e := newEnv(t, push.Config{AllowHTTP: true})
	ctx := context.Background()
	en, err := e.svc.BeginEnrollment(ctx, "alice", "https://auth.example")
	if err != nil {
		t.Fatal(err)
	}
	ep := push.Endpoint{Kind: storage.PushEndpointNtfy, URL: "https://ntfy.example/topic-secret-4711", Token: "tk_secret0815"}
	if _, err := e.svc.FinishEnrollment(ctx, e.finishInput(newKey(t), en.Token, ep, false)); err != nil {
		t.Fatal(err)
	}
	b, err := e.svc.Begin(ctx, push.BeginInput{UserID: "alice", Client: "client-zz9", ClientIP: "198.51.100.77", UserAgent: "Agent-Secret/9"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.svc.OpenEndpoint(&b.Devices[0])
	if err != nil || got != ep {
		t.Fatalf("open endpoint = %+v, %v", got, err)
	}
	if n := storagetest.AssertNotStored(t, e.store, en.Token, "topic-secret-4711", "tk_secret0815", "client-zz9",
		"198.51.100.77", "Agent-Secret/9"); n < 4 {
		t.Fatalf("read %d rows", n)
	}
}

// storeURL is the URL of e's database, for a second replica on it.
func storeURL(t *testing.T, e *env) string { return e.url }

// Each device is a factors row of method push: listed with the user's factors, and
// removing that row (RemoveFactor, an admin's reset) disables the device at once.
func TestDeviceIsAFactor(t *testing.T) {
	e := newEnv(t, push.Config{})
	ctx := context.Background()
	d := e.enroll("alice")
	fs, err := e.store.ListFactors(ctx, "alice", push.Method, storage.FactorActive)
	if err != nil || len(fs) != 1 || fs[0].ID != d.id || fs[0].Name != "Phone" {
		t.Fatalf("factors = %+v, %v", fs, err)
	}
	b := e.begin("alice")
	if err := e.store.DeleteFactor(ctx, "alice", d.id); err != nil {
		t.Fatal(err)
	}
	if _, err := e.respond(e.svc, d, push.RespondInput{ChallengeID: b.ChallengeID, Decision: push.DecisionApprove, Number: b.Number}); !errors.Is(err, push.ErrUnauthenticated) {
		t.Fatalf("device of a removed factor answers: %v", err)
	}
	if devs, _ := e.svc.Devices(ctx, "alice"); len(devs) != 0 {
		t.Fatalf("devices of a removed factor: %d", len(devs))
	}
	// Revoke removes the factor row too.
	d2 := e.enroll("alice")
	if err := e.svc.Revoke(ctx, "alice", d2.id); err != nil {
		t.Fatal(err)
	}
	if fs, _ := e.store.ListFactors(ctx, "alice", push.Method, ""); len(fs) != 0 {
		t.Fatalf("factors after revoke: %+v", fs)
	}
}
