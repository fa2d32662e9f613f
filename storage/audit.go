package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// AuditRecord is one security-relevant event as the audit trail keeps it. It never
// holds a secret.
//
// The audit_events table is also the outbox of the audit stream on NATS: a row is
// written Pending, and the audit relay (package audit) publishes pending rows to
// JetStream and then clears the flag (PendingAuditEvents, MarkAuditEventsPublished).
// Rows stored before the flag existed read as published (the column's default is
// false), so an upgrade does not publish the old trail again.
//
// Audit records are not user rows: DeleteUser leaves them, because the trail must
// show who did what even after the account is gone (it records the deletion itself),
// and they are removed only by age (DeleteAuditEventsBefore). They hold a user id,
// never a seed, code or password.
type AuditRecord struct {
	ID        string            `gorm:"primaryKey;size:36;index:idx_audit_pending,priority:2"`
	Time      time.Time         `gorm:"column:occurred_at;not null;index:idx_audit_user_time,priority:2;index;index:idx_audit_pending,priority:1,where:pending"`
	Event     string            `gorm:"size:64;not null"`
	UserID    string            `gorm:"size:255;index:idx_audit_user_time,priority:1"`
	Actor     string            `gorm:"size:255"`
	Caller    string            `gorm:"size:255"`
	Method    string            `gorm:"size:32"`
	Result    string            `gorm:"size:64"`
	ClientIP  string            `gorm:"size:64"`
	UserAgent string            `gorm:"size:512"`
	RequestID string            `gorm:"size:64"`
	Details   map[string]string `gorm:"serializer:json"`
	// Pending is true until the relay has published the row. A partial index
	// (pending rows only, in the relay's order) keeps the relay's scan small
	// however long the trail is.
	Pending bool `gorm:"not null;default:false"`
}

// TableName keeps the table name plain.
func (AuditRecord) TableName() string { return "audit_events" }

// AddAuditEvent stores one event.
func (s *Store) AddAuditEvent(ctx context.Context, r *AuditRecord) error {
	r.Time = r.Time.UTC()
	return s.DB(ctx).Create(r).Error
}

// AddAuditEvents stores several events in one multi-row INSERT (the audit
// trail's batching writer); either all are stored or none. Inside a transaction
// (a verification's own records, one to three) each is one prepared INSERT.
func (s *Store) AddAuditEvents(ctx context.Context, rs []*AuditRecord) error {
	if len(rs) == 0 {
		return nil
	}
	for _, r := range rs {
		r.Time = r.Time.UTC()
	}
	if !s.InTransaction(ctx) {
		return s.DB(ctx).Create(rs).Error
	}
	for _, r := range rs {
		var details any // NULL when empty, as gorm's json serializer writes it
		if len(r.Details) > 0 {
			b, err := json.Marshal(r.Details)
			if err != nil {
				return err
			}
			details = string(b)
		}
		if _, err := s.hotExec(ctx, insertAuditSQL, r.ID, r.Time, r.Event, r.UserID, r.Actor, r.Caller, r.Method, r.Result,
			r.ClientIP, r.UserAgent, r.RequestID, details, r.Pending); err != nil {
			return err
		}
	}
	return nil
}

// AuditCursor marks where a page of a user's events ended: the (time, id) of its
// last event.
type AuditCursor struct {
	Time time.Time
	ID   string
}

// ListAuditEvents returns up to limit of a user's events, newest first, starting
// after cursor (nil: from the newest). next is nil when there are no more.
func (s *Store) ListAuditEvents(ctx context.Context, userID string, limit int, after *AuditCursor) (events []AuditRecord, next *AuditCursor, err error) {
	q := s.DB(ctx).Where("user_id = ?", userID)
	if after != nil {
		t := after.Time.UTC()
		q = q.Where("(occurred_at < ? OR (occurred_at = ? AND id < ?))", t, t, after.ID)
	}
	if err := q.Order("occurred_at DESC").Order("id DESC").Limit(limit + 1).Find(&events).Error; err != nil {
		return nil, nil, err
	}
	if len(events) > limit {
		events = events[:limit]
		last := events[limit-1]
		next = &AuditCursor{Time: last.Time, ID: last.ID}
	}
	return events, next, nil
}

// DeleteAuditEventsBefore removes events older than t (retention).
func (s *Store) DeleteAuditEventsBefore(ctx context.Context, t time.Time) (int64, error) {
	res := s.DB(ctx).Where("occurred_at < ?", t.UTC()).Delete(&AuditRecord{})
	return res.RowsAffected, res.Error
}

// InTransaction tells whether ctx carries a transaction InTx opened: a Store call
// made with it joins that transaction (the audit trail then writes its row there,
// so that the row commits, or rolls back, with the action it records).
func (s *Store) InTransaction(ctx context.Context) bool {
	_, ok := ctx.Value(txKey{}).(*gorm.DB)
	return ok
}

