// Package server turns twofactor's gRPC API into provider calls. It authenticates
// the caller, checks roles, validates input, maps provider results to answers and
// gRPC statuses, and records audit events. It holds no factor logic (that lives in
// providers/…) and no state that matters for correctness (that lives in storage), so
// any number of replicas can serve the same users.
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
//   - Each challenge is consumed by a conditional UPDATE, so of concurrent verifiers on
//     any replicas exactly one can succeed (see package storage).
package server
