package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/twofactor/twofactor/notify"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/push"
	"github.com/twofactor/twofactor/server/challenge"
	"github.com/twofactor/twofactor/server/throttle"
	"github.com/twofactor/twofactor/storage"
)

// BeginChallenge opens a challenge.
func (s *challengeService) BeginChallenge(ctx context.Context, req *pb.BeginChallengeRequest) (*pb.BeginChallengeResponse, error) {
	f, err := s.checkBegin(req)
	if err != nil {
		return nil, err
	}
	if err := s.requireAllowedFor(ctx, req.GetUserId(), f.Name); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	d, err := s.checkThrottle(ctx, req.GetContext(), throttle.Subjects{UserID: req.GetUserId(), IP: req.GetContext().GetIp()}, f.Name)
	if err != nil {
		return nil, err
	}
	if d.Blocked {
		return nil, throttledError(d)
	}
	out, err := f.Challenge.Begin(ctx, BeginInput{UserID: req.GetUserId(), FactorID: req.GetFactorId(), Client: req.GetContext(), Locale: req.GetLocale()})
	if errors.Is(err, ErrNoFactor) {
		if req.GetFactorId() != "" {
			return nil, notFound("factor_id", req.GetFactorId())
		}
		return nil, status.Errorf(codes.FailedPrecondition, "user_id: the user has no active %s factor", f.Name)
	}
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	userID := req.GetUserId()
	if out.UserID != "" {
		userID = out.UserID
	}
	ch, id, err := s.challenges.Begin(ctx, challenge.Spec{UserID: userID, FactorID: out.FactorID, Method: f.Name,
		ClientIP: req.GetContext().GetIp(), Session: out.Session, Sealed: out.Sealed, FromStep: out.FromStep})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	s.audit(ctx, req.GetContext(), AuditEvent{Event: notify.EventChallengeBegun, UserID: userID, Method: f.Name,
		Details: map[string]string{"challenge_id": ch.ID}})
	for _, dl := range out.Deliveries {
		if err := s.deliver(ctx, f.Name, dl, Begun{ID: id, Challenge: ch}); err != nil {
			return nil, err
		}
	}
	resp := &pb.BeginChallengeResponse{
		ChallengeId:                id,
		Method:                     req.GetMethod(),
		ExpiresAt:                  timestamppb.New(ch.ExpiresAt),
		WebauthnRequestOptionsJson: out.OptionsJSON,
		MaxAttempts:                uint32(ch.MaxAttempts),
	}
	if out.Respond != nil {
		out.Respond(resp)
	}
	return resp, nil
}

// deliver performs one of a challenge's deliveries. A failure is Unavailable
// (try again); when the delivery certainly published nothing
// (notify.NotPublished) what was reserved for it is taken back first (Undoer),
// so that a push nobody was told of does not block the next one and a code
// never sent does not count toward the daily caps. A failure that may have
// published (an acknowledgement that timed out: the message may still be
// stored, or sent from the reconnect buffer) keeps its reservation.
func (s *core) deliver(ctx context.Context, method string, dl Delivery, b Begun) error {
	err := dl.Deliver(ctx, b)
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return s.toStatus(ctx, failedDelivery(ctx, method, dl, err))
}

// failedDelivery is dl's failure err, after undoUnpublished took back what
// was reserved for it when nothing was published.
func failedDelivery(ctx context.Context, method string, dl Delivery, err error) *deliveryError {
	undone, uerr := undoUnpublished(ctx, dl, err)
	return &deliveryError{method: method, err: err, undone: undone, undoErr: uerr}
}

// undoUnpublished takes back what was reserved for dl when its delivery failed
// with err and certainly published nothing (notify.NotPublished) and dl is an
// Undoer; it reports whether it did. The caller's context may have ended: the
// undo, one short transaction, runs on its own.
func undoUnpublished(ctx context.Context, dl Delivery, err error) (bool, error) {
	u, ok := dl.(Undoer)
	if !ok || !notify.NotPublished(err) {
		return false, nil
	}
	uctx, cancel := detached(ctx)
	defer cancel()
	if err := u.Undo(uctx); err != nil {
		return false, err
	}
	return true, nil
}

// detached is ctx without its end, bounded to 10 s: for the short clean-up
// after a failed delivery, which must run even when the caller has left.
func detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
}

// deliveryError is a method's message that could not be handed over for
// delivery: toStatus logs its cause (and a failed undo) and answers
// Unavailable (deliveryUnavailable), wherever it comes from (a challenge's
// delivery, an enrollment's code or notice).
type deliveryError struct {
	method  string
	err     error
	undone  bool  // what was reserved for it was taken back
	undoErr error // taking it back failed
}

func (e *deliveryError) Error() string {
	return "delivery of the " + e.method + " message: " + e.err.Error()
}
func (e *deliveryError) Unwrap() error { return e.err }

