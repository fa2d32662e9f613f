package storage

import "strings"

// The hand-written SQL of the login path, in one file (see doc.go for when code
// uses the GORM builder, Raw+Scan, or these). Each statement names its columns
// from the lists below; hotsql_test.go compares every list, with the columns a
// statement leaves out on purpose, to the GORM model's columns, so a new column
// that a statement misses fails a test until it is added or left out by name.

// challengeCols are all of Challenge's columns, in model order.
var challengeCols = []string{"id", "user_id", "factor_id", "method", "state", "session", "attempts",
	"max_attempts", "expires_at", "client_ip", "created_at", "updated_at"}

// factorCols are all of Factor's columns, in model order; joinedFactor scans them
// as f_<column>.
var factorCols = []string{"id", "user_id", "method", "name", "state", "sealed_secret", "secret_key_id",
	"credential_id", "data", "last_step", "attempts", "expires_at", "created_at", "updated_at", "last_used_at"}

// sealedStateFactorCols are the factor columns verifying a sealed TOTP challenge
// reads (scanned by position in LoadSealedChallenge); sealedStateFactorOmitted
// are those it leaves out: not needed to check a code.
var (
	sealedStateFactorCols    = []string{"id", "method", "state", "sealed_secret", "secret_key_id", "data", "last_step"}
	sealedStateFactorOmitted = []string{"user_id", "name", "credential_id", "attempts", "expires_at", "created_at", "updated_at", "last_used_at"}
)

// factorHeadsCols are what ListFactorHeads reads (no secret); the rest is omitted.
var factorHeadsCols = []string{"id", "last_step"}

// failSealedChallengeCols are the columns the first wrong answer to a sealed
// challenge writes; session is left out (a sealed challenge has none).
var (
	failSealedChallengeCols    = []string{"id", "user_id", "factor_id", "method", "state", "attempts", "max_attempts", "expires_at", "client_ip", "created_at", "updated_at"}
	failSealedChallengeOmitted = []string{"session"}
)

func prefixed(prefix string, cols []string) string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = prefix + c
	}
	return strings.Join(out, ", ")
}

func aliased(table, alias string, cols []string) string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = table + "." + c + " AS " + alias + c
	}
	return strings.Join(out, ", ")
}

// challengeAndFactorSQL reads a challenge and, joined, its user's factor.
var challengeAndFactorSQL = `SELECT ` + prefixed("c.", challengeCols) + `, ` + aliased("f", "f_", factorCols) + `
 FROM challenges c LEFT JOIN factors f ON f.id = c.factor_id AND f.user_id = c.user_id
 WHERE c.id = ?`

// sealedStateSQL reads a sealed challenge's factor and, if wrong answers gave
// the challenge a row, its state. The one-row subquery keeps a row when neither
// the factor nor the challenge exists, in SQLite and PostgreSQL alike. Only the
// columns verification reads are selected, and they are scanned without
// reflection: this is half of every login's reads.
var sealedStateSQL = `SELECT ` + prefixed("f.", sealedStateFactorCols) + `, c.state, c.attempts
 FROM (SELECT 1 AS one) o
 LEFT JOIN factors f ON f.id = ? AND f.user_id = ?
 LEFT JOIN challenges c ON c.id = ?`

// sealedStatePGSQL is sealedStateSQL with PostgreSQL's placeholders (read in
// InAttempt's pipeline).
var sealedStatePGSQL = numberPlaceholders(sealedStateSQL)

// factorHeadsSQL: every login begins with this query.
var factorHeadsSQL = `SELECT ` + prefixed("", factorHeadsCols) + ` FROM factors WHERE user_id = ? AND method = ? AND state = ?
 ORDER BY created_at, id LIMIT ?`

// advanceLastStepFromSQL moves a factor's last TOTP step on, only from the step
// the caller saw (nil as -1: steps count from the Unix epoch).
const advanceLastStepFromSQL = `UPDATE factors SET last_step = ?, last_used_at = ?
 WHERE id = ? AND state = ? AND COALESCE(last_step, -1) = ?`

