package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/twofactor/twofactor/notify"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/admincodes"
	"github.com/twofactor/twofactor/providers/policy"
	"github.com/twofactor/twofactor/storage"
)

// maxListLen bounds the groups or admins one sync call may name.
const maxListLen = 1000

// authorizeActor checks that actorID may act on userID: a member of an admin
// group, or a group admin of one of the user's groups (policy.CanAct).
func (s *adminService) authorizeActor(ctx context.Context, actorID, userID string) error {
	if err := checkUserID("actor_id", actorID); err != nil {
		return err
	}
	if err := checkUserID("user_id", userID); err != nil {
		return err
	}
	ok, err := s.policy.CanAct(ctx, actorID, userID)
	if err != nil {
		return s.toStatus(ctx, err)
	}
	if !ok {
		return status.Error(codes.PermissionDenied, "actor_id: the actor may not act on this user (neither an admin nor an admin of one of the user's groups)")
	}
	return nil
}

// IssueAdminBackupCode issues a one-time code for a locked-out user.
func (s *adminService) IssueAdminBackupCode(ctx context.Context, req *pb.IssueAdminBackupCodeRequest) (*pb.IssueAdminBackupCodeResponse, error) {
	if err := s.authorizeActor(ctx, req.GetActorId(), req.GetUserId()); err != nil {
		return nil, err
	}
	ttl := req.GetTtl().AsDuration()
	if req.GetTtl() != nil {
		if err := req.GetTtl().CheckValid(); err != nil || ttl <= 0 {
			return nil, invalid("ttl", "must be a positive duration")
		}
	}
	if err := s.requireAllowed(ctx, admincodes.Method); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	var issued admincodes.Issued
	err := s.changingCredentials(ctx, req.GetUserId(), notify.EventAdminCodeIssued, req.GetActorId(), func(ctx context.Context) (err error) {
		issued, err = s.adminCodes.Issue(ctx, req.GetActorId(), req.GetUserId(), ttl)
		return err
	})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	s.audit(ctx, nil, AuditEvent{Event: notify.EventAdminCodeIssued, UserID: req.GetUserId(), Actor: req.GetActorId(), Method: admincodes.Method,
		Details: map[string]string{"expires_at": issued.ExpiresAt.UTC().Format("2006-01-02T15:04:05Z")}})
	return &pb.IssueAdminBackupCodeResponse{Code: issued.Code, ExpiresAt: timestamppb.New(issued.ExpiresAt)}, nil
}

// ResetFactors removes one or all second factors of a user.
func (s *adminService) ResetFactors(ctx context.Context, req *pb.ResetFactorsRequest) (*pb.ResetFactorsResponse, error) {
	if err := s.authorizeActor(ctx, req.GetActorId(), req.GetUserId()); err != nil {
		return nil, err
	}
	if req.GetFactorId() != "" {
		if err := checkID("factor_id", req.GetFactorId()); err != nil {
			return nil, err
		}
	}
	var n int
	err := s.changingCredentials(ctx, req.GetUserId(), notify.EventAdminReset, req.GetActorId(), func(ctx context.Context) (err error) {
		n, err = s.store.ResetFactors(ctx, req.GetUserId(), req.GetFactorId())
		return err
	})
	if errors.Is(err, storage.ErrNotFound) {
		return nil, notFound("factor_id", req.GetFactorId())
	}
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	details := map[string]string{"removed": strconv.Itoa(n)}
	if req.GetFactorId() != "" {
		details["factor_id"] = req.GetFactorId()
	}
	s.audit(ctx, nil, AuditEvent{Event: notify.EventAdminReset, UserID: req.GetUserId(), Actor: req.GetActorId(), Details: details})
	return &pb.ResetFactorsResponse{Removed: uint32(n)}, nil
}

// GetPolicy returns the policy in force.
func (s *adminService) GetPolicy(ctx context.Context, _ *pb.GetPolicyRequest) (*pb.GetPolicyResponse, error) {
	p, err := s.policy.Get(ctx)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &pb.GetPolicyResponse{Policy: policyToPB(s.factors, p)}, nil
}

