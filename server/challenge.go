package server

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/twofactor/twofactor/notify"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/backupcodes"
	"github.com/twofactor/twofactor/server/throttle"
	"github.com/twofactor/twofactor/storage"
)

// method adapts one provider to the challenge flow. Implementations live in
// method_<name>.go and are registered in New.
type method interface {
	// begin checks that the user can use the method and prepares a challenge.
	begin(ctx context.Context, in beginInput) (beginOutput, error)
	// verify checks an answer to an open challenge. A wrong answer is a verdict,
	// not an error; single use of codes is the provider's job (a conditional
	// update), single use of the challenge the caller's.
	verify(ctx context.Context, ch *storage.Challenge, ans answer) (verdict, error)
}

type beginInput struct {
	UserID   string
	FactorID string
	Client   *pb.ClientContext
}

type beginOutput struct {
	// UserID is set when the method found the user itself (passkeys).
	UserID      string
	FactorID    string
	Session     []byte
	OptionsJSON string
	// Sealed asks for a challenge carried in its id instead of a stored row (see
	// sealedchallenge.go); FromStep is then the bound factor's last TOTP step.
	Sealed   bool
	FromStep *int64
}

type answer struct {
	Code          string
	AssertionJSON string
}

type verdict struct {
	Accepted      bool
	Reason        pb.RejectReason
	FactorID      string
	UserID        string // set when the method resolved the user (passkeys)
	CompleteLogin bool
	// Audit are the method's own events (a cloned key, codes running low); the
	// server records them once the answer's transaction has committed.
	Audit []AuditEvent
}

var (
	// errNoFactor: the user has no active factor of the method.
	errNoFactor = errors.New("no active factor")
	// errChallengeGone: a concurrent verifier consumed or killed the challenge.
	errChallengeGone = errors.New("challenge no longer open")
)

// BeginChallenge opens a challenge.
func (s *Server) BeginChallenge(ctx context.Context, req *pb.BeginChallengeRequest) (*pb.BeginChallengeResponse, error) {
	m, ok := s.methods[req.GetMethod()]
	if !ok {
		return nil, invalid("method", "%s cannot be used for a challenge", req.GetMethod())
	}
	if req.GetUserId() != "" || req.GetMethod() != pb.Method_METHOD_WEBAUTHN {
		if err := checkUserID("user_id", req.GetUserId()); err != nil {
			return nil, err
		}
	}
	if req.GetFactorId() != "" {
		if err := checkID("factor_id", req.GetFactorId()); err != nil {
			return nil, err
		}
	}
	if err := checkIP("context.ip", req.GetContext().GetIp()); err != nil {
		return nil, err
	}
	if err := s.requireAllowed(ctx, methodName(req.GetMethod())); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	d, err := s.checkThrottle(ctx, req.GetContext(), throttle.Subjects{UserID: req.GetUserId(), IP: req.GetContext().GetIp()}, methodName(req.GetMethod()))
	if err != nil {
		return nil, err
	}
	if d.Blocked {
		return nil, throttledError(d)
	}
	out, err := m.begin(ctx, beginInput{UserID: req.GetUserId(), FactorID: req.GetFactorId(), Client: req.GetContext()})
	if errors.Is(err, errNoFactor) {
		if req.GetFactorId() != "" {
			return nil, notFound("factor_id", req.GetFactorId())
		}
		return nil, status.Errorf(codes.FailedPrecondition, "user_id: the user has no active %s factor", methodName(req.GetMethod()))
	}
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	userID := req.GetUserId()
	if out.UserID != "" {
		userID = out.UserID
	}
	now := s.now().UTC()
	ch := &storage.Challenge{
		ID:          uuid.NewString(),
		UserID:      userID,
		FactorID:    out.FactorID,
		Method:      methodName(req.GetMethod()),
		State:       storage.ChallengeOpen,
		Session:     out.Session,
		MaxAttempts: s.opts.MaxAttempts,
		ExpiresAt:   now.Add(s.opts.ChallengeTTL),
		ClientIP:    req.GetContext().GetIp(),
		CreatedAt:   now,
		UpdatedAt:   now,
	}
	id := ch.ID
	if out.Sealed && out.FactorID != "" {
		ch.Sealed, ch.FromStep = true, out.FromStep
		if id, err = s.sealChallenge(ch); err != nil {
			return nil, s.toStatus(ctx, err)
		}
	} else if err := s.store.CreateChallenge(ctx, ch); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	s.audit(ctx, req.GetContext(), AuditEvent{Event: notify.EventChallengeBegun, UserID: userID, Method: ch.Method,
		Details: map[string]string{"challenge_id": ch.ID}})
	return &pb.BeginChallengeResponse{
		ChallengeId:                id,
		Method:                     req.GetMethod(),
		ExpiresAt:                  timestamppb.New(ch.ExpiresAt),
		WebauthnRequestOptionsJson: out.OptionsJSON,
		MaxAttempts:                uint32(ch.MaxAttempts),
	}, nil
}

