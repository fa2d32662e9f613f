package otpcode

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twofactor/twofactor/storage"
)

func TestResendCooldownDoubles(t *testing.T) {
	e := newEnv(t, Config{CodeTTL: 10 * time.Minute, MaxResends: 3})
	e.enroll(t, "u1", SMS, "+4915123456712")
	ch := e.begin(t, "u1", SMS)
	// Two wrong answers before the resends: a resend never resets them.
	for range 2 {
		if _, err := e.p.Verify(e.ctx, "u1", ch.ID, wrong(ch.Send.Code)); !errors.Is(err, ErrWrongCode) {
			t.Fatal(err)
		}
	}
	wait := DefaultResendCooldown
	for seq := 2; seq <= 4; seq++ {
		var cd *CooldownError
		if _, err := e.p.Resend(e.ctx, ResendInput{UserID: "u1", ID: ch.ID}); !errors.As(err, &cd) || cd.RetryAfter != wait {
			t.Fatalf("resend %d before the cooldown: %v; want a wait of %v", seq, err, wait)
		}
		e.clk.Advance(wait - time.Second)
		if _, err := e.p.Resend(e.ctx, ResendInput{UserID: "u1", ID: ch.ID}); !errors.As(err, &cd) || cd.RetryAfter != time.Second {
			t.Fatalf("resend %d a second early: %v", seq, err)
		}
		e.clk.Advance(time.Second)
		s, err := e.p.Resend(e.ctx, ResendInput{UserID: "u1", ID: ch.ID, Locale: "de"})
		if err != nil {
			t.Fatalf("resend %d: %v", seq, err)
		}
		if s.Code != ch.Send.Code || s.Seq != seq || s.ID != ch.ID || s.MessageID() == ch.Send.MessageID() ||
			s.Destination != "+4915123456712" || !s.ExpiresAt.Equal(ch.ExpiresAt) {
			t.Fatalf("resend %d: %+v", seq, s)
		}
		wait *= 2
	}
	e.clk.Advance(wait)
	if _, err := e.p.Resend(e.ctx, ResendInput{UserID: "u1", ID: ch.ID}); !errors.Is(err, ErrResendLimit) {
		t.Fatalf("resend past the limit: %v", err)
	}
	st, err := e.p.Status(e.ctx, "u1", ch.ID)
	if err != nil || st.Sends != 4 || st.AttemptsLeft != 3 || !st.NextResendAt.IsZero() {
		t.Fatalf("status %+v %v", st, err)
	}
	if res, err := e.p.Verify(e.ctx, "u1", ch.ID, ch.Send.Code); err != nil || !res.Accepted {
		t.Fatalf("the resent code: %v", err)
	}
	if _, err := e.p.Resend(e.ctx, ResendInput{UserID: "u1", ID: ch.ID}); !errors.Is(err, ErrUsed) {
		t.Fatalf("resend of a used code: %v", err)
	}
}

func TestResendRefusals(t *testing.T) {
	e := newEnv(t, Config{})
	e.enroll(t, "u1", Email, "alice@example.com")
	ch := e.begin(t, "u1", Email)
	if _, err := e.p.Resend(e.ctx, ResendInput{UserID: "u2", ID: ch.ID}); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("another user's resend: %v", err)
	}
	e.clk.Advance(DefaultCodeTTL)
	if _, err := e.p.Resend(e.ctx, ResendInput{UserID: "u1", ID: ch.ID}); !errors.Is(err, ErrExpired) {
		t.Fatalf("resend of an expired code: %v", err)
	}
	ch = e.begin(t, "u1", Email)
	for range DefaultMaxAttempts {
		e.p.Verify(e.ctx, "u1", ch.ID, wrong(ch.Send.Code))
	}
	e.clk.Advance(DefaultResendCooldown)
	if _, err := e.p.Resend(e.ctx, ResendInput{UserID: "u1", ID: ch.ID}); !errors.Is(err, ErrNoAttemptsLeft) {
		t.Fatalf("resend of a spent code: %v", err)
	}
}

