package server

import (
	"context"
	"errors"
	"strconv"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/twofactor/twofactor/notify"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/apppasswords"
	"github.com/twofactor/twofactor/server/throttle"
	"github.com/twofactor/twofactor/storage"
)

// maxAppPasswordInput bounds the password field: an app password is 38
// characters, a typed one with separators a few more; anything longer is refused
// before it is hashed or parsed.
const maxAppPasswordInput = 1024

// IssueAppPassword creates an app password and returns it this once.
func (s *appPasswordService) IssueAppPassword(ctx context.Context, req *pb.IssueAppPasswordRequest) (*pb.IssueAppPasswordResponse, error) {
	if err := checkUserID("user_id", req.GetUserId()); err != nil {
		return nil, err
	}
	if err := checkName("name", req.GetName(), true); err != nil {
		return nil, err
	}
	scope := scopeFromPB(req.GetScope())
	p, password, err := s.apppw.Issue(ctx, req.GetUserId(), req.GetName(), scope)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	s.audit(ctx, nil, AuditEvent{Event: notify.EventAppPasswordIssued, UserID: p.UserID, Method: "app_password", Result: "issued",
		Details: map[string]string{"app_password_id": p.ID, "read_only": strconv.FormatBool(scope.ReadOnly), "filesystem_only": strconv.FormatBool(scope.FilesystemOnly)}})
	return &pb.IssueAppPasswordResponse{AppPassword: appPasswordToPB(p), Password: password}, nil
}

// VerifyAppPassword checks a login and app password. A wrong, malformed or
// revoked password, or one of another user, is valid=false, not an error; each
// such answer is audited with its reason, which is what throttling per login and
// per client IP counts. Successes are not audited: a sync client verifies on
// every request (last use is on the app password instead).
func (s *appPasswordService) VerifyAppPassword(ctx context.Context, req *pb.VerifyAppPasswordRequest) (*pb.VerifyAppPasswordResponse, error) {
	if err := checkUserID("login", req.GetLogin()); err != nil {
		return nil, err
	}
	switch pw := req.GetPassword(); {
	case pw == "":
		return nil, invalid("password", "is required")
	case len(pw) > maxAppPasswordInput:
		return nil, invalid("password", "is longer than %d bytes", maxAppPasswordInput)
	}
	if err := checkIP("context.ip", req.GetContext().GetIp()); err != nil {
		return nil, err
	}
	subj := throttle.Subjects{Login: req.GetLogin(), IP: req.GetContext().GetIp()}
	d, err := s.checkThrottle(ctx, req.GetContext(), subj, "app_password")
	if err != nil {
		return nil, err
	}
	if d.Blocked {
		s.metrics.verification("app_password", "throttled")
		return &pb.VerifyAppPasswordResponse{Throttled: true, RetryAfter: retryAfter(d.RetryAfter)}, nil
	}
	res, err := s.apppw.Verify(ctx, req.GetLogin(), req.GetPassword(), req.GetContext().GetIp())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	if !res.Valid {
		s.metrics.verification("app_password", "rejected")
		s.audit(ctx, req.GetContext(), AuditEvent{Event: notify.EventAppPasswordRejected, UserID: req.GetLogin(), Method: "app_password",
			Result: string(res.Reason)})
		// Something that is not an app password at all (often the account password
		// typed by mistake) cannot be a guess at one, so it is not counted.
		if res.Reason != apppasswords.ReasonMalformed {
			if _, err := s.throttleFailure(ctx, req.GetContext(), subj, "app_password"); err != nil {
				return nil, err
			}
		}
		return &pb.VerifyAppPasswordResponse{}, nil
	}
	s.metrics.verification("app_password", "accepted")
	if d.HasCount(throttle.Login) {
		s.throttleSuccess(ctx, throttle.Subjects{Login: req.GetLogin()})
	}
	return &pb.VerifyAppPasswordResponse{
		Valid:         true,
		UserId:        res.UserID,
		AppPasswordId: res.ID,
		Scope:         scopeToPB(res.Scope),
	}, nil
}

