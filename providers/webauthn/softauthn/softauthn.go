// Package softauthn is a software WebAuthn authenticator and client, with real
// cryptography, for tests: it answers the JSON options a relying party (go-webauthn's
// BeginRegistration / BeginLogin) hands to the browser with the JSON a browser would
// post back, so the relying party's verification runs unchanged against it.
//
// What it produces, and where each rule comes from:
//
//   - clientDataJSON per WebAuthn Level 3 §5.8.1 (type "webauthn.create" or
//     "webauthn.get", the challenge as base64url without padding, the origin,
//     crossOrigin false), in the member order of the §5.8.1.1 limited serialization.
//   - authenticator data per §6.1: SHA-256 of the RP ID, flags UP (always), UV, BE,
//     BS and AT (§6.1 "flags"), a 32-bit big-endian signature counter (§6.1.1) that
//     increases by one per assertion, and for registration the attested credential
//     data of §6.5.2 (AAGUID, 16-bit credential id length, credential id, COSE key).
//   - credential public keys as COSE_Key (RFC 9052 §7, RFC 9053 §2.1 and §2.2): EC2
//     P-256 for ES256 (-7) and OKP Ed25519 for EdDSA (-8), in CTAP2 canonical CBOR
//     (CTAP 2.1 §8), using go-webauthn's own CBOR encoder.
//   - attestation objects (§6.5.4) in the "none" format (§8.7) or the "packed"
//     format with self attestation (§8.2: alg and sig only, sig made with the
//     credential private key over authenticatorData || SHA-256(clientDataJSON)).
//   - assertion signatures (§6.3.3 step 11) over authenticatorData ||
//     SHA-256(clientDataJSON): ECDSA P-256 with SHA-256, DER encoded (FIPS 186-5 §6,
//     RFC 9053 §2.1), or pure Ed25519 (RFC 8032 §5.1.6).
//   - the FIDO AppID extension (§10.1.1): rpIdHash = SHA-256(AppID) and the client
//     extension output {"appid": true}, for keys registered through the legacy U2F
//     API ([U2FKey], FIDO U2F Raw Message Formats v1.2).
//
// Private keys are generated with the standard library (crypto/ecdsa,
// crypto/ed25519) and never leave the process. Key generation and credential ids
// read from Options.Rand, so tests can make them deterministic; ECDSA signatures are
// randomized by crypto/ecdsa itself regardless (Go 1.26 ignores custom readers there).
//
// Unlike a browser, the client part does not check that the RP ID is a registrable
// suffix of the origin and does not refuse options an authenticator could not satisfy
// unless it truly cannot (unknown algorithm, excluded credential, resident key it does
// not have): the point of this package is to let tests hand a relying party responses
// that it must refuse, such as a wrong RP ID, a wrong origin or a missing UV flag.
// It is a test tool; it is not a secure key store.
package softauthn

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
)

// Alg is a COSE algorithm identifier (RFC 9053, IANA "COSE Algorithms").
type Alg int64

// The signature algorithms the authenticator can create credentials for.
const (
	ES256 Alg = -7 // ECDSA P-256 with SHA-256
	EdDSA Alg = -8 // Ed25519
)

// Attestation statement formats the authenticator can produce.
const (
	AttestationNone   = "none"
	AttestationPacked = "packed"
)

// Errors returned by the authenticator. They name the input at fault and never carry
// key material.
var (
	ErrOptions              = errors.New("softauthn: malformed options JSON")
	ErrUnsupportedAlgorithm = errors.New("softauthn: none of pubKeyCredParams is the authenticator's algorithm")
	ErrExcluded             = errors.New("softauthn: the authenticator holds a credential in excludeCredentials")
	ErrResidentKey          = errors.New("softauthn: a discoverable credential is required but the authenticator makes none")
	ErrNoCredential         = errors.New("softauthn: the authenticator holds no matching credential")
	ErrNoAppID              = errors.New("softauthn: the appid extension was not requested")
	ErrConfig               = errors.New("softauthn: invalid authenticator options")
)