// PendingAuditEvents returns up to limit rows not yet published, oldest first
// (by time, then id: the relay's order), through the partial index of pending rows.
// It runs after every relay wake-up, so it is a prepared statement scanned by
// position (pendingAuditSQL; hotsql_test.go checks its columns against the model).
func (s *Store) PendingAuditEvents(ctx context.Context, limit int) ([]AuditRecord, error) {
	rows, err := s.hotQuery(ctx, pendingAuditSQL, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var rs []AuditRecord
	for rows.Next() {
		var (
			r                                                    AuditRecord
			userID, actor, caller, method, result, ip, ua, reqID sql.NullString
			details                                              []byte
		)
		// auditCols' order.
		if err := rows.Scan(&r.ID, &r.Time, &r.Event, &userID, &actor, &caller, &method, &result,
			&ip, &ua, &reqID, &details, &r.Pending); err != nil {
			return nil, err
		}
		r.UserID, r.Actor, r.Caller, r.Method, r.Result = userID.String, actor.String, caller.String, method.String, result.String
		r.ClientIP, r.UserAgent, r.RequestID = ip.String, ua.String, reqID.String
		if len(details) > 0 { // NULL or empty: no details, as gorm's json serializer reads it
			if err := json.Unmarshal(details, &r.Details); err != nil {
				return nil, fmt.Errorf("audit event %s: details: %w", r.ID, err)
			}
		}
		rs = append(rs, r)
	}
	return rs, rows.Err()
}

// MarkAuditEventsPublished clears the pending flag of the rows ids names and
// returns how many it changed. The ids go in prepared UPDATEs of a few fixed
// widths (markAuditPublishedSQL), the last one padded with repeats of an id,
// which IN ignores; a relay's round of up to markAuditMaxWidth rows is one UPDATE.
func (s *Store) MarkAuditEventsPublished(ctx context.Context, ids []string) (int64, error) {
	var total int64
	for len(ids) > 0 {
		n := min(len(ids), markAuditMaxWidth)
		w := markAuditWidth(n)
		args := make([]any, w)
		for i := range w {
			args[i] = ids[min(i, n-1)]
		}
		changed, err := s.hotExec(ctx, markAuditPublishedSQL[w], args...)
		if err != nil {
			return total, err
		}
		total += changed
		ids = ids[n:]
	}
	return total, nil
}

// CountPendingAuditEvents counts the rows not yet published.
func (s *Store) CountPendingAuditEvents(ctx context.Context) (int64, error) {
	var n int64
	err := s.DB(ctx).Model(&AuditRecord{}).Where("pending").Count(&n).Error
	return n, err
}

// AuditRelayLease is the right to publish the audit outbox: of several replicas'
// relays over one database, only the lease's holder publishes, so a row is
// published by one relay at a time and in order. A lease ends at Expires (Unix
// nanoseconds of the holder's clock) unless renewed; a holder that stops releases
// it, one that dies leaves it to expire.
type AuditRelayLease struct {
	Name    string `gorm:"primaryKey;size:32"`
	Holder  string `gorm:"size:64;not null"`
	Expires int64  `gorm:"column:expires_ns;not null"`
}

// TableName keeps the table name plain.
func (AuditRelayLease) TableName() string { return "audit_relay_leases" }

// auditRelayLeaseName is the one lease row's key.
const auditRelayLeaseName = "audit"

// ErrLeaseHeld is returned by AcquireAuditRelayLease while another holder's
// lease runs.
var ErrLeaseHeld = errors.New("audit relay lease held by another relay")

// AcquireAuditRelayLease takes or renews the relay lease for holder until
// now+ttl, in one conditional upsert: it succeeds when the lease is free,
// expired, or already holder's, and returns ErrLeaseHeld otherwise.
func (s *Store) AcquireAuditRelayLease(ctx context.Context, holder string, now time.Time, ttl time.Duration) error {
	res := s.DB(ctx).Exec(`INSERT INTO audit_relay_leases (name, holder, expires_ns) VALUES (?, ?, ?)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_ns = excluded.expires_ns
WHERE audit_relay_leases.holder = excluded.holder OR audit_relay_leases.expires_ns < ?`,
		auditRelayLeaseName, holder, now.Add(ttl).UnixNano(), now.UnixNano())
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return ErrLeaseHeld
	}
	return nil
}

// ReleaseAuditRelayLease ends holder's lease at once (if it holds it), so that
// another relay takes over without waiting for it to expire.
func (s *Store) ReleaseAuditRelayLease(ctx context.Context, holder string) error {
	return s.DB(ctx).Model(&AuditRelayLease{}).Where("name = ? AND holder = ?", auditRelayLeaseName, holder).
		Update("expires_ns", 0).Error
}
