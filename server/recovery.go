package server

import (
	"context"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/twofactor/twofactor/notify"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/backupcodes"
	"github.com/twofactor/twofactor/storage"
)

// requireAllowed refuses a method the policy does not allow.
func (s *core) requireAllowed(ctx context.Context, method string) error {
	ok, err := s.policy.Allows(ctx, method)
	if err != nil {
		return err
	}
	if !ok {
		return status.Errorf(codes.FailedPrecondition, "method: %s is not allowed by policy", method)
	}
	return nil
}

// IssueBackupCodes replaces the user's backup codes with a new set, shown once.
func (s *enrollmentService) IssueBackupCodes(ctx context.Context, req *pb.IssueBackupCodesRequest) (*pb.IssueBackupCodesResponse, error) {
	if err := checkUserID("user_id", req.GetUserId()); err != nil {
		return nil, err
	}
	if err := s.requireAllowed(ctx, backupcodes.Method); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	var issued backupcodes.Issued
	err := s.changingCredentials(ctx, req.GetUserId(), notify.EventBackupCodesIssued, "", func(ctx context.Context) (err error) {
		issued, err = s.backupCodes.Issue(ctx, req.GetUserId())
		return err
	})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	s.audit(ctx, nil, AuditEvent{Event: notify.EventBackupCodesIssued, UserID: req.GetUserId(), Method: backupcodes.Method,
		Details: map[string]string{"count": strconv.Itoa(len(issued.Codes))}})
	return &pb.IssueBackupCodesResponse{Codes: issued.Codes, CreatedAt: timestamppb.New(issued.CreatedAt)}, nil
}

// GetBackupCodesStatus tells how many of the user's backup codes are left.
func (s *enrollmentService) GetBackupCodesStatus(ctx context.Context, req *pb.GetBackupCodesStatusRequest) (*pb.GetBackupCodesStatusResponse, error) {
	if err := checkUserID("user_id", req.GetUserId()); err != nil {
		return nil, err
	}
	st, err := s.backupCodes.Status(ctx, req.GetUserId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	out := &pb.GetBackupCodesStatusResponse{Enabled: st.Enabled, Total: uint32(st.Total), Remaining: uint32(st.Remaining)}
	if st.Enabled {
		out.CreatedAt = timestamppb.New(st.CreatedAt)
	}
	return out, nil
}

// GetLoginRequirements tells the backend what a login of the user needs.
func (s *challengeService) GetLoginRequirements(ctx context.Context, req *pb.GetLoginRequirementsRequest) (*pb.GetLoginRequirementsResponse, error) {
	if err := checkUserID("user_id", req.GetUserId()); err != nil {
		return nil, err
	}
	enrolled, err := s.usableMethods(ctx, req.GetUserId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	r, err := s.policy.Requirements(ctx, req.GetUserId(), enrolled)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	out := &pb.GetLoginRequirementsResponse{
		SecondFactorRequired: r.Required,
		AvailableMethods:     s.factors.methodsToPB(r.Available),
		MustEnroll:           r.MustEnroll,
		InGrace:              r.InGrace,
		AllowedMethods:       s.factors.methodsToPB(r.Allowed),
	}
	if !r.GraceUntil.IsZero() {
		out.GraceUntil = timestamppb.New(r.GraceUntil)
	}
	return out, nil
}

// usableMethods lists the methods the user could pass now: those of active
// factors, and the recovery methods that say they are usable (backup codes with
// some left, an unused unexpired admin code).
func (s *challengeService) usableMethods(ctx context.Context, userID string) ([]string, error) {
	factors, err := s.store.ListFactors(ctx, userID, "", storage.FactorActive)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range factors {
		out = append(out, f.Method)
	}
	for _, f := range s.factors.order {
		if f.Usable == nil {
			continue
		}
		if ok, err := f.Usable(ctx, userID); err != nil {
			return nil, err
		} else if ok {
			out = append(out, f.Name)
		}
	}
	return out, nil
}