// Options configure an [Authenticator].
type Options struct {
	// AAGUID identifies the authenticator model in attested credential data.
	AAGUID [16]byte
	// Algorithm of the credentials it creates: ES256 (default) or EdDSA.
	Algorithm Alg
	// Attestation is "none" (default) or "packed" (self attestation).
	Attestation string
	// UV makes the authenticator report user verification (flag UV).
	UV bool
	// Discoverable makes credentials client-side discoverable: they answer a request
	// with an empty allowCredentials and return the user handle.
	Discoverable bool
	// BackupEligible and BackedUp set the BE and BS flags (§6.1.3).
	BackupEligible, BackedUp bool
	// Attachment is reported as authenticatorAttachment: "cross-platform" (default)
	// or "platform".
	Attachment string
	// Transports reported at registration; default ["usb"].
	Transports []string
	// Rand is the source for private keys and credential ids; default crypto/rand.
	Rand io.Reader
}

// Credential describes one credential the authenticator holds. It carries no private
// key.
type Credential struct {
	ID            []byte
	PublicKeyCOSE []byte
	Alg           Alg
	SignCount     uint32
	UserHandle    []byte
	RPID          string
	Discoverable  bool
}

// AssertOptions vary one assertion, mostly to produce responses a relying party must
// refuse.
type AssertOptions struct {
	// UV overrides the authenticator's UV flag for this assertion.
	UV *bool
	// RPID overrides the RP ID hashed into the authenticator data (a client that got
	// it wrong, or a phishing site's RP ID). The credential is still looked up under
	// the request's RP ID.
	RPID string
	// Origin overrides the origin written into clientDataJSON.
	Origin string
	// SignCount forces the signature counter to this value (a cloned or reset
	// authenticator); the stored counter follows it.
	SignCount *uint32
	// UseAppID signs with rpIdHash = SHA-256(extensions.appid of the request) and
	// reports {"appid": true}, as a client does for a U2F credential.
	UseAppID bool
	// CredentialID picks this held credential whether or not the request allows it.
	CredentialID []byte
	// Challenge replaces the request's challenge in clientDataJSON.
	Challenge []byte
}

type heldCredential struct {
	Credential
	signer crypto.Signer
}

// Authenticator is a software authenticator holding any number of credentials. It is
// safe for concurrent use.
type Authenticator struct {
	opts Options
	rand io.Reader

	mu    sync.Mutex
	creds []*heldCredential
}

// New returns an authenticator configured by opts.
func New(opts Options) (*Authenticator, error) {
	if opts.Algorithm == 0 {
		opts.Algorithm = ES256
	}

	if opts.Algorithm != ES256 && opts.Algorithm != EdDSA {
		return nil, fmt.Errorf("%w: Algorithm %d is neither ES256 (-7) nor EdDSA (-8)", ErrConfig, opts.Algorithm)
	}

	switch opts.Attestation {
	case "":
		opts.Attestation = AttestationNone
	case AttestationNone, AttestationPacked:
	default:
		return nil, fmt.Errorf("%w: Attestation %q is neither %q nor %q", ErrConfig, opts.Attestation, AttestationNone, AttestationPacked)
	}

	if opts.BackedUp && !opts.BackupEligible {
		return nil, fmt.Errorf("%w: BackedUp requires BackupEligible (WebAuthn §6.1.3)", ErrConfig)
	}

	switch opts.Attachment {
	case "":
		opts.Attachment = "cross-platform"
	case "cross-platform", "platform":
	default:
		return nil, fmt.Errorf("%w: Attachment %q is neither cross-platform nor platform", ErrConfig, opts.Attachment)
	}

	if opts.Transports == nil {
		opts.Transports = []string{"usb"}
	}

	r := opts.Rand
	if r == nil {
		r = rand.Reader
	}

	return &Authenticator{opts: opts, rand: r}, nil
}

// Credentials lists copies of the credentials the authenticator holds, oldest first.
func (a *Authenticator) Credentials() []Credential {
	a.mu.Lock()
	defer a.mu.Unlock()

	out := make([]Credential, len(a.creds))
	for i, c := range a.creds {
		out[i] = c.copy()
	}

	return out
}

func (c *heldCredential) copy() Credential {
	out := c.Credential
	out.ID = bytes.Clone(c.ID)
	out.PublicKeyCOSE = bytes.Clone(c.PublicKeyCOSE)
	out.UserHandle = bytes.Clone(c.UserHandle)

	return out
}

