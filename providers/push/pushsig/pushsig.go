// Package pushsig is the push factor's signature scheme, shared by the server and
// devices (a Go device imports only this): the canonical encoding of what a device
// signs, ECDSA P-256 / SHA-256 verification accepting IEEE P1363 and ASN.1 DER, and
// the parsing of a device's public key. The encoding is specified in the package
// documentation of providers/push.
package pushsig

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"strconv"
)

// Magic starts every signed message: the scheme and its version.
const Magic = "TFPUSH1"

// Purposes name what a device signs; each is the message's first field.
const (
	PurposeEnroll      = "enroll"
	PurposeListPending = "list_pending"
	PurposeWatch       = "watch"
	PurposeGetContext  = "get_context"
	PurposeRespond     = "respond"
	PurposeSetEndpoint = "set_endpoint"
)

// Bounds of the canonical encoding and of a device request.
const (
	maxFields   = 16
	maxFieldLen = 2048
	// MinNonceLen and MaxNonceLen bound a request's nonce.
	MinNonceLen = 16
	MaxNonceLen = 64
	// MaxSigLen bounds a signature: DER of P-256 is at most 72 bytes, P1363 exactly 64.
	MaxSigLen    = 80
	maxPubKeyLen = 200
)

// ErrEncoding reports a message that is not a canonical encoding.
var ErrEncoding = errors.New("pushsig: not a canonical encoding")

// Encode returns the canonical encoding of fields: Magic, then for each field its
// length as a 4-byte big-endian unsigned integer followed by its bytes. Decode
// inverts it; two different field lists never encode alike.
func Encode(fields ...[]byte) []byte {
	n := len(Magic)
	for _, f := range fields {
		n += 4 + len(f)
	}
	out := make([]byte, 0, n)
	out = append(out, Magic...)
	for _, f := range fields {
		out = binary.BigEndian.AppendUint32(out, uint32(len(f)))
		out = append(out, f...)
	}
	return out
}

// Decode splits a canonical encoding into its fields. It refuses a wrong magic, a
// truncated field, trailing bytes, more than 16 fields or a field over 2048 bytes.
func Decode(msg []byte) ([][]byte, error) {
	if len(msg) < len(Magic) || string(msg[:len(Magic)]) != Magic {
		return nil, fmt.Errorf("%w: magic", ErrEncoding)
	}
	rest := msg[len(Magic):]
	var fields [][]byte
	for len(rest) > 0 {
		if len(fields) == maxFields {
			return nil, fmt.Errorf("%w: more than %d fields", ErrEncoding, maxFields)
		}
		if len(rest) < 4 {
			return nil, fmt.Errorf("%w: truncated length", ErrEncoding)
		}
		n := binary.BigEndian.Uint32(rest)
		rest = rest[4:]
		if n > maxFieldLen || int(n) > len(rest) {
			return nil, fmt.Errorf("%w: field length %d", ErrEncoding, n)
		}
		fields = append(fields, rest[:n:n])
		rest = rest[n:]
	}
	return fields, nil
}

// RequestMessage is the message a device signs for a request: the canonical
// encoding of purpose, device id, timestamp (Unix milliseconds in decimal ASCII),
// nonce (raw bytes) and the request's own fields, in that order.
func RequestMessage(purpose, deviceID string, timestampMillis int64, nonce []byte, fields ...string) []byte {
	all := make([][]byte, 0, 4+len(fields))
	all = append(all, []byte(purpose), []byte(deviceID), []byte(strconv.FormatInt(timestampMillis, 10)), nonce)
	for _, f := range fields {
		all = append(all, []byte(f))
	}
	return Encode(all...)
}

// ParsePublicKey reads an ECDSA P-256 public key given as PKIX (SubjectPublicKeyInfo)
// DER, as WebCrypto exports "spki", or as a 65-byte uncompressed point, as it
// exports "raw". It returns the key and its PKIX DER form, which is what is stored.
func ParsePublicKey(b []byte) (*ecdsa.PublicKey, []byte, error) {
	if len(b) == 0 || len(b) > maxPubKeyLen {
		return nil, nil, errors.New("public key: want 1 to 200 bytes")
	}
	var pub *ecdsa.PublicKey
	if len(b) == 65 && b[0] == 4 {
		k, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), b)
		if err != nil {
			return nil, nil, fmt.Errorf("public key: %w", err)
		}
		pub = k
	} else {
		k, err := x509.ParsePKIXPublicKey(b)
		if err != nil {
			return nil, nil, fmt.Errorf("public key: not PKIX DER or an uncompressed P-256 point")
		}
		ek, ok := k.(*ecdsa.PublicKey)
		if !ok || ek.Curve != elliptic.P256() {
			return nil, nil, errors.New("public key: not an ECDSA P-256 key")
		}
		pub = ek
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("public key: %w", err)
	}
	return pub, der, nil
}

// VerifySignature checks an ECDSA P-256 signature with SHA-256 over msg. It accepts
// IEEE P1363 (r‖s, 64 bytes, what WebCrypto produces) and ASN.1 DER (what Go's
// ecdsa.SignASN1, Android and iOS keystores produce).
func VerifySignature(pub *ecdsa.PublicKey, msg, sig []byte) bool {
	if pub == nil || len(sig) == 0 || len(sig) > MaxSigLen {
		return false
	}
	digest := sha256.Sum256(msg)
	if len(sig) == 64 {
		r := new(big.Int).SetBytes(sig[:32])
		s := new(big.Int).SetBytes(sig[32:])
		if ecdsa.Verify(pub, digest[:], r, s) {
			return true
		}
	}
	return ecdsa.VerifyASN1(pub, digest[:], sig)
}

// SignP1363 signs msg as WebCrypto does: ECDSA P-256 with SHA-256, r‖s in 64 bytes.
func SignP1363(key *ecdsa.PrivateKey, msg []byte) ([]byte, error) {
	digest := sha256.Sum256(msg)
	r, s, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		return nil, err
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out, nil
}

// SignDER signs msg with ECDSA P-256 and SHA-256, ASN.1 DER.
func SignDER(key *ecdsa.PrivateKey, msg []byte) ([]byte, error) {
	digest := sha256.Sum256(msg)
	return ecdsa.SignASN1(rand.Reader, key, digest[:])
}