// VerifyChallenge checks an answer.
func (s *Server) VerifyChallenge(ctx context.Context, req *pb.VerifyChallengeRequest) (*pb.VerifyChallengeResponse, error) {
	if err := checkChallengeID(req.GetChallengeId()); err != nil {
		return nil, err
	}
	if err := checkIP("context.ip", req.GetContext().GetIp()); err != nil {
		return nil, err
	}
	var ans answer
	switch r := req.GetResponse().(type) {
	case *pb.VerifyChallengeRequest_Code:
		if r.Code == "" {
			return nil, invalid("code", "is empty")
		}
		ans.Code = r.Code
	case *pb.VerifyChallengeRequest_WebauthnAssertionJson:
		if r.WebauthnAssertionJson == "" {
			return nil, invalid("webauthn_assertion_json", "is empty")
		}
		ans.AssertionJSON = r.WebauthnAssertionJson
	default:
		return nil, invalid("response", "is required: set code or webauthn_assertion_json")
	}
	// The challenge and the factor it is bound to, in one read.
	ch, err := s.loadChallenge(ctx, req.GetChallengeId())
	if errors.Is(err, storage.ErrNotFound) {
		head, _, _ := strings.Cut(req.GetChallengeId(), ".")
		return nil, notFound("challenge_id", head)
	}
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	pm := methodFromName(ch.Method)
	if _, ok := s.methods[pm]; !ok {
		return nil, s.toStatus(ctx, fmt.Errorf("challenge %s: unknown method %q", ch.ID, ch.Method))
	}
	resp := &pb.VerifyChallengeResponse{UserId: ch.UserID, FactorId: ch.FactorID, Method: pm}
	now := s.now().UTC()
	if ch.State != storage.ChallengeOpen || !now.Before(ch.ExpiresAt) || ch.Attempts >= ch.MaxAttempts ||
		ch.Sealed && ch.Factor != nil && !storage.SameStep(ch.Factor.LastStep, ch.FromStep) {
		return s.expired(ctx, req, ch, resp), nil
	}
	subj := throttle.Subjects{UserID: ch.UserID, IP: clientIP(req.GetContext(), ch.ClientIP)}
	d, err := s.checkThrottle(ctx, req.GetContext(), subj, ch.Method)
	if err != nil {
		return nil, err
	}
	if d.Blocked {
		// Refused before the provider sees the answer: no attempt is used up.
		s.metrics.verification(ch.Method, "throttled")
		resp.Result = pb.VerifyResult_VERIFY_RESULT_THROTTLED
		resp.RetryAfter = retryAfter(d.RetryAfter)
		resp.RemainingAttempts = uint32(ch.MaxAttempts - ch.Attempts)
		return resp, nil
	}
	// The answer's own single use (a TOTP step, a backup code, a WebAuthn counter)
	// and the challenge's are one transaction: a right answer that loses the
	// challenge to a concurrent verifier is rolled back, so it is neither spent nor
	// half-written; a wrong one commits what the provider recorded (e.g. a cloned
	// authenticator's mark) and then costs an attempt.
	var v verdict
	if ch.Sealed {
		// One conditional update both spends the code and uses the challenge up
		// (AdvanceLastStepFrom): no transaction is needed around it.
		v, err = s.methods[pm].verify(ctx, ch, ans)
	} else {
		err = s.store.InTx(ctx, func(ctx context.Context) error {
			var err error
			if v, err = s.methods[pm].verify(ctx, ch, ans); err != nil || !v.Accepted {
				return err
			}
			won, err := s.store.ConsumeChallenge(ctx, ch.ID, now)
			if err == nil && !won {
				return errChallengeGone
			}
			return err
		})
	}
	if errors.Is(err, errChallengeGone) {
		return s.expired(ctx, req, ch, resp), nil
	}
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	for _, e := range v.Audit {
		s.audit(ctx, req.GetContext(), e)
	}
	if v.FactorID != "" {
		resp.FactorId = v.FactorID
	}
	if v.UserID != "" {
		resp.UserId = v.UserID
	}
	if v.Accepted {
		if d.HasCount(throttle.User) || ch.UserID == "" {
			s.throttleSuccess(ctx, throttle.Subjects{UserID: resp.UserId})
		}
		s.metrics.verification(ch.Method, "accepted")
		if ch.Method == backupcodes.Method {
			s.audit(ctx, req.GetContext(), AuditEvent{Event: notify.EventBackupCodeUsed, UserID: resp.UserId, Method: ch.Method, Result: "accepted",
				Details: map[string]string{"challenge_id": ch.ID}})
		}
		resp.Result = pb.VerifyResult_VERIFY_RESULT_ACCEPTED
		resp.CompleteLogin = v.CompleteLogin
		resp.RemainingAttempts = uint32(ch.MaxAttempts - ch.Attempts)
		s.audit(ctx, req.GetContext(), AuditEvent{Event: notify.EventChallengeAccepted, UserID: resp.UserId, Method: ch.Method, Result: "accepted",
			Details: map[string]string{"challenge_id": ch.ID, "factor_id": resp.FactorId}})
		return resp, nil
	}
	subj.UserID = resp.UserId
	if _, err := s.throttleFailure(ctx, req.GetContext(), subj, ch.Method); err != nil {
		return nil, err
	}
	var (
		remaining int
		open      bool
	)
	if ch.Sealed {
		remaining, open, err = s.store.FailSealedChallengeAttempt(ctx, ch, now)
	} else {
		remaining, open, err = s.store.FailChallengeAttempt(ctx, ch.ID, now)
	}
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	if !open {
		return s.expired(ctx, req, ch, resp), nil
	}
	s.metrics.verification(ch.Method, "rejected")
	resp.Result = pb.VerifyResult_VERIFY_RESULT_REJECTED
	resp.Reason = v.Reason
	resp.RemainingAttempts = uint32(remaining)
	s.audit(ctx, req.GetContext(), AuditEvent{Event: notify.EventChallengeRejected, UserID: ch.UserID, Method: ch.Method,
		Result: v.Reason.String(), Details: map[string]string{"challenge_id": ch.ID}})
	return resp, nil
}