// ListAppPasswords lists a user's app passwords (never the passwords).
func (s *appPasswordService) ListAppPasswords(ctx context.Context, req *pb.ListAppPasswordsRequest) (*pb.ListAppPasswordsResponse, error) {
	if err := checkUserID("user_id", req.GetUserId()); err != nil {
		return nil, err
	}
	ps, err := s.apppw.List(ctx, req.GetUserId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	out := &pb.ListAppPasswordsResponse{AppPasswords: make([]*pb.AppPassword, 0, len(ps))}
	for _, p := range ps {
		out.AppPasswords = append(out.AppPasswords, appPasswordToPB(p))
	}
	return out, nil
}

// RenameAppPassword renames one of a user's app passwords.
func (s *appPasswordService) RenameAppPassword(ctx context.Context, req *pb.RenameAppPasswordRequest) (*pb.RenameAppPasswordResponse, error) {
	if err := checkUserID("user_id", req.GetUserId()); err != nil {
		return nil, err
	}
	if err := checkID("app_password_id", req.GetAppPasswordId()); err != nil {
		return nil, err
	}
	if err := checkName("name", req.GetName(), true); err != nil {
		return nil, err
	}
	p, err := s.apppw.Rename(ctx, req.GetUserId(), req.GetAppPasswordId(), req.GetName())
	if errors.Is(err, storage.ErrNotFound) {
		return nil, notFound("app_password_id", req.GetAppPasswordId())
	}
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &pb.RenameAppPasswordResponse{AppPassword: appPasswordToPB(p)}, nil
}

// RevokeAppPassword deletes one of a user's app passwords; every replica stops
// accepting it as soon as the revocation's announcement reaches it.
func (s *appPasswordService) RevokeAppPassword(ctx context.Context, req *pb.RevokeAppPasswordRequest) (*pb.RevokeAppPasswordResponse, error) {
	if err := checkUserID("user_id", req.GetUserId()); err != nil {
		return nil, err
	}
	if err := checkID("app_password_id", req.GetAppPasswordId()); err != nil {
		return nil, err
	}
	err := s.apppw.Revoke(ctx, req.GetUserId(), req.GetAppPasswordId())
	if errors.Is(err, storage.ErrNotFound) {
		return nil, notFound("app_password_id", req.GetAppPasswordId())
	}
	announced, err := s.revoked(ctx, err)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	s.audit(ctx, nil, AuditEvent{Event: notify.EventAppPasswordRevoked, UserID: req.GetUserId(), Method: "app_password", Result: "revoked",
		Details: map[string]string{"app_password_id": req.GetAppPasswordId(), "announced": strconv.FormatBool(announced)}})
	return &pb.RevokeAppPasswordResponse{}, nil
}

// RevokeAllAppPasswords deletes every app password of a user.
func (s *appPasswordService) RevokeAllAppPasswords(ctx context.Context, req *pb.RevokeAllAppPasswordsRequest) (*pb.RevokeAllAppPasswordsResponse, error) {
	if err := checkUserID("user_id", req.GetUserId()); err != nil {
		return nil, err
	}
	n, err := s.apppw.RevokeAll(ctx, req.GetUserId())
	announced, err := s.revoked(ctx, err)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	s.audit(ctx, nil, AuditEvent{Event: notify.EventAppPasswordRevoked, UserID: req.GetUserId(), Method: "app_password", Result: "revoked",
		Details: map[string]string{"count": strconv.Itoa(n), "announced": strconv.FormatBool(announced)}})
	return &pb.RevokeAllAppPasswordsResponse{Revoked: uint32(n)}, nil
}

// revoked sorts out a revocation's error: when only the announcement to other
// replicas failed, the passwords are gone from the database and this replica, so
// the RPC succeeds; the failure is logged (other replicas' caches may accept them
// until their entries expire) and the audit record says announced=false.
func (s *appPasswordService) revoked(ctx context.Context, err error) (announced bool, _ error) {
	if err == nil {
		return true, nil
	}
	if errors.Is(err, apppasswords.ErrNotAnnounced) {
		s.log.WarnContext(ctx, "app password revoked but not announced", "request_id", requestIDFrom(ctx), "error", err.Error())
		return false, nil
	}
	return false, err
}

func scopeFromPB(sc *pb.AppPasswordScope) apppasswords.Scope {
	return apppasswords.Scope{ReadOnly: sc.GetReadOnly(), FilesystemOnly: sc.GetFilesystemOnly()}
}

func scopeToPB(sc apppasswords.Scope) *pb.AppPasswordScope {
	return &pb.AppPasswordScope{ReadOnly: sc.ReadOnly, FilesystemOnly: sc.FilesystemOnly}
}

// appPasswordToPB maps an app password's description to the wire.
func appPasswordToPB(p apppasswords.AppPassword) *pb.AppPassword {
	out := &pb.AppPassword{
		Id:           p.ID,
		UserId:       p.UserID,
		Name:         p.Name,
		Scope:        scopeToPB(p.Scope),
		CreatedAt:    timestamppb.New(p.CreatedAt),
		LastClientIp: p.LastClientIP,
	}
	if !p.LastUsedAt.IsZero() {
		out.LastUsedAt = timestamppb.New(p.LastUsedAt)
	}
	return out
}