// Register answers navigator.credentials.create(): it takes the JSON of the creation
// options (protocol.CredentialCreation as go-webauthn marshals it, {"publicKey":{...}},
// or the bare PublicKeyCredentialCreationOptions), creates a credential and returns the
// JSON of the resulting PublicKeyCredential as a browser posts it to the server.
func (a *Authenticator) Register(creationOptionsJSON []byte, origin string) (responseJSON []byte, cred *Credential, err error) {
	var o creationOptions
	if err = decodeOptions(creationOptionsJSON, &o); err != nil {
		return nil, nil, err
	}

	rpID, err := a.checkCreation(&o, origin)
	if err != nil {
		return nil, nil, err
	}

	a.mu.Lock()
	defer a.mu.Unlock()

	for _, ex := range o.ExcludeCredentials {
		if c := a.find(ex.ID); c != nil && c.RPID == rpID {
			return nil, nil, ErrExcluded
		}
	}

	held, err := a.newCredential(o.User.ID, rpID)
	if err != nil {
		return nil, nil, err
	}

	clientData, err := marshalClientData("webauthn.create", o.Challenge, origin)
	if err != nil {
		return nil, nil, err
	}

	authData, attObjCBOR, err := a.attest(held, clientData)
	if err != nil {
		return nil, nil, err
	}

	resp, err := a.registrationResponse(held, clientData, authData, attObjCBOR, o.Extensions.CredProps)
	if err != nil {
		return nil, nil, err
	}

	if responseJSON, err = json.Marshal(resp); err != nil {
		return nil, nil, fmt.Errorf("softauthn: encode response: %w", err)
	}

	a.creds = append(a.creds, held)
	out := held.copy()

	return responseJSON, &out, nil
}

// checkCreation checks the creation options against what the authenticator can do
// and returns the RP ID (the options', or the origin's host).
func (a *Authenticator) checkCreation(o *creationOptions, origin string) (string, error) {
	if len(o.Challenge) == 0 {
		return "", fmt.Errorf("%w: publicKey.challenge is missing", ErrOptions)
	}

	rpID, err := rpIDOr(o.RP.ID, origin)
	if err != nil {
		return "", err
	}

	if err = a.checkAlgorithm(o.PubKeyCredParams); err != nil {
		return "", err
	}

	sel := o.AuthenticatorSelection
	if (sel.ResidentKey == "required" || (sel.ResidentKey == "" && sel.RequireResidentKey)) && !a.opts.Discoverable {
		return "", ErrResidentKey
	}

	return rpID, nil
}

// rpIDOr returns rpID, or when it is empty the host of origin.
func rpIDOr(rpID, origin string) (string, error) {
	if rpID != "" {
		return rpID, nil
	}

	return originHost(origin)
}

// newCredential makes a key pair and a random 32-byte credential id for the user
// handle at rpID.
func (a *Authenticator) newCredential(userHandle []byte, rpID string) (*heldCredential, error) {
	signer, coseKey, err := a.newKey()
	if err != nil {
		return nil, err
	}

	id := make([]byte, 32)
	if _, err = io.ReadFull(a.rand, id); err != nil {
		return nil, fmt.Errorf("softauthn: read credential id: %w", err)
	}

	return &heldCredential{
		Credential: Credential{
			ID:            id,
			PublicKeyCOSE: coseKey,
			Alg:           a.opts.Algorithm,
			UserHandle:    bytes.Clone(userHandle),
			RPID:          rpID,
			Discoverable:  a.opts.Discoverable,
		},
		signer: signer,
	}, nil
}

// attest returns the authenticator data with the attested credential data of held
// (§6.5.2) and the CBOR attestation object over it, in the configured format.
func (a *Authenticator) attest(held *heldCredential, clientData []byte) (authData, attObjCBOR []byte, err error) {
	authData = a.authData(sha256.Sum256([]byte(held.RPID)), a.opts.UV, 0)
	authData = append(authData, a.opts.AAGUID[:]...)
	authData = binary.BigEndian.AppendUint16(authData, uint16(len(held.ID)))
	authData = append(authData, held.ID...)
	authData = append(authData, held.PublicKeyCOSE...)
	authData[32] |= flagAT

	clientDataHash := sha256.Sum256(clientData)

	attObj := attestationObject{Fmt: a.opts.Attestation, AttStmt: map[string]any{}, AuthData: authData}

	if a.opts.Attestation == AttestationPacked {
		sig, err := sign(held.signer, a.opts.Algorithm, concat(authData, clientDataHash[:]))
		if err != nil {
			return nil, nil, err
		}

		attObj.AttStmt = packedStatement{Alg: int64(a.opts.Algorithm), Sig: sig}
	}

	if attObjCBOR, err = webauthncbor.Marshal(attObj); err != nil {
		return nil, nil, fmt.Errorf("softauthn: encode attestation object: %w", err)
	}

	return authData, attObjCBOR, nil
}

