// Package trusteddevice remembers a device after a passed second factor ("remember
// this device"): a rotating, revocable device token that satisfies the second
// factor of later logins of the same user until it expires, is revoked, or the
// user's credentials change.
//
// Security properties, and where they come from:
//
//   - Entropy. A new series' token carries 52 symbols of 5 bits from crypto/rand
//     (260 bits), above the 112 bits of NIST SP 800-63B §5.1.2.2 and the 128 bits
//     OWASP ASVS 4.0 V3.2.2 asks of session tokens. Format: "tfrd_", 52 symbols of
//     Crockford's base32 and 7 symbols of CRC-32 (as app passwords), so secret
//     scanners find leaked tokens (`tfrd_[0-9a-hjkmnp-tv-z]{59}`); Parse checks
//     prefix, alphabet, length and checksum before any lookup.
//   - Storage. Only HMAC-SHA-256 (RFC 2104) of a token under the key ring's MAC
//     key, purpose "trusted-device", is stored, with the user, label, client IP and
//     user agent at issue, creation, last use, absolute expiry and the user's
//     credentials epoch (ASVS V3.5.2, V6.4.1: no token at rest, the key outside
//     the database). Lookups are by that hash's unique index; the stored hash and
//     the user are then compared in constant time (hmac.Equal, crypto/subtle).
//   - Rotation on every use (the "persistent login cookie" scheme of Barry
//     Jaspan's "Improved Persistent Login Cookie Best Practice", 2006, and the
//     refresh-token rotation of RFC 9700 §4.14.2): an accepted token is replaced
//     by its successor, so a stolen token works until its owner's next login at
//     most. The successor is HMAC-SHA-256 of the token under the MAC key (purpose
//     "trusted-device-next"): unpredictable without the key, and the same on every
//     replica, so concurrent rotations agree on one successor and the grace can
//     answer it again without it being stored anywhere.
//   - Theft detection (RFC 9700 §4.14.2, replay of a rotated refresh token). Every
//     rotated-away hash is kept until the series expires; a rotated-away token
//     presented again revokes the whole series (Reason ReasonTheft, audited by
//     the server). The one exception is the grace (default 30 s): the token just
//     replaced, presented again from the same client IP, is accepted once and
//     answers the same successor (two concurrent requests of one browser), never
//     a second branch of the series.
//   - One winner. Rotation is a conditional UPDATE on the current hash: of two
//     replicas rotating the same token exactly one writes; the other falls to
//     the grace and returns the same successor, so one series survives and one
//     new token is valid. The grace is itself a conditional UPDATE (once).
//   - Absolute expiry (ASVS V3.3.1): set at issue from policy (default 30 days,
//     at most 400, the limit browsers put on cookies), never moved by rotation.
//   - Credentials epoch (ASVS V3.3.3, SP 800-63B §6.1.2.3): a per-user counter in
//     the shared store, moved when a factor is added, removed or reset, an admin
//     code is issued or the password changes; a series of an older epoch is dead
//     (and removed by the same transaction that moves it).
//   - Bounded: at most MaxPerUser series per user, issuing one more evicts the
//     oldest; labels and user agents are bounded.
//   - Never a step-up: the server refuses to use a token when the backend asks
//     for a fresh second factor. Failures are results with a Reason, for the
//     audit trail and per-network throttling of unknown tokens; nothing secret is
//     logged or put in an error.
//
// The package speaks its own types; it imports no gRPC, protobuf or NATS.
package trusteddevice
