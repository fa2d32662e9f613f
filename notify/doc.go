// Package notify owns everything twofactor does with NATS JetStream: the subject and
// stream names, the versioned event schema, the publisher used by authd, the audit tail,
// the delivery-worker framework used by notifyd, and an embedded server for single-node
// deployments.
//
// # Subjects and streams
//
// Every name derives from a prefix (default "twofactor", see Names), so tenants and tests
// can share one NATS server. With prefix p and P its upper-case form:
//
//	subject                              stream / kind           retention
//	p.gateway.send.<email|sms|telegram|signal>  P_GATEWAY        work queue, max age = code lifetime
//	p.gateway.notice.<email|sms|telegram|signal> P_NOTICES       work queue, max age = notice lifetime (24 h)
//	p.push.request                       P_PUSH                  work queue, max age = challenge lifetime
//	p.gateway.status                     P_GATEWAY_STATUS        limits
//	p.gateway.telegram.bound             P_BINDINGS              work queue, max age = link token lifetime
//	p.audit.<event>                      P_AUDIT                 limits (days)
//	p.deadletter.<original subject without p.>  P_DEADLETTER     limits
//	p.push.response.<challengeID>        core NATS (wakes a VerifyChallenge long-poll)
//	p.apppassword.revoked                core NATS (cache invalidation broadcast)
//	(key-value bucket) P_DELIVERED       ids delivered by workers, TTL
//
// # Event schema (JSON)
//
// Every payload has "v", its schema version. Decoders accept versions up to the one they
// know (SchemaVersion, 1, for most payloads; GatewaySendVersion, 3, for gateway sends)
// and refuse later ones; unknown fields are ignored, so adding an optional field is
// compatible and does not bump the version. Times are RFC 3339 in UTC.
//
// AuditEvent, on p.audit.<event>, message id = id:
//
//	field        type              meaning
//	v            int               schema version (1)
//	id           string            unique event id (UUID); the JetStream message id
//	time         RFC 3339 time     when it happened (UTC)
//	event        string            one of the Event* constants, e.g. "challenge.rejected"
//	user_id      string            the user concerned
//	actor        string            the human who acted (admin RPCs), if any
//	caller       string            the authenticated API caller (backend) name
//	method       string            factor: totp, webauthn, email, sms, push, backupcode, ...
//	result       string            outcome: accepted, rejected, expired, throttled, ...
//	client_ip    string            end user's IP as reported by the backend
//	user_agent   string            end user's user agent as reported by the backend
//	request_id   string            request id for correlation with logs
//	details      map string→string event-specific extras (never secrets)
//
// GatewaySend, on p.gateway.send.<channel> (kind code) or p.gateway.notice.<channel>
// (kind notice), message id = challenge_id (the challenge id, or "<id>_<seq>" for a
// resend of the same code; a notice's own id), version 3:
//
//	v int (3); kind string (code|notice); challenge_id string;
//	channel string (email|sms|telegram|signal); user_id string; expires_at time (a
//	code's expiry, or a notice's, 24 h after it was made); key_id string (delivery
//	key id); sealed base64 (AES-256-GCM nonce‖ciphertext‖tag of the JSON secret part
//	{"d": destination, "c": code, "s": subject, "t": text, "l": locale}, associated
//	data "twofactor/gateway-send/v3" NUL kind NUL channel NUL challenge_id NUL user_id
//	NUL expires_at in Unix nanoseconds)
//
// A code has "c" set; a notice (a changed destination, a push refused as "not me")
// has "c" empty and "t" set, and its GatewayStatus carries kind "notice" so that authd
// records it on no challenge. Version 2 (no kind; associated data
// "twofactor/gateway-send/v2" NUL channel NUL ...) is still decoded and opened, a
// notice when "c" is empty; version 1 carried destination and code in clear, is still
// decoded, never written, and notifyd refuses it.
//
// TelegramBinding, on p.gateway.telegram.bound, message id = "tgbind-<update_id>":
//
//	v int (1); update_id int; time time; key_id string; sealed base64 (the JSON
//	{"token", "chat_id"} under the delivery key, associated data
//	"twofactor/telegram-bound/v1" NUL message id)
//
// PushRequest, on p.push.request, message id = challenge_id:
//
//	v int; challenge_id string; user_id string; device_id string; number int (the number
//	shown for number matching); expires_at time; endpoint string (push endpoint, optional);
//	client string; client_ip string; user_agent string
//
// GatewayStatus, on p.gateway.status, message id = id:
//
//	v int; id string; time time; challenge_id string (the gateway send's message id);
//	channel string; subject string (original subject); state string (delivered|failed;
//	authd itself records queued when it has published); reason string (for failed:
//	expired, rejected, provider_auth, captcha_required, undecodable, not_configured,
//	max_deliveries); attempts int; error string (no code, destination or credential);
//	kind string ("notice" for a notice's outcome, absent for a code)
//
// # Delivery key
//
// authd and notifyd share a delivery key file (default <data-dir>/delivery.key, mode
// 0600, {"current": id, "keys": {id: base64 of 32 bytes}}), created by authd on first
// start in embedded mode and by `authd init` (EnsureDeliveryKeyFile). Rotation
// (RotateDeliveryKeyFile) adds a key and makes it current; older keys still open. Roll it
// out to every notifyd before authd, and drop an old key after the gateway stream's max
// age.
//
// # Security properties
//
//   - Audit events record who did what, when, from where and with what result, and never
//     carry a secret (OWASP ASVS 4.0 V7.1.1, V7.1.3, V7.1.4). They are JSON-encoded, so
//     attacker-controlled text such as a user agent cannot forge fields or lines (ASVS
//     V7.3.1). They are kept for AuditMaxAge in a limits stream and tailed through durable
//     consumers, so a consumer that was offline receives what it missed.
//   - A GatewaySend carries a one-time code and a destination, sealed with AES-256-GCM
//     under the delivery key and bound to its channel, challenge, user and expiry, so
//     NATS servers and JetStream's files hold no usable code or destination (ASVS
//     V6.2.1, V8.3.4); a blob moved into another message does not open. It lives only in
//     a work-queue stream whose max age equals the code lifetime (ASVS V2.7.2; NIST SP
//     800-63B §5.1.3: out-of-band secrets are short-lived and used once) and is removed
//     when acknowledged. Dead letters, kept longer, have the sealed part (and any clear
//     code or destination) replaced by "[redacted]". Decode errors never quote a
//     payload. Telegram binding tokens and chat ids are sealed the same way. Run NATS
//     with TLS and authentication when it leaves the host.
//   - Publishing uses the challenge id (or event id) as the JetStream message id, so a
//     retried publish within the duplicate window is stored once. Workers acknowledge only
//     after delivery and remember delivered ids in a key-value bucket, so a redelivery after
//     a crash between delivery and acknowledgement does not send a code twice. A crash
//     between delivery and recording the id can still repeat a delivery (at-least-once).
//   - Push responses and revocations are announced on core NATS with no decision in the
//     payload: a woken VerifyChallenge re-reads the store, so a forged announcement can at
//     most cause an extra read. SubscribePushResponse registers the subscription with the
//     server before returning, so subscribing before checking the store loses no wake-up.
//   - The embedded server never opens a TCP port unless the operator names one: with
//     Listen empty, clients connect in-process only.
package notify