// registrationResponse is the PublicKeyCredential a browser posts for held; with
// credProps it reports the credProps extension.
func (a *Authenticator) registrationResponse(held *heldCredential, clientData, authData, attObjCBOR []byte, credProps bool) (*registrationResponse, error) {
	spki, err := x509.MarshalPKIXPublicKey(held.signer.Public())
	if err != nil {
		return nil, fmt.Errorf("softauthn: encode public key: %w", err)
	}

	ext := map[string]any{}
	if credProps {
		ext["credProps"] = map[string]bool{"rk": a.opts.Discoverable}
	}

	return &registrationResponse{
		ID:    b64(held.ID),
		RawID: b64(held.ID),
		Type:  "public-key",
		Response: attestationResponse{
			ClientDataJSON:     b64(clientData),
			AttestationObject:  b64(attObjCBOR),
			AuthenticatorData:  b64(authData),
			Transports:         a.opts.Transports,
			PublicKey:          b64(spki),
			PublicKeyAlgorithm: int64(a.opts.Algorithm),
		},
		ClientExtensionResults:  ext,
		AuthenticatorAttachment: a.opts.Attachment,
	}, nil
}

// Assert answers navigator.credentials.get(): it takes the JSON of the request options
// (protocol.CredentialAssertion, {"publicKey":{...}}, or the bare
// PublicKeyCredentialRequestOptions), picks a credential it holds (the first one in
// allowCredentials, or a discoverable one for the RP when the list is empty),
// increments its counter, signs and returns the JSON a browser posts to the server.
func (a *Authenticator) Assert(requestOptionsJSON []byte, origin string, opts AssertOptions) (responseJSON []byte, err error) {
	var o requestOptions
	if err = decodeOptions(requestOptionsJSON, &o); err != nil {
		return nil, err
	}

	rpID, err := rpIDOr(o.RPID, origin)
	if err != nil {
		return nil, err
	}

	a.mu.Lock()
	defer a.mu.Unlock()

	c := a.pick(&o, rpID, opts)
	if c == nil {
		return nil, ErrNoCredential
	}

	hashedID, ext, err := hashedRPID(&o, rpID, opts)
	if err != nil {
		return nil, err
	}

	uv, count := a.uvAndCount(c, opts)

	clientData, err := assertionClientData(&o, origin, opts)
	if err != nil {
		return nil, err
	}

	authData := a.authData(sha256.Sum256([]byte(hashedID)), uv, count)

	resp, err := signedAssertion(c.ID, c.signer, c.Alg, authData, clientData, ext, a.opts.Attachment)
	if err != nil {
		return nil, err
	}

	if c.Discoverable {
		resp.Response.UserHandle = b64(c.UserHandle)
	}

	if responseJSON, err = json.Marshal(resp); err != nil {
		return nil, fmt.Errorf("softauthn: encode response: %w", err)
	}

	c.SignCount = count

	return responseJSON, nil
}

// pick chooses the credential to assert with: the one opts names, else the first
// held one allowCredentials lists for the RP (or, with UseAppID, for the request's
// AppID), else with an empty list the first discoverable one for the RP. The caller
// holds a.mu.
func (a *Authenticator) pick(o *requestOptions, rpID string, opts AssertOptions) *heldCredential {
	switch {
	case opts.CredentialID != nil:
		return a.find(opts.CredentialID)
	case len(o.AllowCredentials) > 0:
		for _, d := range o.AllowCredentials {
			if h := a.find(d.ID); h != nil && (h.RPID == rpID || (opts.UseAppID && h.RPID == o.Extensions.AppID)) {
				return h
			}
		}
	default:
		for _, h := range a.creds {
			if h.Discoverable && h.RPID == rpID {
				return h
			}
		}
	}

	return nil
}

