// Package storage owns everything twofactor keeps: the GORM models, their migrations,
// the SQLite and PostgreSQL openers, and the sealing of secrets at rest.
//
// It knows no factor logic; providers call its small, conditional operations and
// decide what they mean.
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
package storage