// expired answers an answer to a challenge that is used up, failed or out of time.
func (s *Server) expired(ctx context.Context, req *pb.VerifyChallengeRequest, ch *storage.Challenge, resp *pb.VerifyChallengeResponse) *pb.VerifyChallengeResponse {
	s.metrics.verification(ch.Method, "expired")
	s.audit(ctx, req.GetContext(), AuditEvent{Event: notify.EventChallengeExpired, UserID: resp.UserId, Method: ch.Method, Result: "expired",
		Details: map[string]string{"challenge_id": ch.ID, "state": ch.State}})
	resp.Result = pb.VerifyResult_VERIFY_RESULT_EXPIRED
	return resp
}

// loadChallenge reads a challenge by the id BeginChallenge returned, with the
// factor it is bound to: a sealed id is opened and completed from the store, a
// plain one read from the challenges table. A sealed id that does not open is
// storage.ErrNotFound, as an unknown plain id is.
func (s *Server) loadChallenge(ctx context.Context, id string) (*storage.Challenge, error) {
	if !isSealedChallengeID(id) {
		return s.store.GetChallengeAndFactor(ctx, id)
	}
	ch, err := s.openChallenge(id)
	if err != nil {
		return nil, storage.ErrNotFound
	}
	if err := s.store.LoadSealedChallenge(ctx, ch); err != nil {
		return nil, err
	}
	return ch, nil
}

// checkChallengeID validates the form of a challenge id: a stored challenge's
// uuid, or a sealed one (a uuid, a dot and base64url).
func checkChallengeID(id string) error {
	head, body, sealed := strings.Cut(id, ".")
	if err := checkID("challenge_id", head); err != nil || !sealed {
		return err
	}
	if len(id) > maxChallengeIDLen || body == "" || strings.ContainsFunc(body, func(r rune) bool {
		return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}) {
		return invalid("challenge_id", "is not a valid id")
	}
	return nil
}
