package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/twofactor/twofactor/notify"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/server/throttle"
	"github.com/twofactor/twofactor/storage"
)

// throttleSubjects maps the wire subject to what is counted: a user id stands
// for the user's second-factor count and the login count of their app passwords.
func (s *adminService) throttleSubjects(in *pb.ThrottleSubject, field string) ([]throttle.Subject, error) {
	switch v := in.GetSubject().(type) {
	case *pb.ThrottleSubject_UserId:
		if err := checkUserID(field+".user_id", v.UserId); err != nil {
			return nil, err
		}
		return []throttle.Subject{{Kind: throttle.User, Key: v.UserId}, {Kind: throttle.Login, Key: v.UserId}}, nil
	case *pb.ThrottleSubject_Ip:
		sub, err := s.throttle.SubjectOf(throttle.IP, v.Ip)
		if err != nil {
			return nil, invalid(field+".ip", "is not an IP address")
		}
		return []throttle.Subject{sub}, nil
	}
	return nil, invalid(field, "is required: set user_id or ip")
}

// GetThrottleStatus shows the failure count and any delay or lock of a user (the
// worse of its second-factor and app-password counts) or a client network.
func (s *adminService) GetThrottleStatus(ctx context.Context, req *pb.GetThrottleStatusRequest) (*pb.GetThrottleStatusResponse, error) {
	subs, err := s.throttleSubjects(req.GetSubject(), "subject")
	if err != nil {
		return nil, err
	}
	out := &pb.GetThrottleStatusResponse{Key: subs[0].Key}
	var until time.Time
	for _, sub := range subs {
		st, err := s.throttle.Status(ctx, sub)
		if err != nil {
			return nil, s.toStatus(ctx, err)
		}
		out.Failures = max(out.Failures, uint32(st.Failures))
		out.Locked = out.Locked || st.Locked
		if st.BlockedUntil.After(until) {
			until = st.BlockedUntil
		}
	}
	if !until.IsZero() {
		out.BlockedUntil = timestamppb.New(until)
	}
	return out, nil
}

// ClearThrottle forgets the counts and lock of a user or client network. With an
// actor, a user's lock may be cleared by whoever may act on the user, a network's
// only by a full admin; without one, the admin API key alone decides.
func (s *adminService) ClearThrottle(ctx context.Context, req *pb.ClearThrottleRequest) (*pb.ClearThrottleResponse, error) {
	subs, err := s.throttleSubjects(req.GetSubject(), "subject")
	if err != nil {
		return nil, err
	}
	if actor := req.GetActorId(); actor != "" {
		if subs[0].Kind == throttle.IP {
			if err := checkUserID("actor_id", actor); err != nil {
				return nil, err
			}
			admin, err := s.policy.IsAdmin(ctx, actor)
			if err != nil {
				return nil, s.toStatus(ctx, err)
			}
			if !admin {
				return nil, status.Error(codes.PermissionDenied, "actor_id: only a member of an admin group may clear a client network's throttle")
			}
		} else if err := s.authorizeActor(ctx, actor, subs[0].Key); err != nil {
			return nil, err
		}
	}
	cleared := false
	for _, sub := range subs {
		ok, err := s.throttle.Clear(ctx, sub)
		if err != nil {
			return nil, s.toStatus(ctx, err)
		}
		cleared = cleared || ok
	}
	e := AuditEvent{Event: notify.EventThrottleCleared, Actor: req.GetActorId(), Result: "cleared",
		Details: map[string]string{"kind": subs[0].Kind, "key": subs[0].Key, "had_state": strconv.FormatBool(cleared)}}
	if subs[0].Kind != throttle.IP {
		e.UserID = subs[0].Key
	}
	s.audit(ctx, nil, e)
	return &pb.ClearThrottleResponse{}, nil
}

const (
	defaultAuditPage = 50
	maxAuditPage     = 500
)

// auditToken is the opaque page token: where the previous page ended.
type auditToken struct {
	User string `json:"u"`
	Time int64  `json:"t"`
	ID   string `json:"i"`
}

// ListAuditEvents pages through a user's audit trail, newest first. The page token
// is bound to the user it was issued for.
func (s *adminService) ListAuditEvents(ctx context.Context, req *pb.ListAuditEventsRequest) (*pb.ListAuditEventsResponse, error) {
	if err := checkUserID("user_id", req.GetUserId()); err != nil {
		return nil, err
	}
	size := int(req.GetPageSize())
	switch {
	case size == 0:
		size = defaultAuditPage
	case size > maxAuditPage:
		return nil, invalid("page_size", "is above %d", maxAuditPage)
	}
	var after *storage.AuditCursor
	if tok := req.GetPageToken(); tok != "" {
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		var t auditToken
		if err != nil || len(raw) > 1024 || json.Unmarshal(raw, &t) != nil || t.ID == "" {
			return nil, invalid("page_token", "is not a token this service issued")
		}
		if t.User != req.GetUserId() {
			return nil, invalid("page_token", "was issued for another user_id")
		}
		after = &storage.AuditCursor{Time: time.Unix(0, t.Time).UTC(), ID: t.ID}
	}
	// Events are stored by a background writer: wait for this replica's so far.
	if err := s.flushAuditStore(ctx); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	recs, next, err := s.store.ListAuditEvents(ctx, req.GetUserId(), size, after)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	out := &pb.ListAuditEventsResponse{Events: make([]*pb.AuditEvent, 0, len(recs))}
	for i := range recs {
		out.Events = append(out.Events, auditToPB(s.factors, &recs[i]))
	}
	if next != nil {
		raw, _ := json.Marshal(auditToken{User: req.GetUserId(), Time: next.Time.UnixNano(), ID: next.ID})
		out.NextPageToken = base64.RawURLEncoding.EncodeToString(raw)
	}
	return out, nil
}

func auditToPB(reg *Registry, r *storage.AuditRecord) *pb.AuditEvent {
	e := &pb.AuditEvent{
		Id: r.ID, Time: timestamppb.New(r.Time), Event: r.Event, UserId: r.UserID, Actor: r.Actor, Caller: r.Caller,
		Method: reg.wire(r.Method), Result: r.Result, ClientIp: r.ClientIP, UserAgent: r.UserAgent,
		RequestId: r.RequestID, Details: r.Details,
	}
	if e.Method == pb.Method_METHOD_UNSPECIFIED && r.Method != "" {
		// Not a challenge method (e.g. app_password): keep its name.
		if e.Details == nil {
			e.Details = map[string]string{}
		}
		e.Details["method"] = r.Method
	}
	return e
}