// hashedRPID returns the id whose SHA-256 goes into the authenticator data (the RP
// ID, opts.RPID, or with UseAppID the request's AppID) and the client extension
// results (appid, when the request carries the extension).
func hashedRPID(o *requestOptions, rpID string, opts AssertOptions) (string, map[string]any, error) {
	hashedID := rpID
	if opts.RPID != "" {
		hashedID = opts.RPID
	}

	ext := map[string]any{}

	if o.Extensions.AppID != "" {
		ext["appid"] = opts.UseAppID
	}

	if opts.UseAppID {
		if o.Extensions.AppID == "" {
			return "", nil, ErrNoAppID
		}

		hashedID = o.Extensions.AppID
	}

	return hashedID, ext, nil
}

// uvAndCount returns the UV flag and the signature counter of this assertion: the
// authenticator's UV and the credential's counter plus one, unless opts overrides them.
func (a *Authenticator) uvAndCount(c *heldCredential, opts AssertOptions) (bool, uint32) {
	uv := a.opts.UV
	if opts.UV != nil {
		uv = *opts.UV
	}

	count := c.SignCount + 1
	if opts.SignCount != nil {
		count = *opts.SignCount
	}

	return uv, count
}

// assertionClientData is the clientDataJSON of a get() from origin for the request's
// challenge, unless opts overrides the origin or the challenge.
func assertionClientData(o *requestOptions, origin string, opts AssertOptions) ([]byte, error) {
	if opts.Origin != "" {
		origin = opts.Origin
	}

	challenge := o.Challenge
	if opts.Challenge != nil {
		challenge = opts.Challenge
	}

	return marshalClientData("webauthn.get", challenge, origin)
}

// signedAssertion is the PublicKeyCredential of an assertion by credential id: it
// signs authData || SHA-256(clientData) with signer (§6.3.3 step 11).
func signedAssertion(id []byte, signer crypto.Signer, alg Alg, authData, clientData []byte, ext map[string]any, attachment string) (*assertionResponse, error) {
	clientDataHash := sha256.Sum256(clientData)

	sig, err := sign(signer, alg, concat(authData, clientDataHash[:]))
	if err != nil {
		return nil, err
	}

	return &assertionResponse{
		ID:    b64(id),
		RawID: b64(id),
		Type:  "public-key",
		Response: assertionResponseBody{
			ClientDataJSON:    b64(clientData),
			AuthenticatorData: b64(authData),
			Signature:         b64(sig),
		},
		ClientExtensionResults:  ext,
		AuthenticatorAttachment: attachment,
	}, nil
}

func (a *Authenticator) find(id []byte) *heldCredential {
	for _, c := range a.creds {
		if bytes.Equal(c.ID, id) {
			return c
		}
	}

	return nil
}

func (a *Authenticator) checkAlgorithm(params []credParam) error {
	if len(params) == 0 {
		// WebAuthn §5.1.3 step 10: an empty list means ES256 and RS256.
		if a.opts.Algorithm == ES256 {
			return nil
		}

		return ErrUnsupportedAlgorithm
	}

	for _, p := range params {
		if p.Type == "public-key" && p.Alg == int64(a.opts.Algorithm) {
			return nil
		}
	}

	return ErrUnsupportedAlgorithm
}

const (
	flagUP = 0x01
	flagUV = 0x04
	flagBE = 0x08
	flagBS = 0x10
	flagAT = 0x40
)

// authData returns rpIdHash || flags || signCount (WebAuthn §6.1).
func (a *Authenticator) authData(rpIDHash [32]byte, uv bool, count uint32) []byte {
	flags := byte(flagUP)

	if uv {
		flags |= flagUV
	}

	if a.opts.BackupEligible {
		flags |= flagBE
	}

	if a.opts.BackedUp {
		flags |= flagBS
	}

	out := make([]byte, 0, 37)
	out = append(out, rpIDHash[:]...)
	out = append(out, flags)

	return binary.BigEndian.AppendUint32(out, count)
}

