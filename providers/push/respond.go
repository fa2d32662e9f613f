package push

import (
	"context"
	"time"

	"github.com/twofactor/twofactor/storage"
)

// Response is a device's answer as Respond recorded it.
type Response struct {
	// Approved is true only for an approval with the right number.
	Approved bool
	// Event is one of the Event* constants, for the audit trail.
	Event string
	// SuspectedFatigue is set for a wrong number and for "this was not me": the
	// user may be approving pushes they did not cause (push bombing).
	SuspectedFatigue bool
	// Locked is set when "this was not me" locked the push method for the user.
	Locked bool
}

// RespondInput is a device's answer; the device signed RequestMessage("respond",
// device id, timestamp, nonce, ChallengeID, Decision, Number).
type RespondInput struct {
	ChallengeID string
	Decision    string
	Number      string
}

// RespondFields are the fields of a respond request's signed message.
func (in RespondInput) RespondFields() []string {
	return []string{in.ChallengeID, in.Decision, in.Number}
}

// Respond records the authenticated device d's answer to a pending push of its
// user. An approval needs the number shown on the login screen (unless the mode
// is NumberNone); a wrong number denies the login and is reported as suspected
// push fatigue. The answer is one conditional UPDATE: of concurrent answers on
// any replica exactly one is recorded, the others get ErrAnswered. The user's
// push limits are updated in the same transaction (the caller's, when it runs
// Respond inside one: the DeviceService runs it in the request's). Its
// refusals (an InputError, ErrNotFound, ErrAnswered, ErrExpired) are returned
// before anything is written.
func (s *Service) Respond(ctx context.Context, d *storage.PushDevice, in RespondInput) (*Response, error) {
	switch in.Decision {
	case DecisionApprove, DecisionDeny, DecisionNotMe:
	default:
		return nil, inputErr("decision", "want approve, deny or not_me")
	}
	if len(in.Number) > 6 {
		return nil, inputErr("number", "at most 6 digits")
	}
	c, err := s.challengeOf(ctx, d.UserID, in.ChallengeID)
	if err != nil {
		return nil, err
	}
	now := s.now()
	switch c.State {
	case storage.PushPending:
	case storage.PushWithdrawn: // taken back (its wake-up could not be sent): over, unanswered
		return nil, ErrExpired
	default:
		return nil, ErrAnswered
	}
	if !c.ExpiresAt.After(now) {
		return nil, ErrExpired
	}
	r, state, decision := s.judge(c, in)
	err = s.store.InTx(ctx, func(ctx context.Context) error {
		ok, err := s.store.AnswerPushChallenge(ctx, c.ID, d.UserID, state, decision, d.ID, now)
		if err != nil {
			return err
		}
		if !ok {
			return ErrAnswered
		}
		return s.updateLimit(ctx, d.UserID, func(l *storage.PushLimit) (bool, error) {
			s.settle(l, c.ID, r.Approved, r.Locked, now)
			return true, nil
		})
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// judge decides what an answer means, in constant time for the number.
func (s *Service) judge(c *storage.PushChallenge, in RespondInput) (*Response, string, string) {
	switch in.Decision {
	case DecisionDeny:
		return &Response{Event: EventDenied}, storage.PushDenied, DecisionDeny
	case DecisionNotMe:
		lock := s.cfg.LockOnNotMe
		return &Response{Event: EventNotMe, SuspectedFatigue: true, Locked: lock}, storage.PushDenied, DecisionNotMe
	}
	if c.NumberMode != NumberNone && !storage.EqualMAC(s.numberHash(c.ID, in.Number), c.NumberHash) {
		return &Response{Event: EventWrongNumber, SuspectedFatigue: true}, storage.PushDenied, decisionWrongNumber
	}
	return &Response{Approved: true, Event: EventApproved}, storage.PushApproved, DecisionApprove
}

// Status of a push challenge as VerifyChallenge answers it.
type Status string

const (
	StatusPending  Status = "pending"
	StatusAccepted Status = "accepted"
	StatusDenied   Status = "denied"
	// StatusExpired: unanswered in time, or already redeemed.
	StatusExpired Status = "expired"
)

// Verify answers whether userID's push challenge was approved. An approval is
// redeemed by the first Verify that sees it (a conditional UPDATE: on all
// replicas exactly one caller gets StatusAccepted); a denial is reported once the
// same way. Later calls get StatusExpired.
func (s *Service) Verify(ctx context.Context, userID, challengeID string) (Status, error) {
	// An approval is what a login usually finds: redeem it in one conditional
	// UPDATE, with no read first. Without a row (pending, denied, expired,
	// redeemed, another user's or none) the challenge is read to say which.
	if challengeID != "" && len(challengeID) <= 36 {
		ok, err := s.store.RedeemUsersPushChallenge(ctx, challengeID, userID, s.now())
		if err != nil {
			return "", err
		}
		if ok {
			return StatusAccepted, nil
		}
	}
	st, err := s.peek(ctx, userID, challengeID)
	if err != nil || (st != StatusAccepted && st != StatusDenied) {
		return st, err
	}
	from := storage.PushApproved
	if st == StatusDenied {
		from = storage.PushDenied
	}
	ok, err := s.store.ClosePushChallenge(ctx, challengeID, from, s.now())
	if err != nil {
		return "", err
	}
	if !ok {
		return StatusExpired, nil
	}
	return st, nil
}

// peek reads a challenge's status without redeeming it: StatusAccepted for an
// approval not yet redeemed, StatusDenied for a denial not yet reported.
func (s *Service) peek(ctx context.Context, userID, challengeID string) (Status, error) {
	c, err := s.challengeOf(ctx, userID, challengeID)
	if err != nil {
		return "", err
	}
	switch {
	case c.State == storage.PushRedeemed, c.State == storage.PushWithdrawn:
		return StatusExpired, nil
	case c.State == storage.PushDenied:
		return StatusDenied, nil
	case !c.ExpiresAt.After(s.now()):
		return StatusExpired, nil
	case c.State == storage.PushPending:
		return StatusPending, nil
	}
	return StatusAccepted, nil
}

// Waker wakes a waiting Verify when a device answered on any replica;
// notify.Publisher implements it over core NATS. The channel closes at the first
// wake-up; stop ends the subscription.
type Waker interface {
	SubscribePushResponse(challengeID string) (woken <-chan struct{}, stop func(), err error)
}

// Announcer tells every replica that a challenge was answered;
// notify.Publisher implements it. The announcement carries no decision.
type Announcer interface {
	AnnouncePushResponse(ctx context.Context, challengeID string) error
}

// testHookWaiting, set by tests only, is called when VerifyWait starts waiting.
var testHookWaiting func(challengeID string)

// MaxWait bounds VerifyWait's wait.
const MaxWait = 30 * time.Second

// Wait waits, while userID's challenge is pending, up to wait (at most MaxWait)
// for a wake-up from w, and reports whether it is still pending. It reads without
// redeeming (Verify redeems). It subscribes before reading the store, so an answer
// given in between is not missed; a wake-up only causes a re-read.
func (s *Service) Wait(ctx context.Context, w Waker, userID, challengeID string, wait time.Duration) (pending bool, err error) {
	st, err := s.peek(ctx, userID, challengeID)
	if err != nil || st != StatusPending || wait <= 0 || w == nil {
		return st == StatusPending, err
	}
	woken, stop, err := w.SubscribePushResponse(challengeID)
	if err != nil {
		return true, err
	}
	defer stop()
	if st, err = s.peek(ctx, userID, challengeID); err != nil || st != StatusPending {
		return st == StatusPending, err
	}
	timer := time.NewTimer(min(wait, MaxWait))
	defer timer.Stop()
	if testHookWaiting != nil {
		testHookWaiting(challengeID)
	}
	if s.cfg.OnWait != nil {
		s.cfg.OnWait(challengeID)
	}
	select {
	case <-woken:
	case <-timer.C:
	case <-ctx.Done():
		return true, ctx.Err()
	}
	st, err = s.peek(ctx, userID, challengeID)
	return st == StatusPending, err
}

// VerifyWait is Wait, then Verify.
func (s *Service) VerifyWait(ctx context.Context, w Waker, userID, challengeID string, wait time.Duration) (Status, error) {
	if _, err := s.Wait(ctx, w, userID, challengeID, wait); err != nil {
		return "", err
	}
	return s.Verify(ctx, userID, challengeID)
}
