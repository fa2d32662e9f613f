// Package storage owns everything twofactor keeps: the GORM models, their migrations,
// the SQLite and PostgreSQL openers, and the sealing of secrets at rest.
//
// It knows no factor logic; providers call its small, conditional operations and
// decide what they mean.
//
// How queries are written — three ways, each for a reason:
//
//   - The GORM builder (s.DB(ctx).Where(…).Updates(…), Create, Find) is the
//     default: administration, enrollment, recovery codes, app passwords, audit,
//     sweeps. It is typed, portable between SQLite and PostgreSQL, and follows the
//     models; use it unless a statement is on the login path or GORM cannot say it.
//   - Raw+Scan (s.DB(ctx).Raw(sql, args…).Scan(&rows)) is for statements GORM's
//     builder cannot express but whose rows still map to a model by column name:
//     a LEFT JOIN read into embedded models (GetChallengeAndFactor), an upsert
//     with a conditional DO UPDATE … RETURNING (FailSealedChallengeAttempt). It
//     runs inside the caller's transaction like the builder (InTx).
//   - Prepared hot-path SQL (hotQuery/hotExec in hot.go: prepared once on the
//     writer's pool, scanned by position without reflection) is only for the
//     statements every login runs: ListFactorHeads, LoadSealedChallenge,
//     AdvanceLastStepFrom, GetThrottles, where gorm's builder was a third of the
//     cost (docs/PERFORMANCE.md). Inside InTx they join the transaction with the
//     statement prepared once on the hot pool (hot.go txStmt; gorm would prepare
//     it again in every transaction), or through gorm until it is prepared.
//     A verification's audit records (AddAuditEvents inside a transaction) are one
//     of them (insertAuditSQL), and so are the audit relay's read and mark of the
//     outbox (PendingAuditEvents, MarkAuditEventsPublished), which run after every
//     relay wake-up; the count of a failed attempt (RecordThrottleFailure: one
//     upsert … RETURNING, then the delay's UPDATE when it grows), which every
//     wrong answer runs and an attacker drives; a push login's statements
//     (hotpush.go: the device and its nonce, the push challenge, the user's push
//     limit, the stored login challenge's insert); and a code login's (email,
//     SMS, Telegram, Signal; hototp.go: CreateOTPCode with its send counts,
//     GetOTPCode, AttemptOTPCode, ConsumeOTPCode, FailOTPCodeIfSpent,
//     RecordOTPDelivery).
//
// The hand-written SQL of the login paths (the Raw and the prepared statements)
// lives in hotsql.go, hotpush.go (push) and hototp.go (codes), built from column
// lists that hotsql_test.go compares with the GORM models (GetThrottles' list is
// still in throttle.go); hotpush_test.go and hototp_test.go check that rows read
// back equal gorm's. One-row reads go through queryOne (hot.go).
//
// Security properties:
//
//   - Secrets that must be read back (TOTP seeds) are sealed with AES-256-GCM
//     (NIST SP 800-38D) through a KeyRing. The key id is stored beside the
//     ciphertext so keys can rotate, and the associated data binds each ciphertext to
//     its table, user and row, so a sealed value copied to another row does not open
//     (OWASP ASVS 4.0 V6.2.1, V6.4.1).
//   - Codes and passwords are never stored, only keyed hashes (HMAC-SHA-256 with a key
//     that lives outside the database, ASVS V2.4.5 / V6.4) compared in constant time.
//   - Single use is decided in the database by conditional UPDATEs (compare-and-set):
//     of several replicas or goroutines racing on one challenge, code or time step,
//     exactly one sees a row affected (RFC 6238 §5.2, RFC 4226 §7.5).
//   - Nothing that matters for correctness lives in a process's memory: challenges
//     and their attempt counters are rows, so any replica can continue what another began.
//   - audit_events is also the outbox of the NATS audit stream (pending rows, a
//     partial index over them, a lease row so that one relay publishes): see package
//     audit.
package storage
