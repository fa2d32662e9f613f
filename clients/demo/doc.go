// Package demo is the demo web login of twofactor: a small backend, in the role a
// Nextcloud or any web application plays, that signs people in with the second
// factors authd offers. It calls authd over gRPC through clients/client and serves
// server-rendered pages (html/template, embedded with embed.FS, no external assets)
// with a little JavaScript for WebAuthn.
//
// The demo has no passwords: the user name is the first step, then authd's
// GetLoginRequirements decides whether a second factor is needed and which methods
// the user can pass (TOTP, security key or passkey, backup code, admin code, a
// code sent by email, SMS, Signal or Telegram). A
// passkey can also sign in without a name (a discoverable credential, WebAuthn
// Level 3 §6.2.2, requested with an empty allowCredentials).
//
// Security properties, and where they come from:
//
//   - Sessions are stateless: a cookie holding the user and an expiry, signed with
//     HMAC-SHA256 (RFC 2104, FIPS 198-1) under a 256-bit key drawn from crypto/rand
//     per process, compared in constant time (hmac.Equal). The MAC covers a purpose
//     label, so the half-finished login cookie (name given, second factor owed, open
//     challenge id) never passes for a session (OWASP ASVS 4.0 V3.2, V3.5).
//   - Cookies are HttpOnly, SameSite=Strict, Path=/, and Secure on an https origin
//     (RFC 6265bis §4.1.2, §5.4.7).
//   - "Remember this browser" (a box at the second factor) keeps authd's device
//     token in a cookie named "__Host-demo_device" on https: Secure, HttpOnly,
//     SameSite=Strict, Path=/, no Domain (RFC 6265bis §4.1.3.2), until the
//     token's absolute expiry. On http://localhost a browser refuses a __Host-
//     cookie (it requires Secure), so there the name is "demo_device" and the
//     cookie is not Secure. The next sign-in presents it (CheckRememberedDevice)
//     and keeps the rotated token authd returns; a token authd does not remember
//     is deleted. The account page lists the remembered browsers and forgets them.
//   - Every state-changing request must carry an Origin header equal to the
//     configured origin, or without one a Referer under it; anything else is
//     refused with 403 (OWASP CSRF Prevention Cheat Sheet, "Verifying origin with
//     standard headers"; RFC 6454 §7). JSON endpoints also demand
//     application/json, which a cross-site form cannot send.
//   - A second-factor answer counts only for the user who gave their name: the
//     user id authd returns with an accepted verdict must match the login cookie.
//   - A code sent by email, SMS, Signal or Telegram is checked only against the
//     challenge that sent it (its id in the signed login cookie): "Send a code"
//     opens it, and a code typed before that is refused, never checked against a
//     fresh challenge. Only that POST sends a code: no page render, status call or
//     reload sends one. Pages show the destination only as authd masks it (NIST SP
//     800-63B §5.1.3).
//   - Telegram enrollment shows the t.me deep link and its QR code (drawn here from
//     the link authd returned); the page polls a status call that only asks
//     FinishEnrollment whether the chat pressed Start. The link's token is a bearer
//     secret: it is shown on that no-store page and posted back in its forms only.
//     On a development authd (its links name tglink.DevBot) a button presses Start
//     in a simulated chat (DevService; the demo asks it for such links only, and
//     authd refuses it anywhere else).
//   - One-time secrets (TOTP seed and QR code, backup codes, app passwords) are
//     shown once on a Cache-Control: no-store page, never put in a cookie, a URL or
//     the log; a wrong TOTP code shows the code field again, not the seed. The
//     breached-password form sends the password to authd only and never echoes it.
//   - A strict Content-Security-Policy (script-src 'self', no inline script,
//     frame-ancestors 'none') and nosniff on every response.
//   - Push approval: the device page (/device) makes an ECDSA P-256 key with WebCrypto,
//     extractable = false, kept as a CryptoKey in IndexedDB, and signs each device
//     request itself (the canonical encoding of providers/push/pushsig, IEEE P1363
//     signatures); the demo relays those requests to DeviceService but holds no
//     device key, so it cannot answer a push (NIST SP 800-63B-4 §3.1.3: the number
//     shown on the sign-in page must be typed on the device). The sign-in page
//     long-polls VerifyChallenge; the challenge id stays in the signed login cookie.
//   - WebAuthn needs the browser's origin to be exactly the one authd allows
//     (-webauthn-origins, default http://localhost:8080) and an RP ID the origin's
//     host ends with ("localhost"): open the demo at http://localhost:8080, not at
//     127.0.0.1 (WebAuthn Level 3 §5.1.3 and §5.1.4: the RP ID must be a registrable
//     domain suffix of the origin's host; §7.1 and §7.2: the relying party checks
//     the origin in clientDataJSON).
package demo
