// Package u2fkey converts the public keys that legacy FIDO U2F relying parties stored
// into the forms a WebAuthn relying party needs, so that security keys registered
// through the U2F JavaScript API (for example by Nextcloud's twofactor_u2f app, which
// kept the key handle and the 65-byte public key of each registration) can keep
// signing in through WebAuthn with the FIDO AppID extension.
//
// Security properties:
//
//   - A U2F credential public key is an uncompressed NIST P-256 point
//     (FIDO U2F Raw Message Formats v1.2, §4.3: "user public key ... 65 bytes,
//     uncompressed (x,y)-representation of a curve point on the P-256 NIST elliptic
//     curve"), encoded as in SEC 1 v2 §2.3.3 (0x04 || X || Y). [ParseRaw] accepts exactly
//     that form and nothing else: a compressed point, the point at infinity, a point
//     that is not on the curve or coordinates that are not reduced modulo p are refused,
//     so a stored value that is not a real public key can never become a credential
//     (invalid-curve inputs are the classic way to leak ECDH/ECDSA secrets; NIST
//     SP 800-56A rev. 3 §5.6.2.3.4 requires this full public-key validation).
//   - [U2FToCOSE] encodes the validated point as a COSE_Key of key type EC2 (kty 2),
//     curve P-256 (crv 1) and algorithm ES256 (alg -7) (RFC 9052 §7, RFC 9053 §2.1 and
//     §7.1.1), in the CTAP2 canonical CBOR encoding (CTAP 2.1 §8 "Message Encoding"),
//     which is the credentialPublicKey format of WebAuthn Level 3 §6.5.1.1. The
//     signature algorithm of a U2F key is ECDSA with SHA-256 (U2F Raw Message Formats
//     §5.4), which is exactly ES256, so no information is lost or invented.
//   - The rpIdHash a U2F key signs over is SHA-256 of the AppID, not of an RP ID
//     (WebAuthn Level 3 §10.1.1, FIDO AppID Extension). [ImportCredential] therefore
//     marks the credential with the "fido-u2f" attestation format, which is what makes
//     go-webauthn honour the appid client extension output for it and nothing else.
//
// A note on go-webauthn v0.18.2: when the appid extension is in play its assertion
// verifier parses the stored credential public key with webauthncose.ParseFIDOPublicKey,
// which takes the raw 65-byte point and refuses a COSE key. A webauthn.Credential for an
// imported U2F key must therefore carry the raw point in PublicKey (which
// [ImportCredential] does); the COSE form from [U2FToCOSE] is for storage next to native
// WebAuthn credentials, and [COSEToU2F] turns it back into the raw point.
package u2fkey

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"errors"
	"fmt"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"
	"github.com/go-webauthn/webauthn/webauthn"
)

const (
	// RawPublicKeyLen is the length of a U2F user public key: 0x04 || X(32) || Y(32).
	RawPublicKeyLen = 65

	// MaxKeyHandleLen is the largest key handle U2F can carry: its length travels in one
	// byte (U2F Raw Message Formats v1.2 §4.3 and §5.1).
	MaxKeyHandleLen = 255

	coordLen = 32

	// COSE values from RFC 9052 §7 and RFC 9053 §2.1 / §7.1.1.
	coseKeyTypeEC2 = 2
	coseAlgES256   = -7
	coseCurveP256  = 1

	// FormatFIDOU2F is the attestation statement format identifier of U2F credentials
	// (WebAuthn Level 3 §8.6); go-webauthn only applies the appid extension to
	// credentials recorded with this format.
	FormatFIDOU2F = "fido-u2f"
)

// Errors returned by this package. They say which input was wrong but never echo key
// material.
var (
	ErrRawKeyLength   = errors.New("u2fkey: raw public key must be 65 bytes")
	ErrRawKeyEncoding = errors.New("u2fkey: raw public key is not an uncompressed point (first byte must be 0x04)")
	ErrRawKeyPoint    = errors.New("u2fkey: raw public key is not a valid P-256 point")
	ErrCOSEKey        = errors.New("u2fkey: COSE key is not an ES256 P-256 EC2 key")
	ErrKeyHandle      = errors.New("u2fkey: key handle must be 1 to 255 bytes")
)

