package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/twofactor/twofactor/notify"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/storage"
)

// AuditEvent is one security-relevant event. It never holds a secret. Event is one
// of notify's Event* names; the fields are those of notify.AuditEvent (schema v1).
type AuditEvent struct {
	ID        string // filled by the server: one id in the store and on NATS
	Time      time.Time
	Event     string // e.g. notify.EventChallengeAccepted
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
		slog.String("event", e.Event), slog.String("id", e.ID), slog.String("user", e.UserID), slog.String("caller", e.Caller),
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

// TrailAuditor keeps the audit trail: every event is written to the store (where
// ListAuditEvents reads it) and published on NATS as <prefix>.audit.<event> (where
// SIEMs and `authctl audit tail` follow it), and logged. The event id is the row's
// primary key and the JetStream message id, so a retried publish is stored once.
//
// A failure to store or publish never fails the RPC whose event it is (the action
// has happened): it is logged and counted in twofactor_audit_failures_total.
// Events are published synchronously, so the events of one login arrive in order.
type TrailAuditor struct {
	Store   *storage.Store
	Events  *notify.Publisher // nil: store and log only
	Log     *slog.Logger
	Metrics *Metrics
	// PublishTimeout bounds a publish (default 2 s), so that an unreachable NATS
	// slows RPCs by at most this much.
	PublishTimeout time.Duration
}

// Record stores, publishes and logs e.
func (a *TrailAuditor) Record(ctx context.Context, e AuditEvent) {
	ctx = context.WithoutCancel(ctx) // the event outlives a caller that hung up
	if a.Log != nil {
		LogAuditor{Log: a.Log}.Record(ctx, e)
	}
	if a.Store != nil {
		if err := a.Store.AddAuditEvent(ctx, &storage.AuditRecord{
			ID: e.ID, Time: e.Time, Event: e.Event, UserID: e.UserID, Actor: e.Actor, Caller: e.Caller,
			Method: e.Method, Result: e.Result, ClientIP: e.ClientIP, UserAgent: e.UserAgent,
			RequestID: e.RequestID, Details: e.Details,
		}); err != nil {
			a.failed(ctx, "store", e, err)
		}
	}
	if a.Events != nil {
		timeout := a.PublishTimeout
		if timeout <= 0 {
			timeout = 2 * time.Second
		}
		pctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if err := a.Events.PublishAudit(pctx, notify.AuditEvent{
			ID: e.ID, Time: e.Time, Event: e.Event, UserID: e.UserID, Actor: e.Actor, Caller: e.Caller,
			Method: e.Method, Result: e.Result, ClientIP: e.ClientIP, UserAgent: e.UserAgent,
			RequestID: e.RequestID, Details: e.Details,
		}); err != nil {
			a.failed(ctx, "nats", e, err)
		}
	}
}

func (a *TrailAuditor) failed(ctx context.Context, sink string, e AuditEvent, err error) {
	if a.Metrics != nil {
		a.Metrics.auditFailures.WithLabelValues(sink).Inc()
	}
	if a.Log != nil {
		a.Log.ErrorContext(ctx, "audit event not written", "sink", sink, "event", e.Event, "id", e.ID,
			"request_id", e.RequestID, "error", err.Error())
	}
}

// audit fills the fields every event shares and records it.
func (s *Server) audit(ctx context.Context, client *pb.ClientContext, e AuditEvent) {
	// A version 7 UUID grows with time, so events of one instant (and of one
	// injected clock) still list in the order they happened.
	id, err := uuid.NewV7()
	if err != nil {
		id = uuid.New()
	}
	e.ID = id.String()
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
