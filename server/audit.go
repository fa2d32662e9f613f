package server

import (
	"context"
	"log/slog"
	"time"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
)

// AuditEvent is one security-relevant event. It never holds a secret.
type AuditEvent struct {
	Time      time.Time
	Event     string // e.g. "challenge.accepted"
	UserID    string
	Actor     string // the human admin acting, if any
	Caller    string // the API key that called
	Method    string
	Result    string
	ClientIP  string
	UserAgent string
	RequestID string
	Details   map[string]string
}

// Auditor records audit events (to the store and NATS, or a log).
type Auditor interface {
	Record(ctx context.Context, e AuditEvent)
}

// LogAuditor writes audit events as structured log lines.
type LogAuditor struct{ Log *slog.Logger }

// Record logs e.
func (a LogAuditor) Record(ctx context.Context, e AuditEvent) {
	attrs := []slog.Attr{
		slog.String("event", e.Event), slog.String("user", e.UserID), slog.String("caller", e.Caller),
		slog.String("method", e.Method), slog.String("result", e.Result), slog.String("client_ip", e.ClientIP),
		slog.String("request_id", e.RequestID),
	}
	if e.Actor != "" {
		attrs = append(attrs, slog.String("actor", e.Actor))
	}
	for k, v := range e.Details {
		attrs = append(attrs, slog.String("detail."+k, v))
	}
	a.Log.LogAttrs(ctx, slog.LevelInfo, "audit", attrs...)
}

// audit fills the fields every event shares and records it.
func (s *Server) audit(ctx context.Context, client *pb.ClientContext, e AuditEvent) {
	e.Time = s.now().UTC()
	e.Caller = callerID(ctx)
	e.RequestID = requestIDFrom(ctx)
	if client != nil {
		e.ClientIP, e.UserAgent = client.GetIp(), client.GetUserAgent()
	}
	s.auditor.Record(ctx, e)
}

// methodName is the storage and audit name of a method.
func methodName(m pb.Method) string {
	switch m {
	case pb.Method_METHOD_TOTP:
		return "totp"
	case pb.Method_METHOD_WEBAUTHN:
		return "webauthn"
	case pb.Method_METHOD_BACKUP_CODE:
		return "backup_code"
	case pb.Method_METHOD_ADMIN_CODE:
		return "admin_code"
	}
	return ""
}

func methodFromName(name string) pb.Method {
	for m := range pb.Method_name {
		if methodName(pb.Method(m)) == name {
			return pb.Method(m)
		}
	}
	return pb.Method_METHOD_UNSPECIFIED
}
