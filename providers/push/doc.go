// Package push is the push-approval factor: a user's enrolled device (a phone app,
// a browser tab, a terminal) approves a login, with number matching and signed
// answers. It knows no gRPC, protobuf or NATS: the server maps its calls to RPCs,
// and wake-ups across replicas come through the small Waker and Announcer
// interfaces (notify.Publisher implements both).
//
// # Flow
//
//  1. BeginEnrollment issues a one-time token (and a QR code of it). The device
//     makes an ECDSA P-256 key pair and calls FinishEnrollment with its public
//     key, name, platform and delivery endpoint (Web Push subscription, ntfy /
//     UnifiedPush topic URL, or poll only), signing the token with the new key.
//  2. Begin starts a push login: a challenge with the login's context and a number
//     to show on the login screen. The caller sends each device an opaque push
//     (challenge id and device id only); the device fetches the context through
//     the authenticated device API (Authenticate, then ListPending / Context).
//  3. The device answers with Respond (approve with the number, deny, or "this
//     was not me"); the caller announces it so that VerifyWait on any replica
//     wakes; Verify redeems an approval once.
//
// # Canonical encoding (what a device signs)
//
// A signed message is the ASCII bytes "TFPUSH1" followed by each field as its
// length, a 4-byte big-endian unsigned integer, then its bytes (pushsig.Encode). Strings
// are UTF-8; no field is omitted, an absent one is empty (length 0). A device
// request's fields are, in order:
//
//	purpose     "enroll", "list_pending", "watch", "get_context", "respond", "set_endpoint"
//	device_id   the device's id ("" for enroll, which has none yet)
//	timestamp   the device's clock as Unix milliseconds, decimal ASCII, e.g. "1764648000000"
//	nonce       16 to 64 random bytes, raw
//	...         the request's own fields:
//	            enroll:       token, public key (the bytes sent), name, platform,
//	                          endpoint kind, endpoint URL, p256dh, auth, ntfy token
//	            get_context:  challenge_id
//	            respond:      challenge_id, decision ("approve"|"deny"|"not_me"), number ("" if none)
//	            set_endpoint: endpoint kind, URL, p256dh, auth, ntfy token
//	            list_pending, watch: none
//
// The signature is ECDSA P-256 with SHA-256 over the whole message, either IEEE
// P1363 (r‖s, 64 bytes: WebCrypto's sign({name:"ECDSA",hash:"SHA-256"})) or ASN.1
// DER (Go's ecdsa.SignASN1, Android Keystore, iOS Secure Enclave). The public key
// is PKIX DER (WebCrypto "spki") or a 65-byte uncompressed point ("raw"). In
// JavaScript: concatenate TextEncoder bytes with a DataView setUint32(0, n) prefix
// per field; timestamp String(Date.now()).
//
// # Security properties
//
//   - A tap alone does not prove intent (NIST SP 800-63B-4 §3.1.3): by default the
//     login screen shows a 2-digit number the user types on the device (2 to 6
//     digits, or pick one of three). NumberNone (tap only) is weaker and only for
//     operators who accept push fatigue. A wrong number denies the login, counts
//     as a refusal for the limits and is reported as suspected push fatigue
//     (OWASP ASVS 5.0 6.6.4).
//   - The device proves possession of its private key at enrollment by signing the
//     one-time token (proof of possession, NIST SP 800-63B §6.1.2.1), and
//     signs every later request. Requests are accepted within ±Window (60 s) of
//     the server's clock and once only: the (device, nonce) pair is inserted into
//     the shared store with a primary key, so a replay on any replica fails.
//   - Enrollment tokens have 256 bits of entropy, live at most 5 minutes, are
//     stored only as HMAC-SHA-256 keyed hashes and are used up by a conditional
//     UPDATE in the same transaction that stores the device (NIST SP 800-63B §6.1.2.1
//     on binding authenticators).
//   - The number is stored only as a keyed hash (compared in constant time); the
//     login context and the delivery endpoint are sealed with AES-256-GCM bound to
//     their row and user (storage.KeyRing). A push carries only the challenge id
//     and the device id, so no push relay learns anything of the login.
//   - A challenge is answered once (conditional UPDATE from pending), approved
//     once and redeemed once (conditional UPDATE from approved): of concurrent
//     callers on any replicas exactly one wins each step. A device only sees and
//     answers its own user's challenges; a revoked device's requests fail.
//   - Push bombing (ASVS 5.0 6.6.4): one pending push per user; after a denied or
//     unanswered push the next one waits BackoffBase (10 s), doubling up to
//     BackoffMax (1 h); DailyCap pushes per UTC day; optionally a lock after "this
//     was not me". The state is one row per user changed by compare-and-set on a
//     version column, in the transaction that stores the challenge, so the limits
//     hold across replicas and exactly the allowed number of concurrent begins win.
//   - A device's endpoint must be https (and, when Config.EndpointHosts is set, on
//     one of those push-service hosts), so notifyd does not post to arbitrary
//     addresses; plain http only to the hosts of Config.HTTPEndpointHosts (a push
//     service on the deployment's own network, such as the compose file's ntfy). An
//     endpoint whose host is an IP literal notify/egress refuses (loopback, RFC 1918,
//     link-local, ULA, …) or localhost is refused at enrollment and SetEndpoint unless
//     Config.AllowInternal allows it: notifyd would never wake it. Host names are not
//     resolved then (notifyd checks what they resolve to at each dial). A push
//     service answering 404/410 retires the endpoint (RFC 8030 §7.3); the device
//     keeps working by polling, so a failed push transport locks no one out.
package push
