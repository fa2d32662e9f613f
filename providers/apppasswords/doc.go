// Package apppasswords issues and verifies app passwords: high-entropy random
// secrets that clients unable to do a second factor (WebDAV, CalDAV/CardDAV, sync
// apps, mail clients) send in place of the user's password, each one listed,
// renamed and revoked on its own.
//
// Security properties, and where they come from:
//
//   - Entropy. A password carries 26 symbols of 5 bits drawn from crypto/rand:
//     130 bits, above the 112 bits NIST SP 800-63B §5.1.2.2 requires of a
//     look-up secret that is stored with a fast keyed one-way function.
//   - Storage. Only HMAC-SHA-256 (RFC 2104) of the canonical password under the
//     key ring's MAC key, domain-separated by the purpose "app-password", is
//     stored (SP 800-63B §5.1.2.2, OWASP ASVS 4.0 V2.4.5 / V6.4.1: the key lives
//     outside the database, so a stolen database allows no offline guessing). The
//     password is returned once by Issue and never again.
//   - Recognisable and typeable (the format GitHub introduced for its tokens in
//     2021). "tfap_" followed by 33 symbols of Crockford's base32
//     (0-9 a-z without i l o u): 26 random symbols and 7 symbols of the CRC-32
//     (IEEE 802.3) of "tfap_" and the random part. Secret scanners match
//     `tfap_[0-9a-hjkmnp-tv-z]{33}` and confirm a hit by its checksum without
//     asking us, so a leaked password is found with almost no false positives.
//     Parse accepts what people type: any case, dashes or spaces between
//     symbols, and i/l for 1 and o for 0 (Crockford's aliases).
//   - Cheap rejection. Parse checks prefix, alphabet, length and checksum before
//     anything touches the database: a user's main password or a typo costs no
//     lookup.
//   - One lookup, constant-time compares. The keyed hash is the unique index
//     (see storage.AppPassword for why no public selector is needed): a verify is
//     one indexed equality lookup, then the stored hash and the login are compared
//     in constant time (crypto/subtle, hmac.Equal). A password of
//     another user is invalid, exactly like an unknown one, to the caller.
//   - Failed verifications are results, not errors: Result.Reason tells the
//     server what to count toward throttling per login and per client IP
//     (SP 800-63B §5.2.2, ASVS V2.2.1) and what to audit.
//   - Last use is recorded at most once per TouchInterval (default one minute)
//     per password across all replicas by a conditional UPDATE, so a sync client
//     that authenticates every request causes one write a minute, not one per
//     request.
//   - Revocation is immediate everywhere: when Revoke (or RevokeAll, Revoked)
//     returns, no replica accepts the password (issue 16, finding 10; OWASP ASVS
//     4.0 V3.3.1 / V3.3.3, invalidation on revocation). Rows are deleted, not
//     flagged. The optional in-process cache (hash → user, id, scope; bounded)
//     is trusted only while the replica's last read of a shared revocation
//     counter, incremented by every revocation, began less than RevocationCheck
//     (50 ms) ago and found no change; Revoke returns 2×RevocationCheck after the
//     increment committed. This holds with NATS down or a replica's subscription
//     lost; a replica that cannot read the counter does not use its cache. The
//     announcement through an Announcer (NATS in the server) only makes the other
//     replicas forget sooner. A generation counter keeps a lookup that raced with
//     a revocation from putting the revoked row back (epoch.go).
//   - Nothing secret is logged or put in an error: errors name the input that
//     was wrong, never its value.
//
// The package speaks its own types; the server maps them to the wire. It imports
// no gRPC, protobuf or NATS.
package apppasswords