func (a *Authenticator) newKey() (crypto.Signer, []byte, error) {
	switch a.opts.Algorithm {
	case EdDSA:
		pub, priv, err := ed25519.GenerateKey(a.rand)
		if err != nil {
			return nil, nil, fmt.Errorf("softauthn: generate Ed25519 key: %w", err)
		}

		cose, err := webauthncbor.Marshal(coseOKPKey{Kty: 1, Alg: int64(EdDSA), Curve: 6, X: pub})
		if err != nil {
			return nil, nil, fmt.Errorf("softauthn: encode COSE key: %w", err)
		}

		return priv, cose, nil
	default:
		priv, err := newP256Key(a.rand)
		if err != nil {
			return nil, nil, err
		}

		cose, err := coseES256(&priv.PublicKey)
		if err != nil {
			return nil, nil, err
		}

		return priv, cose, nil
	}
}

// newP256Key draws a P-256 private scalar from r (rejection sampling, FIPS 186-5
// §A.4.2), so that a deterministic r gives deterministic keys.
func newP256Key(r io.Reader) (*ecdsa.PrivateKey, error) {
	buf := make([]byte, 32)

	for range 64 {
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, fmt.Errorf("softauthn: generate P-256 key: %w", err)
		}

		if k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), buf); err == nil {
			return k, nil
		}
	}

	return nil, errors.New("softauthn: generate P-256 key: random source keeps yielding invalid scalars")
}

func coseES256(pub *ecdsa.PublicKey) ([]byte, error) {
	raw, err := pub.Bytes()
	if err != nil {
		return nil, fmt.Errorf("softauthn: encode P-256 key: %w", err)
	}

	cose, err := webauthncbor.Marshal(coseEC2Key{Kty: 2, Alg: int64(ES256), Curve: 1, X: raw[1:33], Y: raw[33:]})
	if err != nil {
		return nil, fmt.Errorf("softauthn: encode COSE key: %w", err)
	}

	return cose, nil
}

// sign makes a WebAuthn signature over msg: ES256 signs SHA-256(msg) and returns the
// DER encoding, EdDSA signs msg itself.
func sign(s crypto.Signer, alg Alg, msg []byte) ([]byte, error) {
	var (
		sig []byte
		err error
	)

	switch alg {
	case EdDSA:
		sig, err = s.Sign(nil, msg, crypto.Hash(0))
	default:
		digest := sha256.Sum256(msg)
		sig, err = s.Sign(rand.Reader, digest[:], crypto.SHA256)
	}

	if err != nil {
		return nil, fmt.Errorf("softauthn: sign: %w", err)
	}

	return sig, nil
}

// COSE_Key layouts (RFC 9052 §7); the CTAP2 encoder orders the integer keys canonically.
type coseEC2Key struct {
	Kty   int64  `cbor:"1,keyasint"`
	Alg   int64  `cbor:"3,keyasint"`
	Curve int64  `cbor:"-1,keyasint"`
	X     []byte `cbor:"-2,keyasint"`
	Y     []byte `cbor:"-3,keyasint"`
}

type coseOKPKey struct {
	Kty   int64  `cbor:"1,keyasint"`
	Alg   int64  `cbor:"3,keyasint"`
	Curve int64  `cbor:"-1,keyasint"`
	X     []byte `cbor:"-2,keyasint"`
}

// attestationObject is the §6.5.4 CBOR map {fmt, attStmt, authData}.
type attestationObject struct {
	Fmt      string `cbor:"fmt"`
	AttStmt  any    `cbor:"attStmt"`
	AuthData []byte `cbor:"authData"`
}

type packedStatement struct {
	Alg int64  `cbor:"alg"`
	Sig []byte `cbor:"sig"`
}

// clientData is CollectedClientData in the member order of §5.8.1.1.
type clientData struct {
	Type        string `json:"type"`
	Challenge   string `json:"challenge"`
	Origin      string `json:"origin"`
	CrossOrigin bool   `json:"crossOrigin"`
}

func marshalClientData(typ string, challenge []byte, origin string) ([]byte, error) {
	out, err := json.Marshal(clientData{Type: typ, Challenge: b64(challenge), Origin: origin})
	if err != nil {
		return nil, fmt.Errorf("softauthn: encode clientDataJSON: %w", err)
	}

	return out, nil
}

type registrationResponse struct {
	ID                      string              `json:"id"`
	RawID                   string              `json:"rawId"`
	Type                    string              `json:"type"`
	Response                attestationResponse `json:"response"`
	ClientExtensionResults  map[string]any      `json:"clientExtensionResults"`
	AuthenticatorAttachment string              `json:"authenticatorAttachment"`
}