// SetPolicy replaces the policy. Only a member of an admin group may.
func (s *adminService) SetPolicy(ctx context.Context, req *pb.SetPolicyRequest) (*pb.SetPolicyResponse, error) {
	if err := checkUserID("actor_id", req.GetActorId()); err != nil {
		return nil, err
	}
	if req.GetPolicy() == nil {
		return nil, invalid("policy", "is required")
	}
	p, err := policyFromPB(s.factors, req.GetPolicy())
	if err != nil {
		return nil, err
	}
	admin, err := s.policy.IsAdmin(ctx, req.GetActorId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	if !admin {
		return nil, status.Error(codes.PermissionDenied, "actor_id: only a member of an admin group may change the policy")
	}
	p, err = s.policy.Set(ctx, req.GetActorId(), p)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	s.audit(ctx, nil, AuditEvent{Event: notify.EventPolicyChanged, Actor: req.GetActorId(), Details: policyDetails(p)})
	return &pb.SetPolicyResponse{Policy: policyToPB(s.factors, p)}, nil
}

// SetUserGroups replaces the groups a user belongs to.
func (s *adminService) SetUserGroups(ctx context.Context, req *pb.SetUserGroupsRequest) (*pb.SetUserGroupsResponse, error) {
	if err := checkUserID("user_id", req.GetUserId()); err != nil {
		return nil, err
	}
	if err := checkGroups("groups", req.GetGroups()); err != nil {
		return nil, err
	}
	if err := s.store.SetUserGroups(ctx, req.GetUserId(), req.GetGroups()); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	s.audit(ctx, nil, AuditEvent{Event: notify.EventUserGroupsSet, UserID: req.GetUserId(),
		Details: map[string]string{"groups": strings.Join(req.GetGroups(), ",")}})
	return &pb.SetUserGroupsResponse{}, nil
}

// SetGroupAdmins replaces the admins of a group.
func (s *adminService) SetGroupAdmins(ctx context.Context, req *pb.SetGroupAdminsRequest) (*pb.SetGroupAdminsResponse, error) {
	if err := checkGroup("group", req.GetGroup()); err != nil {
		return nil, err
	}
	if len(req.GetAdminUserIds()) > maxListLen {
		return nil, invalid("admin_user_ids", "has more than %d entries", maxListLen)
	}
	for i, id := range req.GetAdminUserIds() {
		if err := checkUserID(fmt.Sprintf("admin_user_ids[%d]", i), id); err != nil {
			return nil, err
		}
	}
	if err := s.store.SetGroupAdmins(ctx, req.GetGroup(), req.GetAdminUserIds()); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	s.audit(ctx, nil, AuditEvent{Event: notify.EventGroupAdminsSet,
		Details: map[string]string{"group": req.GetGroup(), "admins": strings.Join(req.GetAdminUserIds(), ",")}})
	return &pb.SetGroupAdminsResponse{}, nil
}

// DeleteUser removes everything stored about a user.
func (s *adminService) DeleteUser(ctx context.Context, req *pb.DeleteUserRequest) (*pb.DeleteUserResponse, error) {
	if err := s.authorizeActor(ctx, req.GetActorId(), req.GetUserId()); err != nil {
		return nil, err
	}
	apps, err := s.store.ListAppPasswords(ctx, req.GetUserId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	removed, err := s.store.DeleteUser(ctx, req.GetUserId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	if s.apppw != nil && len(apps) > 0 {
		ids := make([]string, len(apps))
		for i := range apps {
			ids[i] = apps[i].ID
		}
		// The rows are gone; make every replica's cache forget them too.
		if err := s.apppw.Revoked(ctx, ids...); err != nil {
			s.log.WarnContext(ctx, "announce revoked app passwords", "user_id", req.GetUserId(), "error", err.Error())
		}
	}
	details := map[string]string{}
	for table, n := range removed {
		if n > 0 {
			details["removed."+table] = strconv.FormatInt(n, 10)
		}
	}
	s.audit(ctx, nil, AuditEvent{Event: notify.EventUserDeleted, UserID: req.GetUserId(), Actor: req.GetActorId(), Details: details})
	return &pb.DeleteUserResponse{}, nil
}

// checkGroup validates a group name: 1 to 255 bytes of printable UTF-8 (no C0
// or C1 control character, as checkUserID).
func checkGroup(field, g string) error {
	switch {
	case g == "":
		return invalid(field, "is empty")
	case len(g) > 255:
		return invalid(field, "is longer than 255 bytes")
	case !utf8.ValidString(g):
		return invalid(field, "is not valid UTF-8")
	}
	if strings.IndexFunc(g, unicode.IsControl) >= 0 {
		return invalid(field, "contains control characters")
	}
	return nil
}

func checkGroups(field string, groups []string) error {
	if len(groups) > maxListLen {
		return invalid(field, "has more than %d entries", maxListLen)
	}
	for i, g := range groups {
		if err := checkGroup(fmt.Sprintf("%s[%d]", field, i), g); err != nil {
			return err
		}
	}
	return nil
}

// policyFromPB maps the wire policy to the provider's, naming the bad field.
func policyFromPB(r *Registry, in *pb.Policy) (policy.Policy, error) {
	p := policy.Policy{
		Enforced:                        in.GetEnforced(),
		EnforcedGroups:                  in.GetEnforcedGroups(),
		ExcludedGroups:                  in.GetExcludedGroups(),
		PasskeyCompleteLogin:            in.GetPasskeyCompleteLogin(),
		WebAuthnRequireUserVerification: in.GetWebauthnRequireUserVerification(),
		RememberDevice:                  in.GetRememberDevice(),
		RememberDeviceGroups:            in.GetRememberDeviceGroups(),
		RememberDeviceDeniedGroups:      in.GetRememberDeviceDeniedGroups(),
	}
	for i, m := range in.GetAllowedMethods() {
		name := r.name(m)
		if name == "" {
			return policy.Policy{}, invalid(fmt.Sprintf("policy.allowed_methods[%d]", i), "%s is not a method", m)
		}
		p.AllowedMethods = append(p.AllowedMethods, name)
	}
	if err := checkGroups("policy.enforced_groups", p.EnforcedGroups); err != nil {
		return policy.Policy{}, err
	}
	if err := checkGroups("policy.excluded_groups", p.ExcludedGroups); err != nil {
		return policy.Policy{}, err
	}
	rules, err := groupRulesFromPB(r, in.GetGroupRules())
	if err != nil {
		return policy.Policy{}, err
	}
	p.GroupRules = rules
	if g := in.GetGracePeriod(); g != nil {
		if err := g.CheckValid(); err != nil {
			return policy.Policy{}, invalid("policy.grace_period", "is not a valid duration")
		}
		p.GracePeriod = g.AsDuration()
	}
	return rememberPolicyFromPB(in, p)
}

func policyToPB(r *Registry, p policy.Policy) *pb.Policy {
	out := &pb.Policy{
		AllowedMethods:                  r.methodsToPB(p.AllowedMethods),
		Enforced:                        p.Enforced,
		EnforcedGroups:                  p.EnforcedGroups,
		ExcludedGroups:                  p.ExcludedGroups,
		PasskeyCompleteLogin:            p.PasskeyCompleteLogin,
		WebauthnRequireUserVerification: p.WebAuthnRequireUserVerification,
		GroupRules:                      groupRulesToPB(r, p.GroupRules),
	}
	if p.GracePeriod > 0 {
		out.GracePeriod = durationpb.New(p.GracePeriod)
	}
	out.RememberDevice, out.RememberDeviceGroups, out.RememberDeviceDeniedGroups = p.RememberDevice, p.RememberDeviceGroups, p.RememberDeviceDeniedGroups
	if p.RememberDeviceMaxAge > 0 {
		out.RememberDeviceMaxAge = durationpb.New(p.RememberDeviceMaxAge)
	}
	return out
}

// policyDetails summarises a policy for the audit trail.
func policyDetails(p policy.Policy) map[string]string {
	return map[string]string{
		"allowed_methods":               strings.Join(p.AllowedMethods, ","),
		"enforced":                      strconv.FormatBool(p.Enforced),
		"enforced_groups":               strings.Join(p.EnforcedGroups, ","),
		"excluded_groups":               strings.Join(p.ExcludedGroups, ","),
		"grace_period":                  p.GracePeriod.String(),
		"remember_device":               strconv.FormatBool(p.RememberDevice),
		"remember_device_groups":        strings.Join(p.RememberDeviceGroups, ","),
		"remember_device_denied_groups": strings.Join(p.RememberDeviceDeniedGroups, ","),
		"remember_device_max_age":       p.RememberDeviceMaxAge.String(),
	}
}

// rememberPolicyFromPB checks and maps the remembered-device part of a policy.
func rememberPolicyFromPB(in *pb.Policy, p policy.Policy) (policy.Policy, error) {
	if err := checkGroups("policy.remember_device_groups", p.RememberDeviceGroups); err != nil {
		return policy.Policy{}, err
	}
	if err := checkGroups("policy.remember_device_denied_groups", p.RememberDeviceDeniedGroups); err != nil {
		return policy.Policy{}, err
	}
	if a := in.GetRememberDeviceMaxAge(); a != nil {
		if err := a.CheckValid(); err != nil {
			return policy.Policy{}, invalid("policy.remember_device_max_age", "is not a valid duration")
		}
		p.RememberDeviceMaxAge = a.AsDuration()
	}
	return p, nil
}