// log records e: the cause is the caller's only trace of it (the answer is
// Unavailable, without it).
func (e *deliveryError) log(ctx context.Context, log *slog.Logger) {
	rid := requestIDFrom(ctx)
	if e.undoErr != nil {
		log.ErrorContext(ctx, "could not take back an unpublished delivery's reservation", "request_id", rid,
			"method", e.method, "error", e.undoErr.Error())
	}
	log.WarnContext(ctx, "out-of-band delivery failed", "request_id", rid, "method", e.method,
		"reservation_undone", e.undone, "error", e.err.Error())
}

// deliveryUnavailable is the answer to a failed delivery of a method's message.
func deliveryUnavailable(method string) error {
	return status.Errorf(codes.Unavailable, "the %s message could not be handed over for delivery; try again", method)
}

// checkBegin validates a BeginChallenge request and finds its factor.
func (s *challengeService) checkBegin(req *pb.BeginChallengeRequest) (*Factor, error) {
	f, ok := s.factors.method(req.GetMethod())
	if !ok {
		return nil, invalid("method", "%s cannot be used for a challenge", req.GetMethod())
	}
	if req.GetUserId() != "" || !f.FindsUser {
		if err := checkUserID("user_id", req.GetUserId()); err != nil {
			return nil, err
		}
	}
	if req.GetFactorId() != "" {
		if err := checkID("factor_id", req.GetFactorId()); err != nil {
			return nil, err
		}
	}
	if len(req.GetLocale()) > maxLocaleLen {
		return nil, invalid("locale", "is longer than %d bytes", maxLocaleLen)
	}
	return f, checkIP("context.ip", req.GetContext().GetIp())
}

// maxLocaleLen bounds a locale tag.
const maxLocaleLen = 35

// VerifyChallenge checks an answer: the wire to package challenge and back.
func (s *challengeService) VerifyChallenge(ctx context.Context, req *pb.VerifyChallengeRequest) (*pb.VerifyChallengeResponse, error) {
	ans, err := checkVerify(req)
	if err != nil {
		return nil, err
	}
	if err := checkRemember(req); err != nil {
		return nil, err
	}
	ch, f, err := s.load(ctx, req.GetChallengeId())
	if err != nil {
		return nil, err
	}
	resp := &pb.VerifyChallengeResponse{UserId: ch.UserID, FactorId: ch.FactorID, Method: f.Method}
	if !s.challenges.Answerable(ch) {
		return s.withDelivery(ctx, f, ch, s.expired(ctx, req, ch, resp)), nil
	}
	if pending, err := s.wait(ctx, f, ch, ans, resp); err != nil {
		return nil, err
	} else if pending {
		return resp, nil
	}
	subj := throttle.Subjects{UserID: ch.UserID, IP: clientIP(req.GetContext(), ch.ClientIP), Hold: []string{challenge.HoldKey(ch)}}
	a, err := s.answer(ctx, req, subj, ch, f, ans, resp)
	if err != nil {
		return nil, err
	}
	res, out, v, failed := a.res, a.out, a.v, a.failed
	if res.Blocked {
		// Refused before the factor sees the answer: no attempt is used up.
		s.metrics.verification(ch.Method, "throttled")
		resp.Result = pb.VerifyResult_VERIFY_RESULT_THROTTLED
		resp.RetryAfter = retryAfter(res.Decision.RetryAfter)
		resp.RemainingAttempts = uint32(ch.MaxAttempts - ch.Attempts)
		return resp, nil
	}
	switch out.Result {
	case challenge.Accepted:
		resp = s.withDelivery(ctx, f, ch, s.accepted(ctx, ch, resp, v, ch.UserID == "", out))
		s.rememberDevice(ctx, req, resp, subj.IP)
		return resp, nil
	case challenge.Rejected:
		return s.withDelivery(ctx, f, ch, s.rejected(ch, resp, v, out)), nil
	}
	if failed { // wrong, and the challenge ended meanwhile: the factor's events outside a transaction
		s.auditAll(ctx, req.GetContext(), v.Audit)
	}
	return s.withDelivery(ctx, f, ch, s.expired(ctx, req, ch, resp)), nil
}

// withDelivery adds how the challenge's out-of-band message fared, for a method
// that sends one (a backend offers another method when it failed).
func (s *challengeService) withDelivery(ctx context.Context, f *Factor, ch *challenge.Challenge, resp *pb.VerifyChallengeResponse) *pb.VerifyChallengeResponse {
	if r, ok := f.Challenge.(DeliveryReporter); ok {
		if d, err := r.DeliveryStatus(ctx, ch); err == nil {
			resp.Delivery = d
		}
	}
	return resp
}

