package storage

import (
	"context"
	"time"
)

// AuditRecord is one security-relevant event as the audit trail keeps it. It never
// holds a secret.
//
// Audit records are not user rows: DeleteUser leaves them, because the trail must
// show who did what even after the account is gone (it records the deletion itself),
// and they are removed only by age (DeleteAuditEventsBefore). They hold a user id,
// never a seed, code or password.
type AuditRecord struct {
	ID        string            `gorm:"primaryKey;size:36"`
	Time      time.Time         `gorm:"column:occurred_at;not null;index:idx_audit_user_time,priority:2;index"`
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
}

// TableName keeps the table name plain.
func (AuditRecord) TableName() string { return "audit_events" }

// AddAuditEvent stores one event.
func (s *Store) AddAuditEvent(ctx context.Context, r *AuditRecord) error {
	r.Time = r.Time.UTC()
	return s.DB(ctx).Create(r).Error
}

// AddAuditEvents stores several events in one multi-row INSERT (the audit
// trail's batching writer); either all are stored or none.
func (s *Store) AddAuditEvents(ctx context.Context, rs []*AuditRecord) error {
	if len(rs) == 0 {
		return nil
	}
	for _, r := range rs {
		r.Time = r.Time.UTC()
	}
	return s.DB(ctx).Create(rs).Error
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
