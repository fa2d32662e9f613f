// Package webauthn enrolls and verifies WebAuthn credentials — security keys, passkeys
// and legacy FIDO U2F keys imported from U2F-era relying parties — as a factor, with
// github.com/go-webauthn/webauthn doing the ceremony checks. It speaks storage rows
// and JSON strings; the server maps them to the wire.
//
// Security properties, and the part of W3C Web Authentication (Level 2, and Level 3
// where it adds to it) each one comes from:
//
//   - Registration (§7.1 "Registering a New Credential") checks the type, the challenge,
//     the origin against the configured origins (web origins and native-app origins
//     such as android:apk-key-hash:…), the RP ID hash, the UP flag, the UV flag when
//     the ceremony requires it, that the credential algorithm is one offered in
//     pubKeyCredParams, and the attestation statement of its format (none, packed,
//     fido-u2f, tpm, android-key, apple, …). Attestation is verified but not trusted
//     against a metadata service: the authenticator model (AAGUID) and format are
//     recorded, not used to admit or refuse keys (§13.4.9 "Attestation Limitations").
//   - A credential id can belong to one factor only (§7.1 step 22: the RP SHOULD
//     refuse a credential id it already knows). The user's existing credentials are
//     sent as excludeCredentials (§5.4.3) so the same authenticator is not enrolled
//     twice; imported U2F keys are excluded through appidExclude (§10.1.2).
//   - Authentication (§7.2 "Verifying an Authentication Assertion") checks that the
//     credential is one the challenge allowed and that it belongs to the user (step 6:
//     for a discoverable login the user is found from the credential id and the user
//     handle must match), the type, the challenge, the origin, the RP ID hash (or
//     SHA-256 of the AppID for U2F keys, §10.1.1), UP, UV when policy requires it
//     (step 17), the backup flags' consistency, and the signature over
//     authenticatorData ‖ SHA-256(clientDataJSON) with the stored public key (step 21).
//   - Single use: go-webauthn keeps no memory of sessions, so a captured assertion
//     verifies again against the session it was made for. The challenge row is
//     therefore consumed by a conditional update (package storage), and the last
//     accepted challenge is stored with the credential so that two concurrent
//     verifications of one assertion cannot both advance it (§13.4.3 "Cryptographic
//     Challenges": challenges must be used once).
//   - Signature counter (§6.1.1, §7.2 step 22): a counter that does not grow (other
//     than an authenticator that always reports 0) marks the credential as possibly
//     cloned, refuses this login and every later one with the credential, and is
//     reported so that an audit record is written. Counter updates are a
//     compare-and-set on the stored credential, so replicas racing on one credential
//     cannot lose an update or move the counter backwards.
//   - User handles are 64 random bytes per user, stored in the webauthn_users table
//     (§14.6.1 "User Handle Contents": the handle must not contain personally
//     identifying information; 64 random bytes are recommended). The backend's user id
//     never reaches an authenticator. A random handle, unlike an HMAC of the user id,
//     survives a rotation of the service's keys.
//   - Everything a ceremony needs between its two halves (the go-webauthn session:
//     challenge, allowed credentials, UV requirement, appid) lives in the shared store —
//     the pending factor's Data for registration, the challenge row for login — so any
//     replica can finish what another began. Nothing is kept in memory.
//   - Ceremony timeouts (§15.1 recommends 300 s to 600 s when UV is required) are sent
//     to the client and enforced by the store's expiry of the pending factor or
//     challenge, measured with the injected clock.
//   - Errors name the input that failed and never carry key material, challenges or
//     user handles.
package webauthn