// failSealedChallengeSQL counts one wrong answer on a sealed challenge: the
// first creates its row, later ones update it; the state turns failed at the
// last allowed attempt.
var failSealedChallengeSQL = `INSERT INTO challenges
 (` + prefixed("", failSealedChallengeCols) + `)
 VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?)
 ON CONFLICT (id) DO UPDATE SET attempts = challenges.attempts + 1,
  state = CASE WHEN challenges.attempts + 1 >= challenges.max_attempts THEN ? ELSE challenges.state END,
  updated_at = excluded.updated_at
 WHERE challenges.state = ? AND challenges.attempts < challenges.max_attempts
 RETURNING attempts, max_attempts`

// auditCols are all of AuditRecord's columns, in model order.
var auditCols = []string{"id", "occurred_at", "event", "user_id", "actor", "caller", "method", "result",
	"client_ip", "user_agent", "request_id", "details", "pending"}

// insertAuditSQL writes one audit record: a login's records, written in the
// transaction of the verification they record (the batched writer's
// multi-row INSERTs outside transactions go through gorm).
var insertAuditSQL = `INSERT INTO audit_events (` + prefixed("", auditCols) + `) VALUES (?` + strings.Repeat(", ?", len(auditCols)-1) + `)`

// throttleStateCols are all of ThrottleState's columns, in model order.
var throttleStateCols = []string{"kind", "subject_key", "failures", "first_failure", "last_failure", "blocked_until", "locked"}

// throttleStale is true of an existing throttle row whose failures have aged out
// of the window (last_failure before the first argument) and whose delay or lock
// has ended (blocked_until at or before the second): its count starts again.
const throttleStale = "throttle_states.last_failure < ? AND throttle_states.blocked_until <= ?"

// recordThrottleFailureSQL counts one failure of a subject and returns its row
// as the count left it: a new subject starts at one, a stale one starts again
// at one (its lock cleared), any other adds one. Every SET reads the row as it
// was before the statement.
var recordThrottleFailureSQL = `INSERT INTO throttle_states (` + strings.Join(throttleStateCols, ", ") + `)
 VALUES (?, ?, 1, ?, ?, ?, ?)
 ON CONFLICT (kind, subject_key) DO UPDATE SET
 failures = CASE WHEN ` + throttleStale + ` THEN 1 ELSE throttle_states.failures + 1 END,
 first_failure = CASE WHEN ` + throttleStale + ` THEN ? ELSE throttle_states.first_failure END,
 locked = CASE WHEN ` + throttleStale + ` THEN ? ELSE throttle_states.locked END,
 last_failure = ?
 RETURNING ` + strings.Join(throttleStateCols, ", ")

// blockThrottleSQL sets a subject's delay or lock.
const blockThrottleSQL = "UPDATE throttle_states SET blocked_until = ?, locked = ? WHERE kind = ? AND subject_key = ?"

// pendingAuditSQL is the relay's read of the outbox: the oldest pending rows in
// its order, through the partial index of pending rows (its WHERE is the index's).
var pendingAuditSQL = `SELECT ` + prefixed("", auditCols) + ` FROM audit_events WHERE pending
 ORDER BY occurred_at, id LIMIT ?`

// markAuditMaxWidth is the widest UPDATE MarkAuditEventsPublished prepares (the
// relay's default batch); narrower ones go by powers of two, so at most
// log2(markAuditMaxWidth)+1 statements are kept.
const markAuditMaxWidth = 256

// markAuditWidth is the prepared width that holds n ids (1 ≤ n ≤ markAuditMaxWidth).
func markAuditWidth(n int) int {
	w := 1
	for w < n {
		w *= 2
	}
	return w
}

// markAuditPublishedSQL[w] clears the pending flag of the w rows its ids name,
// for each width markAuditWidth returns.
var markAuditPublishedSQL = func() map[int]string {
	m := make(map[int]string)
	for w := 1; w <= markAuditMaxWidth; w *= 2 {
		m[w] = `UPDATE audit_events SET pending = FALSE WHERE pending AND id IN (?` + strings.Repeat(", ?", w-1) + `)`
	}
	return m
}()
