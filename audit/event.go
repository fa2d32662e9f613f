package audit

import (
	"context"
	"log/slog"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/storage"
)

// Event is one security-relevant event: the one type the server records, the
// store keeps (storage.AuditRecord, through toRecord) and NATS carries
// (notify.AuditEvent, through toNotify). It never holds a secret. Event is one of
// notify's Event* names; the fields are those of notify.AuditEvent (schema v1).
type Event struct {
	ID        string // one id in the store and on NATS (the JetStream message id)
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

// Recorder records audit events. Record never fails the caller: the action it
// records has happened (or, inside a transaction, commits with it).
type Recorder interface {
	Record(ctx context.Context, e Event)
}

// Field bounds: the stored row's column sizes (storage.AuditRecord), in bytes, so
// that a row always fits its columns on PostgreSQL and a message stays far below
// NATS's payload limit whatever a client sent.
const (
	maxID         = 36
	maxEvent      = 64
	maxName       = 255 // user, actor, caller
	maxMethod     = 32
	maxResult     = 64
	maxClientIP   = 64
	maxUserAgent  = 512
	maxRequestID  = 64
	maxDetails    = 16
	maxDetailKey  = 64
	maxDetailText = 512
)

// clean makes s valid UTF-8 without NUL bytes (PostgreSQL refuses both in text
// columns) and cuts it to at most n bytes on a character boundary.
func clean(s string, n int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// cleanDetails bounds the details: at most maxDetails entries (the first by key),
// keys and values cleaned and cut.
func cleanDetails(d map[string]string) map[string]string {
	if len(d) == 0 {
		return nil
	}
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) > maxDetails {
		keys = keys[:maxDetails]
	}
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		out[clean(k, maxDetailKey)] = clean(d[k], maxDetailText)
	}
	return out
}

// toRecord is the stored row of e (pending: the relay has yet to publish it),
// every field cleaned and cut to its column.
func toRecord(e Event) *storage.AuditRecord {
	return &storage.AuditRecord{
		ID: clean(e.ID, maxID), Time: e.Time.UTC(), Event: clean(e.Event, maxEvent),
		UserID: clean(e.UserID, maxName), Actor: clean(e.Actor, maxName), Caller: clean(e.Caller, maxName),
		Method: clean(e.Method, maxMethod), Result: clean(e.Result, maxResult),
		ClientIP: clean(e.ClientIP, maxClientIP), UserAgent: clean(e.UserAgent, maxUserAgent),
		RequestID: clean(e.RequestID, maxRequestID), Details: cleanDetails(e.Details),
		Pending: true,
	}
}

// fromRecord is the event a stored row holds.
func fromRecord(r *storage.AuditRecord) Event {
	return Event{
		ID: r.ID, Time: r.Time.UTC(), Event: r.Event, UserID: r.UserID, Actor: r.Actor, Caller: r.Caller,
		Method: r.Method, Result: r.Result, ClientIP: r.ClientIP, UserAgent: r.UserAgent,
		RequestID: r.RequestID, Details: r.Details,
	}
}

// toNotify is the NATS message of e.
func toNotify(e Event) notify.AuditEvent {
	return notify.AuditEvent{
		ID: e.ID, Time: e.Time, Event: e.Event, UserID: e.UserID, Actor: e.Actor, Caller: e.Caller,
		Method: e.Method, Result: e.Result, ClientIP: e.ClientIP, UserAgent: e.UserAgent,
		RequestID: e.RequestID, Details: e.Details,
	}
}

// LogRecorder writes audit events as structured log lines (and nothing else).
type LogRecorder struct{ Log *slog.Logger }

// Record logs e at info level.
func (a LogRecorder) Record(ctx context.Context, e Event) {
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
