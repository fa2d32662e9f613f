// Package otpcode implements one-time codes sent out of band, one package for
// four channels: email, SMS, Telegram and Signal. It enrolls a destination,
// draws and checks the codes, and renders the messages; the server publishes
// them (Send) through the delivery side, which never sees a code in clear on
// NATS. It knows nothing of gRPC, NATS or the wire.
//
// Security properties:
//
//   - Destinations (addresses, E.164 numbers, chat ids) are secrets at rest:
//     sealed with the key ring (AES-256-GCM) with associated data binding them
//     to their factor row and user, like TOTP seeds, and shown only masked
//     (a•••@example.com, +49 •••• ••12). Phone numbers are parsed and checked
//     with libphonenumber's metadata (github.com/nyaruka/phonenumbers); SMS
//     takes mobile numbers only. Every input is bounded.
//   - A destination is active only after a round trip proves the user controls
//     it (NIST SP 800-63B-4 §3.1.3.1): a code sent to it and typed back, or for
//     Telegram a one-time link token (256 bits from crypto/rand, base64url,
//     stored as a keyed hash, single use, at most 10 minutes) sent back from
//     the chat. Changing a destination is a new enrollment, and the old
//     destination is told (OWASP ASVS 4.0 V2.5.5, notify of authenticator
//     changes).
//   - Codes are 6 to 10 digits from crypto/rand without modulo bias, bound to
//     one challenge (the keyed hash covers the challenge id), stored only as an
//     HMAC-SHA-256 under the ring's MAC key kept outside the database, and
//     compared in constant time (ASVS V2.7.2, V2.7.6; SP 800-63B-4 §3.1.3.2
//     for the secret's lifetime: 5 minutes by default, 10 at most). The code is
//     also kept sealed (never in clear) so that a resend sends the same code.
//   - Each code works once, under any race on any number of replicas: a
//     conditional UPDATE consumes it, and of concurrent right answers exactly
//     one wins (ASVS V2.7.3 / V2.8.4).
//   - At most 5 answers per code are evaluated: the attempt is counted by an
//     atomic conditional increment before the answer is compared. Codes are low
//     entropy (LowEntropy): the server counts wrong answers toward the user's
//     throttle like TOTP's, and a new code or a resend never resets a count
//     (SP 800-63B-4 §3.2.2, rate limiting).
//   - Resends happen only on request, send the same code, wait a cooldown that
//     doubles (30 s, 60 s, …), are bounded per code, and with every first send
//     count toward daily caps per user and per destination (keyed by a keyed
//     hash of it) held in the shared store as atomic upserts, against SMS
//     pumping (OWASP "SMS pumping" / toll fraud guidance).
//   - Email is not an out-of-band authenticator (SP 800-63B-4 §3.1.3.1) and SMS
//     is restricted (§3.1.3.3): ChannelAssurance says so, and the policy can
//     forbid either per group.
//   - Messages come from text/template files (embedded defaults, an operator
//     folder to override, a locale per user); the requesting client's text is
//     bounded to one line and subjects cannot carry header breaks. An SMS ends
//     with the origin-bound line "@<domain> #<code>" (WICG WebOTP, the format
//     Apple's autofill reads), so a phone fills the code only on that origin.
//   - A Send prints, formats and logs itself without its destination, code or
//     text.
//   - Notices carry no code (KindNotice): a replaced destination is told of its
//     replacement (masked), and after a push refused as "this was not me" every
//     active, proved destination of the user is told (NotMeNotices: device,
//     time, client and IP, each bounded to one line). A notice's id is a
//     UUIDv5 of what it is about (a change's two factor ids; a refused push
//     and a factor), so the same notice made twice is delivered once; it
//     expires after NoticeTTL; pending destinations are never told.
package otpcode