// wait lets a method whose answer comes from elsewhere (push) wait for it,
// outside any transaction; pending: resp says so, and no attempt is used.
func (s *challengeService) wait(ctx context.Context, f *Factor, ch *challenge.Challenge, ans Answer, resp *pb.VerifyChallengeResponse) (bool, error) {
	w, ok := f.Challenge.(Waiter)
	if !ok {
		return false, nil
	}
	pending, err := w.Wait(ctx, ch, ans)
	if err != nil {
		return false, s.toStatus(ctx, err)
	}
	if pending {
		s.metrics.verification(ch.Method, "pending")
		resp.Result = pb.VerifyResult_VERIFY_RESULT_PENDING
		resp.RemainingAttempts = uint32(ch.MaxAttempts - ch.Attempts)
	}
	return pending, nil
}

// answered is what answer found.
type answered struct {
	res    throttle.Result
	out    challenge.Outcome
	v      Verdict
	failed bool // the answer was wrong
}

// answer counts the answer before it is looked at: the user, the network and
// the challenge are held while the challenge is read again, verified and the
// failure counted, in one transaction (throttle.Guard), which also commits the
// outcome's audit records.
func (s *challengeService) answer(ctx context.Context, req *pb.VerifyChallengeRequest, subj throttle.Subjects,
	ch *challenge.Challenge, f *Factor, ans Answer, resp *pb.VerifyChallengeResponse) (answered, error) {
	var a answered
	if ch.Sealed() {
		// Verify's read of the challenge's state goes with the Guard's read of
		// the counts, after the hold (one round trip fewer on PostgreSQL).
		ctx = storage.WithSealedRead(ctx, &ch.Challenge)
	}
	res, err := s.guardAttempt(ctx, req.GetContext(), subj, ch.Method, func(ctx context.Context) (throttle.Verdict, error) {
		var err error
		a.out, err = s.challenges.Verify(ctx, ch, func(ctx context.Context) (bool, error) {
			var err error
			a.v, err = f.Challenge.Verify(ctx, ch, ans)
			if err == nil && a.v.Accepted && ch.UserID == "" {
				// The answer found the user (a passkey): the policy's group
				// rules, which BeginChallenge could not apply without a user,
				// hold now, before the answer counts (refused: rolled back).
				err = s.requireAllowedFor(ctx, a.v.UserID, ch.Method)
			}
			return a.v.Accepted, err
		}, func(context.Context) error {
			a.failed = true // the Guard counts the failure in its transaction
			return nil
		}, func(ctx context.Context, o challenge.Outcome) error {
			resolveVerdict(resp, a.v)
			return s.auditTx(ctx, req.GetContext(), outcomeEvents(ch, resp, a.v, o)...)
		})
		return guardVerdict(a.out.Result), err
	})
	a.res = res
	return a, err
}

// guardVerdict is what a challenge's result means to the throttle.
func guardVerdict(r challenge.Result) throttle.Verdict {
	switch r {
	case challenge.Accepted:
		return throttle.Accepted
	case challenge.Rejected:
		return throttle.Rejected
	}
	return throttle.NotEvaluated
}

// checkVerify validates a VerifyChallenge request and returns its answer.
func checkVerify(req *pb.VerifyChallengeRequest) (Answer, error) {
	if err := checkChallengeID(req.GetChallengeId()); err != nil {
		return Answer{}, err
	}
	if err := checkIP("context.ip", req.GetContext().GetIp()); err != nil {
		return Answer{}, err
	}
	switch r := req.GetResponse().(type) {
	case *pb.VerifyChallengeRequest_Code:
		if r.Code == "" {
			return Answer{}, invalid("code", "is empty")
		}
		return Answer{Code: r.Code}, nil
	case *pb.VerifyChallengeRequest_WebauthnAssertionJson:
		if r.WebauthnAssertionJson == "" {
			return Answer{}, invalid("webauthn_assertion_json", "is empty")
		}
		return Answer{AssertionJSON: r.WebauthnAssertionJson}, nil
	case *pb.VerifyChallengeRequest_Push:
		w := r.Push.GetWait()
		if err := w.CheckValid(); w != nil && err != nil {
			return Answer{}, invalid("push.wait", "is not a valid duration")
		}
		if d := w.AsDuration(); d < 0 || d > 30*time.Second {
			return Answer{}, invalid("push.wait", "must be 0 to 30 s")
		}
		return Answer{Push: true, PushWait: w.AsDuration()}, nil
	}
	return Answer{}, invalid("response", "is required: set code, webauthn_assertion_json or push")
}

