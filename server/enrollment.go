package server

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/twofactor/twofactor/notify"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/server/throttle"
	"github.com/twofactor/twofactor/storage"
)

// BeginEnrollment creates a pending factor.
func (s *enrollmentService) BeginEnrollment(ctx context.Context, req *pb.BeginEnrollmentRequest) (*pb.BeginEnrollmentResponse, error) {
	if err := checkUserID("user_id", req.GetUserId()); err != nil {
		return nil, err
	}
	if err := checkName("name", req.GetName(), false); err != nil {
		return nil, err
	}
	f, ok := s.factors.method(req.GetMethod())
	if ok {
		if err := s.requireAllowedFor(ctx, req.GetUserId(), f.Name); err != nil {
			return nil, s.toStatus(ctx, err)
		}
	}
	if !ok || f.Enroll == nil {
		return nil, invalid("method", "%s cannot be enrolled with BeginEnrollment", req.GetMethod())
	}
	resp, err := f.Enroll.Begin(ctx, req)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return resp, nil
}

// FinishEnrollment activates a pending factor once proved. A wrong proof of a
// low-entropy factor is throttled as a wrong answer to a challenge is.
func (s *enrollmentService) FinishEnrollment(ctx context.Context, req *pb.FinishEnrollmentRequest) (*pb.FinishEnrollmentResponse, error) {
	if err := checkUserID("user_id", req.GetUserId()); err != nil {
		return nil, err
	}
	if err := checkID("factor_id", req.GetFactorId()); err != nil {
		return nil, err
	}
	pending, err := s.store.GetFactor(ctx, req.GetUserId(), req.GetFactorId())
	if errors.Is(err, storage.ErrNotFound) {
		return nil, notFound("factor_id", req.GetFactorId())
	}
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	desc, ok := s.factors.named(pending.Method)
	if !ok || desc.Enroll == nil {
		return nil, status.Errorf(codes.FailedPrecondition, "factor_id: a %s factor cannot be finished this way", pending.Method)
	}
	f, err := s.finish(ctx, desc, req)
	if err != nil {
		return nil, err
	}
	s.audit(ctx, nil, AuditEvent{Event: notify.EventFactorEnrolled, UserID: f.UserID, Method: f.Method, Result: "active",
		Details: map[string]string{"factor_id": f.ID}})
	return &pb.FinishEnrollmentResponse{Factor: s.factors.factorToPB(f)}, nil
}

// finish runs the factor's Finish, which moves the user's credentials epoch in
// the activation's transaction (finishThen); a low-entropy factor's proof is
// counted before it is checked (guardAttempt), as a challenge answer is.
func (s *enrollmentService) finish(ctx context.Context, desc *Factor, req *pb.FinishEnrollmentRequest) (*storage.Factor, error) {
	if !desc.LowEntropy {
		f, err := s.finishThen(ctx, desc, req)
		var wrong *WrongProof
		if errors.As(err, &wrong) {
			s.metrics.verification(desc.Name+"_enrollment", "rejected")
			return nil, invalid(wrong.Field, "%s", wrong.Message)
		}
		if err != nil {
			return nil, s.toStatus(ctx, err)
		}
		return f, nil
	}
	var (
		f     *storage.Factor
		wrong *WrongProof
	)
	res, err := s.guardAttempt(ctx, nil, throttle.Subjects{UserID: req.GetUserId()}, desc.Name, func(ctx context.Context) (throttle.Verdict, error) {
		var err error
		if f, err = s.finishThen(ctx, desc, req); errors.As(err, &wrong) {
			return throttle.Rejected, nil
		}
		return throttle.Accepted, err
	})
	switch {
	case err != nil:
		return nil, err
	case res.Blocked:
		return nil, throttledError(res.Decision)
	case wrong != nil:
		s.metrics.verification(desc.Name+"_enrollment", "rejected")
		return nil, invalid(wrong.Field, "%s", wrong.Message)
	}
	return f, nil
}

