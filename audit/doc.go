// Package audit keeps the audit trail: one Event type, written by a Trail into the
// audit_events table, which is also the outbox that a Relay publishes to the NATS
// audit stream.
//
// Data flow:
//
//	server ── Record(ctx, Event) ──► Trail ─┬─ ctx in a transaction: INSERT in it (commits with the action)
//	                                        └─ otherwise: queue ─► writer: multi-row INSERT
//	audit_events (pending rows) ──► Relay (lease holder) ──► JetStream <p>.audit.<event>, msg id = event id
//	                                  └─ marks the acknowledged rows published
//
// Security and durability properties:
//
//   - Events never hold a secret (no code, password, seed or key); every field is
//     made valid UTF-8 without NUL and cut to its column's size before it is stored,
//     so a client's oversized or malformed user agent can neither make the INSERT
//     fail (and so keep its attempts out of the trail) nor exceed NATS's payload
//     limit (OWASP ASVS 4.0 V7.1.3, V7.3.1: log injection and integrity; issue 16,
//     finding 4).
//   - The record of an action taken inside a transaction commits with the action
//     (transactional outbox): a crash loses neither or both. Events recorded outside
//     a transaction are batched off the request path; a crash loses at most the
//     queued ones of the last milliseconds (see Trail). ASVS V7.1.4 (log
//     security-relevant events), V7.3.3 (logs protected from loss).
//   - Nothing on the request path waits for NATS. The relay publishes committed rows
//     at least once, with the event id as the JetStream message id (deduplicated
//     within the stream's duplicate window), in the order of (time, id), and
//     catches up after an outage; only the lease holder among replicas publishes.
//   - Failures are counted honestly: a row the store refuses is a real loss, logged
//     and counted (twofactor_audit_lost_total); a publish failure is not a loss (the
//     row waits in the store), so an outage gives one warning, one recovery line and
//     the series twofactor_audit_pending / _published_total / _publish_failures_total.
//   - Rows are removed only by age (storage.DeleteAuditEventsBefore, authd's
//     -audit-retention), published or not.
package audit