// load reads the challenge and the factor of its method.
func (s *challengeService) load(ctx context.Context, id string) (*challenge.Challenge, *Factor, error) {
	ch, err := s.challenges.Load(ctx, id)
	if errors.Is(err, challenge.ErrNotFound) {
		head, _, _ := strings.Cut(id, ".")
		return nil, nil, notFound("challenge_id", head)
	}
	if err != nil {
		return nil, nil, s.toStatus(ctx, err)
	}
	f, ok := s.factors.named(ch.Method)
	if !ok {
		return nil, nil, s.toStatus(ctx, fmt.Errorf("challenge %s: unknown method %q", ch.ID, ch.Method))
	}
	return ch, f, nil
}

// auditAll records events outside a transaction.
func (s *challengeService) auditAll(ctx context.Context, client *pb.ClientContext, events []AuditEvent) {
	for _, e := range events {
		s.audit(ctx, client, e)
	}
}

// resolveVerdict sets the user and factor the answer resolved.
func resolveVerdict(resp *pb.VerifyChallengeResponse, v Verdict) {
	if v.FactorID != "" {
		resp.FactorId = v.FactorID
	}
	if v.UserID != "" {
		resp.UserId = v.UserID
	}
}

// outcomeEvents are the audit events of an accepted or rejected answer: the
// factor's own, then challenge.accepted or challenge.rejected.
func outcomeEvents(ch *challenge.Challenge, resp *pb.VerifyChallengeResponse, v Verdict, o challenge.Outcome) []AuditEvent {
	events := append(make([]AuditEvent, 0, len(v.Audit)+1), v.Audit...)
	if o.Result == challenge.Accepted {
		return append(events, AuditEvent{Event: notify.EventChallengeAccepted, UserID: resp.UserId, Method: ch.Method, Result: "accepted",
			Details: map[string]string{"challenge_id": ch.ID, "factor_id": resp.FactorId}})
	}
	return append(events, AuditEvent{Event: notify.EventChallengeRejected, UserID: ch.UserID, Method: ch.Method,
		Result: v.Reason.String(), Details: map[string]string{"challenge_id": ch.ID}})
}

// accepted answers a right answer (its audit events are committed with it);
// resetThrottle: the user was found by the answer (a passkey), so the Guard
// could not reset the user's failure counts.
func (s *challengeService) accepted(ctx context.Context, ch *challenge.Challenge,
	resp *pb.VerifyChallengeResponse, v Verdict, resetThrottle bool, out challenge.Outcome) *pb.VerifyChallengeResponse {
	if resetThrottle {
		s.throttleSuccess(ctx, throttle.Subjects{UserID: resp.UserId})
	}
	if s.push != nil && s.push.Config().LockOnNotMe && ch.Method != push.Method {
		// Signing in with another factor lifts a "this was not me" lock of push.
		if err := s.push.Unlock(ctx, resp.UserId); err != nil {
			s.log.WarnContext(ctx, "push: unlock failed", "error", err.Error())
		}
	}
	s.metrics.verification(ch.Method, "accepted")
	resp.Result = pb.VerifyResult_VERIFY_RESULT_ACCEPTED
	resp.CompleteLogin = v.CompleteLogin
	resp.RemainingAttempts = uint32(out.Remaining)
	return resp
}

// rejected answers a wrong answer that was counted (its audit events are
// committed with the count).
func (s *challengeService) rejected(ch *challenge.Challenge, resp *pb.VerifyChallengeResponse, v Verdict, out challenge.Outcome) *pb.VerifyChallengeResponse {
	s.metrics.verification(ch.Method, "rejected")
	resp.Result = pb.VerifyResult_VERIFY_RESULT_REJECTED
	resp.Reason = v.Reason
	resp.RemainingAttempts = uint32(out.Remaining)
	return resp
}

// expired answers an answer to a challenge that is used up, failed or out of time.
func (s *challengeService) expired(ctx context.Context, req *pb.VerifyChallengeRequest, ch *challenge.Challenge, resp *pb.VerifyChallengeResponse) *pb.VerifyChallengeResponse {
	s.metrics.verification(ch.Method, "expired")
	s.audit(ctx, req.GetContext(), AuditEvent{Event: notify.EventChallengeExpired, UserID: resp.UserId, Method: ch.Method, Result: "expired",
		Details: map[string]string{"challenge_id": ch.ID, "state": ch.State}})
	resp.Result = pb.VerifyResult_VERIFY_RESULT_EXPIRED
	return resp
}

// checkChallengeID validates the form of a challenge id: a stored challenge's
// uuid, or a sealed one (a uuid, a dot and base64url).
func checkChallengeID(id string) error {
	head, body, sealed := strings.Cut(id, ".")
	if err := checkID("challenge_id", head); err != nil || !sealed {
		return err
	}
	if len(id) > challenge.MaxIDLen || body == "" || strings.ContainsFunc(body, func(r rune) bool {
		return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}) {
		return invalid("challenge_id", "is not a valid id")
	}
	return nil
}
