package server

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/twofactor/twofactor/notify"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/totp"
	"github.com/twofactor/twofactor/providers/webauthn"
	"github.com/twofactor/twofactor/server/throttle"
	"github.com/twofactor/twofactor/storage"
)

// BeginEnrollment creates a pending factor.
func (s *Server) BeginEnrollment(ctx context.Context, req *pb.BeginEnrollmentRequest) (*pb.BeginEnrollmentResponse, error) {
	if err := checkUserID("user_id", req.GetUserId()); err != nil {
		return nil, err
	}
	if err := checkName("name", req.GetName(), false); err != nil {
		return nil, err
	}
	if name := methodName(req.GetMethod()); name != "" {
		if err := s.requireAllowed(ctx, name); err != nil {
			return nil, s.toStatus(ctx, err)
		}
	}
	switch req.GetMethod() {
	case pb.Method_METHOD_TOTP:
		account := req.GetTotp().GetAccountName()
		if account == "" {
			account = req.GetUserId()
		}
		if err := checkName("totp.account_name", account, true); err != nil {
			return nil, err
		}
		name := req.GetName()
		if name == "" {
			name = "Authenticator app"
		}
		e, err := s.totp.BeginEnrollment(ctx, req.GetUserId(), name, account)
		if err != nil {
			return nil, s.toStatus(ctx, err)
		}
		return &pb.BeginEnrollmentResponse{
			FactorId:  e.Factor.ID,
			ExpiresAt: timestamppb.New(e.ExpiresAt),
			Details: &pb.BeginEnrollmentResponse_Totp{Totp: &pb.TotpEnrollment{
				Secret: e.Secret, Uri: e.URI, QrPng: e.QRPNG,
				Algorithm: e.Params.Algorithm, Digits: uint32(e.Params.Digits), PeriodSeconds: uint32(e.Params.Period),
			}},
		}, nil
	case pb.Method_METHOD_WEBAUTHN:
		if s.wa != nil {
			return s.beginWebAuthnEnrollment(ctx, req)
		}
	}
	return nil, invalid("method", "%s cannot be enrolled with BeginEnrollment", req.GetMethod())
}

// FinishEnrollment activates a pending factor once proved.
func (s *Server) FinishEnrollment(ctx context.Context, req *pb.FinishEnrollmentRequest) (*pb.FinishEnrollmentResponse, error) {
	if err := checkUserID("user_id", req.GetUserId()); err != nil {
		return nil, err
	}
	if err := checkID("factor_id", req.GetFactorId()); err != nil {
		return nil, err
	}
	f, err := s.store.GetFactor(ctx, req.GetUserId(), req.GetFactorId())
	if errors.Is(err, storage.ErrNotFound) {
		return nil, notFound("factor_id", req.GetFactorId())
	}
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	switch f.Method {
	case totp.Method:
		code := req.GetCode()
		if code == "" {
			return nil, invalid("code", "is required to finish a TOTP enrollment")
		}
		subj := throttle.Subjects{UserID: req.GetUserId()}
		d, err := s.checkThrottle(ctx, nil, subj, totp.Method)
		if err != nil {
			return nil, err
		}
		if d.Blocked {
			return nil, throttledError(d)
		}
		f, err = s.totp.FinishEnrollment(ctx, req.GetUserId(), req.GetFactorId(), code)
		switch {
		case errors.Is(err, totp.ErrMalformed):
			return nil, invalid("code", "%v", err)
		case errors.Is(err, totp.ErrWrongCode):
			s.metrics.verification("totp_enrollment", "rejected")
			if _, err := s.throttleFailure(ctx, nil, subj, totp.Method); err != nil {
				return nil, err
			}
			return nil, status.Error(codes.InvalidArgument, "code: wrong code; check the authenticator app's clock and try the current code")
		case err != nil:
			return nil, s.toStatus(ctx, err)
		}
	case webauthn.Method:
		if f, err = s.finishWebAuthnEnrollment(ctx, req); err != nil {
			return nil, err
		}
	default:
		return nil, status.Errorf(codes.FailedPrecondition, "factor_id: a %s factor cannot be finished this way", f.Method)
	}
	s.audit(ctx, nil, AuditEvent{Event: notify.EventFactorEnrolled, UserID: f.UserID, Method: f.Method, Result: "active",
		Details: map[string]string{"factor_id": f.ID}})
	return &pb.FinishEnrollmentResponse{Factor: factorToPB(f)}, nil
}

// ListFactors lists a user's factors.
func (s *Server) ListFactors(ctx context.Context, req *pb.ListFactorsRequest) (*pb.ListFactorsResponse, error) {
	if err := checkUserID("user_id", req.GetUserId()); err != nil {
		return nil, err
	}
	fs, err := s.store.ListFactors(ctx, req.GetUserId(), "", "")
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	out := &pb.ListFactorsResponse{}
	for i := range fs {
		out.Factors = append(out.Factors, factorToPB(&fs[i]))
	}
	return out, nil
}

// RenameFactor renames a factor.
func (s *Server) RenameFactor(ctx context.Context, req *pb.RenameFactorRequest) (*pb.RenameFactorResponse, error) {
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
	return &pb.RenameFactorResponse{Factor: factorToPB(f)}, nil
}

// RemoveFactor removes a factor.
func (s *Server) RemoveFactor(ctx context.Context, req *pb.RemoveFactorRequest) (*pb.RemoveFactorResponse, error) {
	if err := checkUserID("user_id", req.GetUserId()); err != nil {
		return nil, err
	}
	if err := checkID("factor_id", req.GetFactorId()); err != nil {
		return nil, err
	}
	f, err := s.store.GetFactor(ctx, req.GetUserId(), req.GetFactorId())
	if err == nil {
		err = s.store.DeleteFactor(ctx, req.GetUserId(), req.GetFactorId())
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

// factorToPB maps a stored factor to the wire, without any secret.
func factorToPB(f *storage.Factor) *pb.Factor {
	out := &pb.Factor{
		Id:        f.ID,
		UserId:    f.UserID,
		Method:    methodFromName(f.Method),
		Name:      f.Name,
		State:     pb.FactorState_FACTOR_STATE_ACTIVE,
		CreatedAt: timestamppb.New(f.CreatedAt),
	}
	if f.State == storage.FactorPending {
		out.State = pb.FactorState_FACTOR_STATE_PENDING
	}
	if f.LastUsedAt != nil {
		out.LastUsedAt = timestamppb.New(*f.LastUsedAt)
	}
	if f.Method == totp.Method {
		if p, err := totp.ParseParams(f.Data); err == nil {
			out.Details = &pb.Factor_Totp{Totp: &pb.TotpDetails{Algorithm: p.Algorithm, Digits: uint32(p.Digits), PeriodSeconds: uint32(p.Period)}}
		}
	}
	if d, ok := webauthn.FactorDetails(f); ok {
		out.Details = &pb.Factor_Webauthn{Webauthn: webauthnDetailsToPB(d)}
	}
	return out
}
