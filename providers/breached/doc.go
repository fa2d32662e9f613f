// Package breached tells whether a password appears in a corpus of passwords
// exposed in data breaches, the check Nextcloud's password policy app makes
// against Have I Been Pwned ("Pwned Passwords").
//
// Two Checkers answer the same question:
//
//   - RangeClient asks the Pwned Passwords range API
//     (GET {base}/range/{first five hex digits of SHA-1}) and compares the
//     returned hash suffixes locally.
//   - OfflineList answers from a local copy of the downloadable list, ordered
//     by hash, with a binary search over byte offsets, so the multi-gigabyte
//     file is never loaded into memory.
//
// # Why
//
// NIST SP 800-63B rev. 3 §5.1.1.2 (rev. 4 §3.1.1.2, "Password Verifiers")
// requires verifiers to compare a new password against a blocklist that
// includes "passwords obtained from previous breach corpuses" and to refuse it
// when it matches. OWASP ASVS 4.0.3 V2.1.7 asks the same, and adds that when an
// external API is used the plaintext password must not be sent to it.
//
// # Security properties
//
//   - The password never leaves the process, and neither does its full hash:
//     only the first five hex digits (20 of 160 bits) of its SHA-1 are sent, so
//     the service sees a prefix shared by hundreds of breached hashes and an
//     unbounded number of other passwords (k-anonymity, as described by the
//     Pwned Passwords API v3 documentation, "Searching by range"). SHA-1 is
//     used only because it is the key of the published corpus; nothing here
//     relies on its collision resistance.
//   - Every request asks for padding (header "Add-Padding: true"): the service
//     adds random suffixes with a count of 0 so that the size of the encrypted
//     response does not reveal the prefix (Pwned Passwords API v3, "Padding").
//     Entries with a count of 0 are never reported as breached.
//   - The suffix comparison scans every entry of a response with
//     crypto/subtle, without an early exit, so the time it takes does not
//     reveal which entry (and so which full hash) matched. The offline binary
//     search is not constant-time: it reads a local file and its access pattern
//     depends on the hash, which only a local observer could see.
//   - Responses are parsed strictly (35 upper-case hex digits, a colon, a
//     decimal count, CRLF line endings, no duplicates) and their size is
//     bounded; anything else is treated as the service being unavailable.
//   - When the service cannot answer (network error, timeout, 5xx, 429, a
//     malformed body) the client either fails open, answering
//     Result{Checked: false} so that the caller can let the password through
//     and record that it was not checked, or fails closed, returning an error
//     wrapping ErrUnavailable. A 429 or 503 with Retry-After stops requests
//     until that time instead of sleeping.
//   - Range responses are cached in memory for a short time, keyed by the
//     prefix only. Nothing this package returns or logs contains a password,
//     a digest or a part of one.
package breached