// coseEC2Key is the COSE_Key layout of an EC2 public key. The keyasint tags and the
// CTAP2 encoding mode of webauthncbor give the canonical order 1, 3, -1, -2, -3.
type coseEC2Key struct {
	Kty   int64  `cbor:"1,keyasint"`
	Alg   int64  `cbor:"3,keyasint"`
	Curve int64  `cbor:"-1,keyasint"`
	X     []byte `cbor:"-2,keyasint"`
	Y     []byte `cbor:"-3,keyasint"`
}

// ParseRaw validates a U2F user public key (0x04 || X || Y on P-256) and returns it as
// an ECDSA public key.
func ParseRaw(raw []byte) (*ecdsa.PublicKey, error) {
	if len(raw) != RawPublicKeyLen {
		return nil, fmt.Errorf("%w, got %d", ErrRawKeyLength, len(raw))
	}

	if raw[0] != 0x04 {
		return nil, ErrRawKeyEncoding
	}

	// ParseUncompressedPublicKey checks that the coordinates are reduced, that the point
	// is on the curve and that it is not the point at infinity.
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
	if err != nil {
		return nil, ErrRawKeyPoint
	}

	return pub, nil
}

// U2FToCOSE converts a U2F user public key (the 65-byte uncompressed P-256 point U2F
// relying parties stored) into a CTAP2-canonical COSE_Key: {1: 2, 3: -7, -1: 1, -2: X,
// -3: Y}.
func U2FToCOSE(raw []byte) ([]byte, error) {
	if _, err := ParseRaw(raw); err != nil {
		return nil, err
	}

	return webauthncbor.Marshal(coseEC2Key{
		Kty:   coseKeyTypeEC2,
		Alg:   coseAlgES256,
		Curve: coseCurveP256,
		X:     raw[1 : 1+coordLen],
		Y:     raw[1+coordLen:],
	})
}

// COSEToU2F is the inverse of [U2FToCOSE]: it accepts only an EC2 key on P-256 for
// ES256 and returns the 65-byte uncompressed point.
func COSEToU2F(cose []byte) ([]byte, error) {
	key, err := webauthncose.ParsePublicKey(cose)
	if err != nil {
		return nil, ErrCOSEKey
	}

	ec, ok := key.(webauthncose.EC2PublicKeyData)
	if !ok || ec.KeyType != coseKeyTypeEC2 || ec.Algorithm != coseAlgES256 || ec.Curve != coseCurveP256 {
		return nil, ErrCOSEKey
	}

	raw := make([]byte, 0, RawPublicKeyLen)
	raw = append(raw, 0x04)
	raw = append(raw, ec.XCoord...)
	raw = append(raw, ec.YCoord...)

	if _, err = ParseRaw(raw); err != nil {
		return nil, ErrCOSEKey
	}

	return raw, nil
}

// ImportCredential builds the go-webauthn credential record for a key registered
// through the U2F API, from what such relying parties stored: the key handle, the raw
// public key and the last signature counter seen.
//
// The record has ID = key handle, PublicKey = the raw 65-byte point (the form
// go-webauthn v0.18.2 verifies appid assertions with), AttestationFormat "fido-u2f" (so
// that BeginLogin keeps the appid extension and ValidateLogin expects SHA-256(AppID) as
// rpIdHash), AttestationType "fido-u2f" (the attestation was verified, if at all, by
// the old relying party; nothing here vouches for it), transport "usb", no backup
// flags (U2F authenticators have none), and the given sign counter.
func ImportCredential(keyHandle, raw []byte, signCount uint32) (webauthn.Credential, error) {
	if len(keyHandle) == 0 || len(keyHandle) > MaxKeyHandleLen {
		return webauthn.Credential{}, fmt.Errorf("%w, got %d", ErrKeyHandle, len(keyHandle))
	}

	if _, err := ParseRaw(raw); err != nil {
		return webauthn.Credential{}, err
	}

	return webauthn.Credential{
		ID:                append([]byte(nil), keyHandle...),
		PublicKey:         append([]byte(nil), raw...),
		AttestationType:   FormatFIDOU2F,
		AttestationFormat: FormatFIDOU2F,
		Transport:         []protocol.AuthenticatorTransport{protocol.USB},
		Authenticator: webauthn.Authenticator{
			SignCount: signCount,
		},
	}, nil
}
