// Package e2e runs the deployment's topology for real, as processes, and drives
// every flow through it in headless Chromium: two authd replicas on the
// machine's PostgreSQL (a fresh schema) and NATS (a fresh subject prefix), the
// demo, Mailpit, and two notifyd (SMTP to Mailpit, a development outbox each for
// the other channels), behind a gRPC proxy that sends
// each login's BeginChallenge and VerifyChallenge to different replicas. The
// tests are env-gated (TWOFACTOR_E2E=1, as .ci/run sets) so that `go test ./...`
// stays fast and needs no services.
//
// What they hold: no replica keeps state another needs (challenges, single-use
// codes and attempt counters are rows in the shared store, RFC 6238 §5.2: a code
// is accepted once whichever replica sees it); WebAuthn ceremonies are bound to
// the demo's origin (W3C WebAuthn Level 3 §13.4.9) and run in a real browser
// with the DevTools virtual authenticator; a running replica loads an API key
// added to the key file without a restart; a remembered browser's cookie is
// HttpOnly, SameSite=Strict, Secure except on http://localhost, host-only and
// rotated at each use without extending its expiry (RFC 6265bis §4.1.2,
// §4.1.3.2), and dies when the browser is forgotten.
package e2e
