package server

import (
	"context"

	"github.com/google/uuid"

	"github.com/twofactor/twofactor/audit"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
)

// AuditEvent is one security-relevant event: the audit package's one event type
// (the store and NATS carry the same). It never holds a secret.
type AuditEvent = audit.Event

// Auditor records audit events (audit.Trail: to the store's outbox; or
// audit.LogRecorder: to a log). It never fails the RPC.
type Auditor = audit.Recorder

// auditSyncer is an Auditor whose writes can be waited for (audit.Trail.Flush):
// ListAuditEvents waits for this replica's own events to be stored first.
type auditSyncer interface {
	Flush(ctx context.Context) error
}

// flushAuditStore waits until this replica's audit events so far are in the
// store: ListAuditEvents reads its own writes.
func (s *core) flushAuditStore(ctx context.Context) error {
	if f, ok := s.auditor.(auditSyncer); ok {
		return f.Flush(ctx)
	}
	return nil
}

// txAuditor is an Auditor that writes events inside the caller's transaction
// and reports a failure to (audit.Trail.RecordTx).
type txAuditor interface {
	RecordTx(ctx context.Context, events ...AuditEvent) error
}

// audit fills the fields every event shares and records it.
func (s *core) audit(ctx context.Context, client *pb.ClientContext, e AuditEvent) {
	s.fillAudit(ctx, client, &e)
	s.auditor.Record(ctx, e)
}

// auditTx records events inside ctx's transaction (see challenge.Record): an
// error rolls back the action they record.
func (s *core) auditTx(ctx context.Context, client *pb.ClientContext, events ...AuditEvent) error {
	for i := range events {
		s.fillAudit(ctx, client, &events[i])
	}
	if t, ok := s.auditor.(txAuditor); ok {
		return t.RecordTx(ctx, events...)
	}
	for _, e := range events {
		s.auditor.Record(ctx, e)
	}
	return nil
}

// fillAudit fills the fields every event shares.
func (s *core) fillAudit(ctx context.Context, client *pb.ClientContext, e *AuditEvent) {
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
}
