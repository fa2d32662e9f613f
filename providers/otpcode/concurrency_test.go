package otpcode

import (
	"errors"
	"sync"
	"testing"
)

// race runs fn n times at once, on two providers (two replicas) in turn, and
// returns the errors.
func race(e *env, t *testing.T, n int, fn func(p *Provider) error) []error {
	t.Helper()
	ps := []*Provider{e.p, e.replica(t)}
	errs := make([]error, n)
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range n {
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			errs[i] = fn(ps[i%2])
		}()
	}
	start.Done()
	done.Wait()
	return errs
}

func TestConcurrentRightAnswersOneWins(t *testing.T) {
	e := newEnv(t, Config{})
	e.enroll(t, "u1", SMS, "+4915123456712")
	ch := e.begin(t, "u1", SMS)
	var (
		mu  sync.Mutex
		won int
	)
	errs := race(e, t, 16, func(p *Provider) error {
		res, err := p.Verify(e.ctx, "u1", ch.ID, ch.Send.Code)
		if err == nil && res.Accepted {
			mu.Lock()
			won++
			mu.Unlock()
		}
		return err
	})
	for _, err := range errs {
		if err != nil && !errors.Is(err, ErrUsed) && !errors.Is(err, ErrNoAttemptsLeft) {
			t.Errorf("loser: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of 16 concurrent right answers accepted; want exactly 1", won)
	}
}

func TestConcurrentWrongAnswersFiveEvaluated(t *testing.T) {
	e := newEnv(t, Config{})
	e.enroll(t, "u1", Email, "alice@example.com")
	ch := e.begin(t, "u1", Email)
	errs := race(e, t, 20, func(p *Provider) error {
		_, err := p.Verify(e.ctx, "u1", ch.ID, wrong(ch.Send.Code))
		return err
	})
	evaluated, refused := 0, 0
	for _, err := range errs {
		switch {
		case errors.Is(err, ErrWrongCode):
			evaluated++
		case errors.Is(err, ErrNoAttemptsLeft):
			refused++
		default:
			t.Errorf("unexpected: %v", err)
		}
	}
	if evaluated != DefaultMaxAttempts || refused != 20-DefaultMaxAttempts {
		t.Fatalf("%d wrong answers evaluated, %d refused; want %d and %d", evaluated, refused, DefaultMaxAttempts, 20-DefaultMaxAttempts)
	}
	st, err := e.p.Status(e.ctx, "u1", ch.ID)
	if err != nil || st.AttemptsLeft != 0 || st.State != "failed" {
		t.Fatalf("status %+v %v", st, err)
	}
	if _, err := e.p.Verify(e.ctx, "u1", ch.ID, ch.Send.Code); !errors.Is(err, ErrNoAttemptsLeft) {
		t.Fatalf("right answer after: %v", err)
	}
}

func TestConcurrentResendsOneWins(t *testing.T) {
	e := newEnv(t, Config{})
	e.enroll(t, "u1", Signal, "+4915123456712")
	ch := e.begin(t, "u1", Signal)
	e.clk.Advance(DefaultResendCooldown)
	sent := 0
	var mu sync.Mutex
	errs := race(e, t, 12, func(p *Provider) error {
		s, err := p.Resend(e.ctx, ResendInput{UserID: "u1", ID: ch.ID})
		if err == nil && s.Code == ch.Send.Code && s.Seq == 2 {
			mu.Lock()
			sent++
			mu.Unlock()
		}
		return err
	})
	for _, err := range errs {
		var cd *CooldownError
		if err != nil && !errors.As(err, &cd) {
			t.Errorf("loser: %v", err)
		}
	}
	if sent != 1 {
		t.Fatalf("%d of 12 concurrent resends sent; want 1", sent)
	}
}

func TestConcurrentBeginsKeepTheCap(t *testing.T) {
	e := newEnv(t, Config{UserDailyCap: 5, DestinationDailyCap: 100})
	e.enroll(t, "u1", SMS, "+4915123456712") // the enrollment's send is one
	ok := 0
	var mu sync.Mutex
	errs := race(e, t, 12, func(p *Provider) error {
		_, err := p.BeginChallenge(e.ctx, ChallengeInput{UserID: "u1", Channel: SMS})
		if err == nil {
			mu.Lock()
			ok++
			mu.Unlock()
		}
		return err
	})
	for _, err := range errs {
		if err != nil && !errors.Is(err, ErrSendCap) {
			t.Errorf("refused begin: %v", err)
		}
	}
	if ok != 4 {
		t.Fatalf("%d concurrent begins sent; want 4 (cap 5, one used by the enrollment)", ok)
	}
}