// finishThen runs the factor's Finish and moves the user's credentials epoch in
// the transaction that activates the factor (TxFinisher), or, for an Enroller
// that cannot, in a transaction around Finish: the factor is active with the
// epoch moved, or neither. A *WrongProof commits what Finish wrote (its counts
// of wrong codes).
func (s *enrollmentService) finishThen(ctx context.Context, desc *Factor, req *pb.FinishEnrollmentRequest) (*storage.Factor, error) {
	then := func(ctx context.Context, f *storage.Factor) error {
		return s.credentialsChanged(ctx, f.UserID, notify.EventFactorEnrolled, "")
	}
	if tf, ok := desc.Enroll.(TxFinisher); ok {
		return tf.FinishThen(ctx, req, then)
	}
	var (
		f     *storage.Factor
		wrong *WrongProof
	)
	err := s.store.InTx(ctx, func(ctx context.Context) error {
		var err error
		if f, err = desc.Enroll.Finish(ctx, req); errors.As(err, &wrong) {
			return nil
		} else if err != nil {
			return err
		}
		return then(ctx, f)
	})
	switch {
	case err != nil:
		return nil, err
	case wrong != nil:
		return nil, wrong
	}
	return f, nil
}

// ListFactors lists a user's factors.
func (s *enrollmentService) ListFactors(ctx context.Context, req *pb.ListFactorsRequest) (*pb.ListFactorsResponse, error) {
	if err := checkUserID("user_id", req.GetUserId()); err != nil {
		return nil, err
	}
	fs, err := s.store.ListFactors(ctx, req.GetUserId(), "", "")
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	out := &pb.ListFactorsResponse{}
	for i := range fs {
		out.Factors = append(out.Factors, s.factors.factorToPB(&fs[i]))
	}
	return out, nil
}

// RenameFactor renames a factor.
func (s *enrollmentService) RenameFactor(ctx context.Context, req *pb.RenameFactorRequest) (*pb.RenameFactorResponse, error) {
	if err := checkUserID("user_id", req.GetUserId()); err != nil {
		return nil, err
	}
	if err := checkID("factor_id", req.GetFactorId()); err != nil {
		return nil, err
	}
	if err := checkName("name", req.GetName(), true); err != nil {
		return nil, err
	}
	err := s.store.RenameFactor(ctx, req.GetUserId(), req.GetFactorId(), req.GetName(), s.now().UTC())
	if errors.Is(err, storage.ErrNotFound) {
		return nil, notFound("factor_id", req.GetFactorId())
	}
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	f, err := s.store.GetFactor(ctx, req.GetUserId(), req.GetFactorId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &pb.RenameFactorResponse{Factor: s.factors.factorToPB(f)}, nil
}

// RemoveFactor removes a factor.
func (s *enrollmentService) RemoveFactor(ctx context.Context, req *pb.RemoveFactorRequest) (*pb.RemoveFactorResponse, error) {
	if err := checkUserID("user_id", req.GetUserId()); err != nil {
		return nil, err
	}
	if err := checkID("factor_id", req.GetFactorId()); err != nil {
		return nil, err
	}
	f, err := s.store.GetFactor(ctx, req.GetUserId(), req.GetFactorId())
	if err == nil {
		err = s.changingCredentials(ctx, f.UserID, notify.EventFactorRemoved, "", func(ctx context.Context) error {
			return s.store.DeleteFactor(ctx, req.GetUserId(), req.GetFactorId())
		})
	}
	if errors.Is(err, storage.ErrNotFound) {
		return nil, notFound("factor_id", req.GetFactorId())
	}
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	s.audit(ctx, nil, AuditEvent{Event: notify.EventFactorRemoved, UserID: f.UserID, Method: f.Method,
		Details: map[string]string{"factor_id": f.ID}})
	return &pb.RemoveFactorResponse{}, nil
}
