package server

import (
	"context"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/twofactor/twofactor/notify"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/admincodes"
	"github.com/twofactor/twofactor/providers/backupcodes"
	"github.com/twofactor/twofactor/providers/policy"
	"github.com/twofactor/twofactor/storage"
)

// recovery holds the providers of recovery and administration: backup codes,
// admin codes, and the policy (who must use 2FA, who may act on whom).
type recovery struct {
	backupCodes *backupcodes.Provider
	adminCodes  *admincodes.Provider
	policy      *policy.Provider
}

// initRecovery wires the recovery providers (building defaults for those Deps
// leave nil) and registers their challenge methods.
func (s *Server) initRecovery(d Deps) error {
	s.backupCodes, s.adminCodes, s.policy = d.BackupCodes, d.AdminCodes, d.Policy
	if s.backupCodes == nil {
		s.backupCodes = backupcodes.New(d.Store, d.Keys, backupcodes.Options{Clock: s.now})
	}
	if s.adminCodes == nil {
		s.adminCodes = admincodes.New(d.Store, d.Keys, admincodes.Options{Clock: s.now})
	}
	if s.policy == nil {
		p, err := policy.New(d.Store, policy.Options{Clock: s.now})
		if err != nil {
			return err
		}
		s.policy = p
	}
	s.methods[pb.Method_METHOD_BACKUP_CODE] = backupCodeMethod{s}
	s.methods[pb.Method_METHOD_ADMIN_CODE] = adminCodeMethod{s}
	return nil
}

// requireAllowed refuses a method the policy does not allow.
func (s *Server) requireAllowed(ctx context.Context, method string) error {
	pol, err := s.policy.Get(ctx)
	if err != nil {
		return err
	}
	if !pol.Allows(method) {
		return status.Errorf(codes.FailedPrecondition, "method: %s is not allowed by policy", method)
	}
	return nil
}

// IssueBackupCodes replaces the user's backup codes with a new set, shown once.
func (s *Server) IssueBackupCodes(ctx context.Context, req *pb.IssueBackupCodesRequest) (*pb.IssueBackupCodesResponse, error) {
	if err := checkUserID("user_id", req.GetUserId()); err != nil {
		return nil, err
	}
	if err := s.requireAllowed(ctx, backupcodes.Method); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	issued, err := s.backupCodes.Issue(ctx, req.GetUserId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	s.audit(ctx, nil, AuditEvent{Event: notify.EventBackupCodesIssued, UserID: req.GetUserId(), Method: backupcodes.Method,
		Details: map[string]string{"count": strconv.Itoa(len(issued.Codes))}})
	return &pb.IssueBackupCodesResponse{Codes: issued.Codes, CreatedAt: timestamppb.New(issued.CreatedAt)}, nil
}

// GetBackupCodesStatus tells how many of the user's backup codes are left.
func (s *Server) GetBackupCodesStatus(ctx context.Context, req *pb.GetBackupCodesStatusRequest) (*pb.GetBackupCodesStatusResponse, error) {
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
func (s *Server) GetLoginRequirements(ctx context.Context, req *pb.GetLoginRequirementsRequest) (*pb.GetLoginRequirementsResponse, error) {
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
		AvailableMethods:     methodsToPB(r.Available),
		MustEnroll:           r.MustEnroll,
		InGrace:              r.InGrace,
		AllowedMethods:       methodsToPB(r.Allowed),
	}
	if !r.GraceUntil.IsZero() {
		out.GraceUntil = timestamppb.New(r.GraceUntil)
	}
	return out, nil
}

// usableMethods lists the methods the user could pass now: those of active
// factors, backup codes with some left, an unused unexpired admin code.
func (s *Server) usableMethods(ctx context.Context, userID string) ([]string, error) {
	factors, err := s.store.ListFactors(ctx, userID, "", storage.FactorActive)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range factors {
		out = append(out, f.Method)
	}
	if ok, err := s.backupCodes.Usable(ctx, userID); err != nil {
		return nil, err
	} else if ok {
		out = append(out, backupcodes.Method)
	}
	st, err := s.adminCodes.State(ctx, userID)
	if err != nil {
		return nil, err
	}
	if st.Usable {
		out = append(out, admincodes.Method)
	}
	return out, nil
}

func methodsToPB(names []string) []pb.Method {
	out := make([]pb.Method, 0, len(names))
	for _, n := range names {
		if m := methodFromName(n); m != pb.Method_METHOD_UNSPECIFIED {
			out = append(out, m)
		}
	}
	return out
}
