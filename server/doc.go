// Package server turns twofactor's gRPC API into provider calls. It authenticates
// the caller, checks roles, validates input, maps provider results to answers and
// gRPC statuses, and records audit events. It holds no factor logic (that lives in
// providers/…) and no state that matters for correctness (that lives in storage), so
// any number of replicas can serve the same users.
//
// Each method is one Factor registered in a Registry (factor.go; the built-in ones
// in method_*.go, listed by server/app): its name, wire value, challenge begin and
// verify, enrollment, details and error mapping. Method names, the policy's list
// of methods, enrollment dispatch and factorToPB come from the registry; a wire
// Method no Factor registers is refused. Challenges are kept by package
// server/challenge (stored rows or sealed ids behind one interface). Each gRPC
// service is its own small type (services.go) sharing *core; docs/ARCHITECTURE.md
// has the layout and the checklist to add a factor.
//
// Security properties:
//
//   - Every RPC authenticates its caller with an API key sent as
//     "authorization: Bearer tfk_…" metadata, except the standard health check and
//     (when enabled) server reflection. Keys are stored only as SHA-256 digests and
//     compared in constant time; each key carries roles (login, selfservice, admin)
//     and each service requires one (OWASP ASVS 4.0 V4.1.1, V4.1.3: least privilege,
//     deny by default). Missing or unknown keys get Unauthenticated, a key without
//     the role PermissionDenied.
//   - A wrong answer is a normal VerifyChallenge result, never an RPC error; bad
//     input is InvalidArgument naming the field, and nothing is written for it.
//   - Answers leak nothing secret: codes, seeds and keys never reach logs or error
//     messages; logs carry the method, status, duration, caller key id and request id.
//   - App passwords (AppPasswordService) are returned once and stored only as keyed
//     hashes; VerifyAppPassword answers valid=false, never an error, for a wrong,
//     malformed, revoked or another user's password and audits each refusal with its
//     reason for throttling (NIST SP 800-63B §5.2.2). A revocation succeeds once
//     the row is gone; its announcement lets every replica's cache forget it (see
//     providers/apppasswords).
//   - Admin RPCs that act on a user name the human actor, and the server decides
//     whether that actor may: members of an admin group act on anyone, a group admin
//     only on members of the groups they administer (never on an admin), from the
//     memberships the backend syncs; refusals are PermissionDenied naming actor_id
//     (ASVS V4.1.3, V4.2.1). Recovery codes are shown once and never logged.
//   - Each challenge is consumed by a conditional UPDATE, so of concurrent verifiers on
//     any replicas exactly one can succeed (see package storage).
package server