func TestEnrollmentResend(t *testing.T) {
	e := newEnv(t, Config{})
	en, err := e.p.BeginEnrollment(e.ctx, EnrollInput{UserID: "u1", Channel: Email, Destination: "alice@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(DefaultResendCooldown)
	s, err := e.p.Resend(e.ctx, ResendInput{UserID: "u1", ID: en.Factor.ID})
	if err != nil || s.Code != en.Send.Code || s.Destination != "alice@example.com" {
		t.Fatalf("enrollment resend: %+v %v", s, err)
	}
	// An enrollment code does not answer a login, nor the reverse.
	if _, err := e.p.Verify(e.ctx, "u1", en.Factor.ID, en.Send.Code); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("enrollment code as a login: %v", err)
	}
	if _, _, err := e.p.FinishEnrollment(e.ctx, "u1", en.Factor.ID, s.Code); err != nil {
		t.Fatalf("finish with the resent code: %v", err)
	}
}

func TestDailyCaps(t *testing.T) {
	e := newEnv(t, Config{UserDailyCap: 4, DestinationDailyCap: 3})
	e.enroll(t, "u1", SMS, "+4915123456712") // send 1 of u1 and of the number
	ch := e.begin(t, "u1", SMS)              // 2
	e.clk.Advance(DefaultResendCooldown)
	if _, err := e.p.Resend(e.ctx, ResendInput{UserID: "u1", ID: ch.ID}); err != nil { // 3: the number's cap
		t.Fatal(err)
	}
	var ce *storage.SendCapError
	_, err := e.p.BeginChallenge(e.ctx, ChallengeInput{UserID: "u1", Channel: SMS})
	if !errors.Is(err, ErrSendCap) || !errors.As(err, &ce) || ce.Scope != ScopeDestination {
		t.Fatalf("fourth send to the number: %v", err)
	}
	// Another user on the same number meets the same cap, before anything is written.
	_, err = e.p.BeginEnrollment(e.ctx, EnrollInput{UserID: "u2", Channel: SMS, Destination: "+49 151 2345 6712"})
	if !errors.As(err, &ce) || ce.Scope != ScopeDestination {
		t.Fatalf("enrollment of the capped number: %v", err)
	}
	if fs, _ := e.store.ListFactors(e.ctx, "u2", "", ""); len(fs) != 0 {
		t.Fatalf("a refused enrollment left %d factors", len(fs))
	}
	// u1's own cap: one more send to another destination, then none.
	e.enroll(t, "u1", Email, "alice@example.com") // 4
	_, err = e.p.BeginChallenge(e.ctx, ChallengeInput{UserID: "u1", Channel: Email})
	if !errors.As(err, &ce) || ce.Scope != ScopeUser {
		t.Fatalf("fifth send of the user: %v", err)
	}
	// The next UTC day starts again; the cleanup forgets old counters.
	e.clk.Advance(24 * time.Hour)
	e.begin(t, "u1", Email)
	e.begin(t, "u1", SMS)
	counters := func() int64 {
		t.Helper()
		if err := e.p.Cleanup(e.ctx); err != nil {
			t.Fatal(err)
		}
		var n int64
		e.store.DB(e.ctx).Model(&storage.OTPSendCounter{}).Count(&n)
		return n
	}
	if n := counters(); n != 6 {
		t.Fatalf("%d counters after the cleanup; want yesterday's 3 and today's 3", n)
	}
	e.clk.Advance(24 * time.Hour)
	if n := counters(); n != 3 {
		t.Fatalf("%d counters a day later; want yesterday's 3", n)
	}
}

func TestDeliveryStatus(t *testing.T) {
	e := newEnv(t, Config{})
	e.enroll(t, "u1", Email, "alice@example.com")
	ch := e.begin(t, "u1", Email)
	status := func() Status {
		t.Helper()
		st, err := e.p.Status(e.ctx, "u1", ch.ID)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := status(); st.Delivery.State != storage.DeliveryQueued || st.Sends != 1 || st.Channel != Email ||
		!st.NextResendAt.Equal(e.clk.Now().Add(DefaultResendCooldown)) {
		t.Fatalf("status %+v", st)
	}
	t0 := e.clk.Now()
	if ok, err := e.p.RecordDelivery(e.ctx, ch.ID, Delivery{State: storage.DeliveryDelivered, At: t0.Add(time.Second)}); !ok || err != nil {
		t.Fatalf("delivered: %v %v", ok, err)
	}
	if st := status(); st.Delivery.State != storage.DeliveryDelivered {
		t.Fatalf("status %+v", st)
	}
	// A stale failure (older than the delivery) does not undo it.
	if ok, _ := e.p.RecordDelivery(e.ctx, ch.ID, Delivery{State: storage.DeliveryFailed, Reason: "x", At: t0}); ok {
		t.Fatal("a stale failure was recorded")
	}
	e.clk.Advance(DefaultResendCooldown)
	if _, err := e.p.Resend(e.ctx, ResendInput{UserID: "u1", ID: ch.ID}); err != nil {
		t.Fatal(err)
	}
	if st := status(); st.Delivery.State != storage.DeliveryQueued || st.Sends != 2 {
		t.Fatalf("status after a resend %+v", st)
	}
	// The resend's own status event names it by its message id.
	if ok, err := e.p.RecordDelivery(e.ctx, ch.ID+"_2", Delivery{State: storage.DeliveryDelivered}); !ok || err != nil {
		t.Fatalf("resend delivered: %v %v", ok, err)
	}
	long := "smtp 550 mailbox unavailable\n" + string(make([]byte, 400))
	if ok, err := e.p.RecordDelivery(e.ctx, ch.ID, Delivery{State: storage.DeliveryFailed, Reason: long}); !ok || err != nil {
		t.Fatalf("failed: %v %v", ok, err)
	}
	if st := status(); st.Delivery.State != storage.DeliveryFailed || len(st.Delivery.Reason) > MaxReasonLen ||
		st.Delivery.Reason[:12] != "smtp 550 mai" {
		t.Fatalf("status after a failure %+v", st)
	}
	if _, err := e.p.RecordDelivery(e.ctx, ch.ID, Delivery{State: "lost"}); err == nil {
		t.Fatal("unknown state recorded")
	}
	if ok, err := e.p.RecordDelivery(e.ctx, "no-such-challenge", Delivery{State: storage.DeliveryDelivered}); ok || err != nil {
		t.Fatalf("unknown challenge: %v %v", ok, err)
	}
}

// The cap per destination counts a mailbox, not its spellings: +tags and case
// reach one cap, while each message still goes to the address as typed.
func TestDestinationCapCountsTheMailbox(t *testing.T) {
	e := newEnv(t, Config{UserDailyCap: 100, DestinationDailyCap: 3})
	for i, dest := range []string{"alice+1@example.com", "alice+2@Example.COM", "Alice@example.com"} {
		en, err := e.p.BeginEnrollment(e.ctx, EnrollInput{UserID: fmt.Sprintf("u%d", i), Channel: Email, Destination: dest})
		if err != nil {
			t.Fatalf("send %d to %s: %v", i+1, dest, err)
		}
		if want, _ := NormalizeEmail(dest); en.Send.Destination != want { // the +tag and the local part's case kept
			t.Fatalf("send to %q went to %q", dest, en.Send.Destination)
		}
	}
	var ce *storage.SendCapError
	_, err := e.p.BeginEnrollment(e.ctx, EnrollInput{UserID: "u9", Channel: Email, Destination: "ALICE+bomb@EXAMPLE.com"})
	if !errors.As(err, &ce) || ce.Scope != ScopeDestination {
		t.Fatalf("fourth send to alice's mailbox: %v, want the destination's cap", err)
	}
	// Another mailbox, and one whose name begins with +, have caps of their own.
	for _, dest := range []string{"bob+alice@example.com", "+alice@example.com", "alice@example.org"} {
		if _, err := e.p.BeginEnrollment(e.ctx, EnrollInput{UserID: "u8", Channel: Email, Destination: dest}); err != nil {
			t.Fatalf("send to %s: %v", dest, err)
		}
	}
}