type attestationResponse struct {
	ClientDataJSON     string   `json:"clientDataJSON"`
	AttestationObject  string   `json:"attestationObject"`
	AuthenticatorData  string   `json:"authenticatorData"`
	Transports         []string `json:"transports"`
	PublicKey          string   `json:"publicKey"`
	PublicKeyAlgorithm int64    `json:"publicKeyAlgorithm"`
}

type assertionResponse struct {
	ID                      string                `json:"id"`
	RawID                   string                `json:"rawId"`
	Type                    string                `json:"type"`
	Response                assertionResponseBody `json:"response"`
	ClientExtensionResults  map[string]any        `json:"clientExtensionResults"`
	AuthenticatorAttachment string                `json:"authenticatorAttachment"`
}

type assertionResponseBody struct {
	ClientDataJSON    string `json:"clientDataJSON"`
	AuthenticatorData string `json:"authenticatorData"`
	Signature         string `json:"signature"`
	UserHandle        string `json:"userHandle,omitempty"`
}

// Options as the browser receives them (PublicKeyCredentialCreationOptionsJSON and
// PublicKeyCredentialRequestOptionsJSON, WebAuthn Level 3 §5.1.8 and §5.1.9).

type creationOptions struct {
	RP struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"rp"`
	User struct {
		ID          b64Bytes `json:"id"`
		Name        string   `json:"name"`
		DisplayName string   `json:"displayName"`
	} `json:"user"`
	Challenge              b64Bytes     `json:"challenge"`
	PubKeyCredParams       []credParam  `json:"pubKeyCredParams"`
	ExcludeCredentials     []descriptor `json:"excludeCredentials"`
	AuthenticatorSelection struct {
		AuthenticatorAttachment string `json:"authenticatorAttachment"`
		ResidentKey             string `json:"residentKey"`
		RequireResidentKey      bool   `json:"requireResidentKey"`
		UserVerification        string `json:"userVerification"`
	} `json:"authenticatorSelection"`
	Attestation string     `json:"attestation"`
	Extensions  extensions `json:"extensions"`
}

type requestOptions struct {
	Challenge        b64Bytes     `json:"challenge"`
	RPID             string       `json:"rpId"`
	AllowCredentials []descriptor `json:"allowCredentials"`
	UserVerification string       `json:"userVerification"`
	Extensions       extensions   `json:"extensions"`
}

type credParam struct {
	Type string `json:"type"`
	Alg  int64  `json:"alg"`
}

type descriptor struct {
	Type       string   `json:"type"`
	ID         b64Bytes `json:"id"`
	Transports []string `json:"transports"`
}

type extensions struct {
	AppID     string `json:"appid"`
	CredProps bool   `json:"credProps"`
}

// decodeOptions reads options either wrapped as {"publicKey": {...}} (how go-webauthn
// marshals protocol.CredentialCreation and protocol.CredentialAssertion) or bare.
func decodeOptions(data []byte, v any) error {
	var wrapped struct {
		PublicKey json.RawMessage `json:"publicKey"`
	}

	if err := json.Unmarshal(data, &wrapped); err != nil {
		return fmt.Errorf("%w: %v", ErrOptions, err)
	}

	inner := data
	if len(wrapped.PublicKey) != 0 && !bytes.Equal(wrapped.PublicKey, []byte("null")) {
		inner = wrapped.PublicKey
	}

	if err := json.Unmarshal(inner, v); err != nil {
		return fmt.Errorf("%w: %v", ErrOptions, err)
	}

	return nil
}

// b64Bytes is a base64url JSON string; padding is tolerated.
type b64Bytes []byte

func (b *b64Bytes) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("expected a base64url string: %w", err)
	}

	out, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return fmt.Errorf("not base64url: %w", err)
	}

	*b = out

	return nil
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func concat(a, b []byte) []byte {
	out := make([]byte, 0, len(a)+len(b))

	return append(append(out, a...), b...)
}

// originHost is the default RP ID when the options name none: the origin's host
// (WebAuthn §5.1.3 step 8, §5.1.4.1 step 8).
func originHost(origin string) (string, error) {
	u, err := url.Parse(origin)
	if err != nil || u.Hostname() == "" {
		return "", fmt.Errorf("%w: no rpId in the options and origin %q has no host", ErrOptions, origin)
	}

	return u.Hostname(), nil
}
