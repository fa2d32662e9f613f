package webauthn

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"
	gowa "github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/uuid"

	"github.com/twofactor/twofactor/providers/webauthn/u2fkey"
	"github.com/twofactor/twofactor/storage"
)

// Method is the factor's method name in storage.
const Method = "webauthn"

// UserHandleBytes is the length of the random user handles (WebAuthn §14.6.1).
const UserHandleBytes = 64

// Errors of the provider. The server maps each to a verdict or a status.
var (
	// ErrMalformed: the browser's JSON cannot be parsed as a PublicKeyCredential.
	ErrMalformed = errors.New("not a PublicKeyCredential JSON")
	// ErrInvalidAssertion: the assertion failed a check (challenge, origin, RP ID
	// hash, user presence, signature, flags).
	ErrInvalidAssertion = errors.New("the assertion failed verification")
	// ErrInvalidAttestation: the registration response failed a check.
	ErrInvalidAttestation = errors.New("the registration response failed verification")
	// ErrUnknownCredential: the credential is not one of the user's or not one the
	// challenge allowed.
	ErrUnknownCredential = errors.New("the credential is not registered for this user or challenge")
	// ErrUserVerification: policy requires user verification and the authenticator
	// did not report it (flag UV).
	ErrUserVerification = errors.New("the authenticator did not verify the user")
	// ErrCloned: the signature counter did not grow; the credential may be cloned.
	ErrCloned = errors.New("the signature counter went backwards; the authenticator may be cloned")
	// ErrReplayed: this challenge was already accepted for the credential.
	ErrReplayed = errors.New("the assertion was already used")
	// ErrNoCredentials: the user has no active WebAuthn credential.
	ErrNoCredentials = errors.New("the user has no WebAuthn credential")
	// ErrNotPending: the enrollment is not pending (finished, removed or unknown).
	ErrNotPending = errors.New("the enrollment is not pending")
	// ErrEnrollmentExpired: the pending enrollment ran out of time; begin again.
	ErrEnrollmentExpired = errors.New("the enrollment expired; begin again")
	// ErrCredentialExists: the credential id is already registered.
	ErrCredentialExists = errors.New("the credential is already registered")
	// ErrAppID, ErrKeyHandle, ErrPublicKey: an imported U2F registration is invalid.
	ErrAppID     = errors.New("app_id must be an https URL (http only for localhost)")
	ErrKeyHandle = errors.New("the key handle must be 1 to 255 bytes")
	ErrPublicKey = errors.New("the public key must be a 65-byte uncompressed P-256 point")
)

// Config holds the relying-party settings. Zero values mean defaults.
type Config struct {
	// RPID is the relying party id, a registrable domain ("example.com"); default
	// "localhost".
	RPID string
	// RPDisplayName is shown by authenticators; default "twofactor".
	RPDisplayName string
	// RPOrigins are the origins ceremonies may come from: web origins
	// ("https://login.example.com") and native-app origins
	// ("android:apk-key-hash:…"); default "http://localhost:8080".
	RPOrigins []string
	// UserVerification is "preferred" (default), "required" or "discouraged".
	UserVerification string
	// Attestation is the conveyance preference: "none" (default), "indirect",
	// "direct" or "enterprise".
	Attestation string
	// Timeout is the ceremony timeout sent to the client, and how long a pending
	// registration lasts; default 5 minutes.
	Timeout time.Duration
	// MaxCredentials bounds a user's WebAuthn factors (passkeys, security
	// keys, imported U2F keys), active or being registered
	// (storage.CapError beyond it); 0 or less: the default, 32.
	MaxCredentials int
}

func (c Config) withDefaults() Config {
	if c.RPID == "" {
		c.RPID = "localhost"
	}
	if c.RPDisplayName == "" {
		c.RPDisplayName = "twofactor"
	}
	if len(c.RPOrigins) == 0 {
		c.RPOrigins = []string{"http://localhost:8080"}
	}
	if c.UserVerification == "" {
		c.UserVerification = string(protocol.VerificationPreferred)
	}
	if c.Attestation == "" {
		c.Attestation = string(protocol.PreferNoAttestation)
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Minute
	}
	if c.MaxCredentials <= 0 {
		c.MaxCredentials = 32
	}
	return c
}

// Policy is the part of the service policy this provider obeys.
type Policy struct {
	// RequireUserVerification refuses logins whose authenticator did not verify the
	// user (PIN, biometrics).
	RequireUserVerification bool
	// PasskeyCompleteLogin lets a discoverable credential with user verification count
	// as a complete login (Result.CompleteLogin), not only as the second factor.
	PasskeyCompleteLogin bool
}

// PolicySource supplies the current policy; a policy store implements it.
type PolicySource interface {
	WebAuthnPolicy(ctx context.Context) (Policy, error)
}

// StaticPolicy is a fixed policy.
type StaticPolicy Policy

// WebAuthnPolicy returns p.
func (p StaticPolicy) WebAuthnPolicy(context.Context) (Policy, error) { return Policy(p), nil }

// Store is what the provider needs of storage.
type Store interface {
	ActivateThen(ctx context.Context, userID, id string, activate func(ctx context.Context) (bool, error), notPending error,
		then func(ctx context.Context, f *storage.Factor) error) (*storage.Factor, error)
	CreateFactorWithin(ctx context.Context, f *storage.Factor, limit int, now time.Time) error
	GetFactor(ctx context.Context, userID, id string) (*storage.Factor, error)
	GetFactorByCredentialID(ctx context.Context, credentialID []byte) (*storage.Factor, error)
	ListFactors(ctx context.Context, userID, method, state string) ([]storage.Factor, error)
	DeleteFactor(ctx context.Context, userID, id string) error
	ActivateFactorWithData(ctx context.Context, userID, id string, now time.Time, data, credentialID []byte) (bool, error)
	SwapFactorData(ctx context.Context, factorID string, old, data []byte, now time.Time, used bool) (bool, error)
	EnsureWebAuthnUser(ctx context.Context, userID string, candidate []byte, now time.Time) ([]byte, error)
}

// Provider enrolls and verifies WebAuthn factors. It is safe for concurrent use and
// keeps no state of its own.
type Provider struct {
	store  Store
	cfg    Config
	policy PolicySource
	wa     *gowa.WebAuthn
	now    func() time.Time
	rand   io.Reader
}

// New returns a Provider. policy nil means StaticPolicy{}; now and rnd nil mean
// time.Now and crypto/rand.
func New(store Store, cfg Config, policy PolicySource, now func() time.Time, rnd io.Reader) (*Provider, error) {
	cfg = cfg.withDefaults()
	switch protocol.UserVerificationRequirement(cfg.UserVerification) {
	case protocol.VerificationRequired, protocol.VerificationPreferred, protocol.VerificationDiscouraged:
	default:
		return nil, fmt.Errorf("webauthn user verification %q: want required, preferred or discouraged", cfg.UserVerification)
	}
	switch protocol.ConveyancePreference(cfg.Attestation) {
	case protocol.PreferNoAttestation, protocol.PreferIndirectAttestation, protocol.PreferDirectAttestation, protocol.PreferEnterpriseAttestation:
	default:
		return nil, fmt.Errorf("webauthn attestation %q: want none, indirect, direct or enterprise", cfg.Attestation)
	}
	if cfg.Timeout < 30*time.Second || cfg.Timeout > time.Hour {
		return nil, fmt.Errorf("webauthn timeout %s: want 30s to 1h", cfg.Timeout)
	}
	if err := protocol.ValidateRPID(cfg.RPID); err != nil {
		return nil, fmt.Errorf("webauthn rp id %q: %v", cfg.RPID, err)
	}
	var web, opaque []string
	for _, o := range cfg.RPOrigins {
		if o == "" {
			return nil, errors.New("webauthn origins: empty origin")
		}
		if protocol.IsOpaqueOrigin(o) {
			opaque = append(opaque, o)
		} else {
			web = append(web, o)
		}
	}
	if len(web) == 0 {
		return nil, errors.New("webauthn origins: at least one http(s) origin is required")
	}
	timeouts := gowa.TimeoutConfig{Timeout: cfg.Timeout, TimeoutUVD: cfg.Timeout}
	wa, err := gowa.New(&gowa.Config{
		RPID:                  cfg.RPID,
		RPDisplayName:         cfg.RPDisplayName,
		RPOrigins:             web,
		RPOpaqueOrigins:       opaque,
		AttestationPreference: protocol.ConveyancePreference(cfg.Attestation),
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			UserVerification: protocol.UserVerificationRequirement(cfg.UserVerification),
		},
		// Expiry is the store's job (challenge and pending-factor rows, with the
		// injected clock); go-webauthn would read the wall clock.
		Timeouts: gowa.TimeoutsConfig{Login: timeouts, Registration: timeouts},
	})
	if err != nil {
		return nil, fmt.Errorf("webauthn config: %w", err)
	}
	if policy == nil {
		policy = StaticPolicy{}
	}
	if now == nil {
		now = time.Now
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	return &Provider{store: store, cfg: cfg, policy: policy, wa: wa, now: now, rand: rnd}, nil
}

// Config returns the settings in force, defaults filled in.
func (p *Provider) Config() Config { return p.cfg }

// Record is an active factor's Data: the go-webauthn credential record and what this
// service adds to it.
type Record struct {
	Credential   gowa.Credential `json:"credential"`
	Algorithm    int64           `json:"alg"`
	Discoverable bool            `json:"discoverable"`
	// AppID is set for a legacy U2F key: it signs over SHA-256(AppID).
	AppID string `json:"appid,omitempty"`
	// LastChallenge is the challenge of the last accepted assertion.
	LastChallenge string `json:"last_challenge,omitempty"`
}

// pending is a pending factor's Data: the registration ceremony's session.
type pending struct {
	Pending      bool             `json:"pending"`
	Session      gowa.SessionData `json:"session"`
	Discoverable bool             `json:"discoverable"`
	RequireUV    bool             `json:"require_uv"`
}

// loginSession is a challenge's Session.
type loginSession struct {
	UserID    string           `json:"user_id,omitempty"` // empty: discoverable login
	Session   gowa.SessionData `json:"session"`
	RequireUV bool             `json:"require_uv"`
}

// ParseRecord reads an active factor's Data.
func ParseRecord(data []byte) (*Record, error) {
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("webauthn record: %w", err)
	}
	if len(r.Credential.ID) == 0 || len(r.Credential.PublicKey) == 0 {
		return nil, errors.New("webauthn record: no credential")
	}
	return &r, nil
}

// Details are the non-secret facts about a credential, for listing.
type Details struct {
	CredentialID      []byte
	AAGUID            string // UUID form; empty when the authenticator sent none
	Transports        []string
	AttestationFormat string
	SignCount         uint32
	BackupEligible    bool
	BackedUp          bool
	Discoverable      bool
	LegacyU2F         bool
	CloneWarning      bool
	Algorithm         int64
}

// FactorDetails describes an active WebAuthn factor; ok is false for a pending one
// or another method.
func FactorDetails(f *storage.Factor) (d Details, ok bool) {
	if f.Method != Method || f.State != storage.FactorActive {
		return d, false
	}
	r, err := ParseRecord(f.Data)
	if err != nil {
		return d, false
	}
	c := r.Credential
	d = Details{
		CredentialID:      c.ID,
		AttestationFormat: c.AttestationFormat,
		SignCount:         c.Authenticator.SignCount,
		BackupEligible:    c.Flags.BackupEligible,
		BackedUp:          c.Flags.BackupState,
		Discoverable:      r.Discoverable,
		LegacyU2F:         r.AppID != "",
		CloneWarning:      c.Authenticator.CloneWarning,
		Algorithm:         r.Algorithm,
	}
	if id, err := uuid.FromBytes(c.Authenticator.AAGUID); err == nil {
		d.AAGUID = id.String()
	}
	for _, t := range c.Transport {
		d.Transports = append(d.Transports, string(t))
	}
	return d, true
}

// user is the webauthn.User of one backend user: its random handle and credentials.
type user struct {
	handle      []byte
	name, shown string
	creds       []gowa.Credential
}

func (u *user) WebAuthnID() []byte                     { return u.handle }
func (u *user) WebAuthnName() string                   { return u.name }
func (u *user) WebAuthnDisplayName() string            { return u.shown }
func (u *user) WebAuthnCredentials() []gowa.Credential { return u.creds }

// handle returns the user's WebAuthn user handle, creating it on first use.
func (p *Provider) handle(ctx context.Context, userID string) ([]byte, error) {
	candidate := make([]byte, UserHandleBytes)
	if _, err := io.ReadFull(p.rand, candidate); err != nil {
		return nil, fmt.Errorf("webauthn user handle: %w", err)
	}
	return p.store.EnsureWebAuthnUser(ctx, userID, candidate, p.now().UTC())
}

// active lists the user's active WebAuthn factors with their records.
func (p *Provider) active(ctx context.Context, userID string) ([]storage.Factor, []*Record, error) {
	fs, err := p.store.ListFactors(ctx, userID, Method, storage.FactorActive)
	if err != nil {
		return nil, nil, err
	}
	recs := make([]*Record, len(fs))
	for i := range fs {
		if recs[i], err = ParseRecord(fs[i].Data); err != nil {
			return nil, nil, fmt.Errorf("factor %s: %w", fs[i].ID, err)
		}
	}
	return fs, recs, nil
}

// BeginRegistration creates a pending factor and returns it with the
// PublicKeyCredentialCreationOptions JSON to hand to
// PublicKeyCredential.parseCreationOptionsFromJSON. The user's active credentials
// are excluded. discoverable asks for a passkey (residentKey "required").
func (p *Provider) BeginRegistration(ctx context.Context, userID, userName, displayName, name string, discoverable bool) (*storage.Factor, []byte, error) {
	if userName == "" {
		userName = userID
	}
	if displayName == "" {
		displayName = userName
	}
	if name == "" {
		name = "Security key"
		if discoverable {
			name = "Passkey"
		}
	}
	pol, err := p.policy.WebAuthnPolicy(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("webauthn policy: %w", err)
	}
	h, err := p.handle(ctx, userID)
	if err != nil {
		return nil, nil, err
	}
	fs, recs, err := p.active(ctx, userID)
	if err != nil {
		return nil, nil, err
	}
	var exclude []protocol.CredentialDescriptor
	appID := ""
	for i := range fs {
		exclude = append(exclude, recs[i].Credential.Descriptor())
		if recs[i].AppID != "" && appID == "" {
			appID = recs[i].AppID
		}
	}
	uv := protocol.UserVerificationRequirement(p.cfg.UserVerification)
	if pol.RequireUserVerification {
		uv = protocol.VerificationRequired
	}
	rk := protocol.ResidentKeyRequirementDiscouraged
	if discoverable {
		rk = protocol.ResidentKeyRequirementRequired
	}
	opts := []gowa.RegistrationOption{
		gowa.WithExclusions(exclude),
		gowa.WithAuthenticatorSelection(protocol.AuthenticatorSelection{UserVerification: uv}),
		gowa.WithResidentKeyRequirement(rk),
		gowa.WithExtensions(gowa.WithExtensionCredProps()),
	}
	if appID != "" {
		opts = append(opts, gowa.WithExtensions(gowa.WithExtensionAppIDExclude(appID)))
	}
	u := &user{handle: h, name: userName, shown: displayName}
	creation, session, err := p.wa.BeginRegistration(u, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("webauthn begin registration: %w", err)
	}
	optionsJSON, err := json.Marshal(creation.Response)
	if err != nil {
		return nil, nil, fmt.Errorf("webauthn creation options: %w", err)
	}
	data, err := json.Marshal(pending{Pending: true, Session: *session, Discoverable: discoverable, RequireUV: uv == protocol.VerificationRequired})
	if err != nil {
		return nil, nil, err
	}
	now := p.now().UTC()
	exp := now.Add(p.cfg.Timeout)
	f := &storage.Factor{
		ID: uuid.NewString(), UserID: userID, Method: Method, Name: name, State: storage.FactorPending,
		Data: data, ExpiresAt: &exp, CreatedAt: now, UpdatedAt: now,
	}
	if err := p.store.CreateFactorWithin(ctx, f, p.cfg.MaxCredentials, now); err != nil {
		return nil, nil, err
	}
	return f, optionsJSON, nil
}

// FinishRegistration verifies the browser's registration response (the
// PublicKeyCredential as JSON) against the pending factor's session and activates
// the factor with the new credential. The pending enrollment is used up either way:
// after a refusal the user begins again.
func (p *Provider) FinishRegistration(ctx context.Context, userID, factorID string, responseJSON []byte) (*storage.Factor, error) {
	return p.FinishRegistrationThen(ctx, userID, factorID, responseJSON, nil)
}

// FinishRegistrationThen is FinishRegistration running then, when not nil, in
// the transaction that activates the factor, with the active factor: an error
// from then undoes the activation (the enrollment stays pending) and is returned.
func (p *Provider) FinishRegistrationThen(ctx context.Context, userID, factorID string, responseJSON []byte, then func(ctx context.Context, f *storage.Factor) error) (*storage.Factor, error) {
	f, err := p.store.GetFactor(ctx, userID, factorID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrNotPending
	}
	if err != nil {
		return nil, err
	}
	if f.Method != Method || f.State != storage.FactorPending {
		return nil, ErrNotPending
	}
	now := p.now().UTC()
	if f.ExpiresAt != nil && !now.Before(*f.ExpiresAt) {
		_ = p.store.DeleteFactor(ctx, userID, factorID)
		return nil, ErrEnrollmentExpired
	}
	var pd pending
	if err := json.Unmarshal(f.Data, &pd); err != nil || !pd.Pending {
		return nil, fmt.Errorf("factor %s: pending data unreadable", f.ID)
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(responseJSON)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrMalformed, describe(err))
	}
	h, err := p.handle(ctx, userID)
	if err != nil {
		return nil, err
	}
	session := pd.Session
	if pd.RequireUV {
		// Checked below, so that a missing UV flag gets its own answer.
		session.UserVerification = protocol.VerificationPreferred
	}
	cred, err := p.wa.CreateCredential(&user{handle: h}, session, parsed)
	if err != nil {
		_ = p.store.DeleteFactor(ctx, userID, factorID)
		return nil, fmt.Errorf("%w: %s", ErrInvalidAttestation, describe(err))
	}
	if pd.RequireUV && !parsed.Response.AttestationObject.AuthData.Flags.HasUserVerified() {
		_ = p.store.DeleteFactor(ctx, userID, factorID)
		return nil, ErrUserVerification
	}
	alg := int64(0)
	if key, err := webauthncose.ParsePublicKey(cred.PublicKey); err == nil {
		switch k := key.(type) {
		case webauthncose.EC2PublicKeyData:
			alg = k.Algorithm
		case webauthncose.OKPPublicKeyData:
			alg = k.Algorithm
		case webauthncose.RSAPublicKeyData:
			alg = k.Algorithm
		}
	}
	rec := Record{Credential: *cred, Algorithm: alg, Discoverable: pd.Discoverable}
	if rk := cred.Extensions.RK; rk != nil {
		rec.Discoverable = *rk
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	if other, err := p.store.GetFactorByCredentialID(ctx, cred.ID); err == nil && other.ID != f.ID {
		_ = p.store.DeleteFactor(ctx, userID, factorID)
		return nil, ErrCredentialExists
	}
	active, err := p.store.ActivateThen(ctx, userID, factorID, func(ctx context.Context) (bool, error) {
		return p.store.ActivateFactorWithData(ctx, userID, factorID, now, data, cred.ID)
	}, ErrNotPending, then)
	if errors.Is(err, storage.ErrDuplicate) {
		// After the activation's transaction: on PostgreSQL the failed INSERT
		// ended it.
		_ = p.store.DeleteFactor(ctx, userID, factorID)
		return nil, ErrCredentialExists
	}
	if err != nil {
		return nil, err
	}
	return active, nil
}

// ImportU2F stores a key registered through the legacy FIDO U2F API — its AppID,
// key handle and raw 65-byte P-256 public key, and the last counter the old relying
// party saw — as an active factor that logs in through the appid extension
// (WebAuthn §10.1.1). A browser honours the AppID only for origins it is valid for
// (FIDO AppID and Facet Specification §3.1.2), which this service cannot check.
func (p *Provider) ImportU2F(ctx context.Context, userID, appID string, keyHandle, publicKey []byte, counter uint32, name string) (*storage.Factor, error) {
	if err := checkAppID(appID); err != nil {
		return nil, err
	}
	cred, err := u2fkey.ImportCredential(keyHandle, publicKey, counter)
	switch {
	case errors.Is(err, u2fkey.ErrKeyHandle):
		return nil, fmt.Errorf("%w, got %d", ErrKeyHandle, len(keyHandle))
	case err != nil:
		return nil, ErrPublicKey
	}
	if name == "" {
		name = "Security key (U2F)"
	}
	if _, err := p.handle(ctx, userID); err != nil {
		return nil, err
	}
	data, err := json.Marshal(Record{Credential: cred, Algorithm: int64(webauthncose.AlgES256), AppID: appID})
	if err != nil {
		return nil, err
	}
	now := p.now().UTC()
	f := &storage.Factor{
		ID: uuid.NewString(), UserID: userID, Method: Method, Name: name, State: storage.FactorActive,
		CredentialID: cred.ID, Data: data, CreatedAt: now, UpdatedAt: now,
	}
	if _, err := p.store.GetFactorByCredentialID(ctx, cred.ID); err == nil {
		return nil, ErrCredentialExists
	}
	if err := p.store.CreateFactorWithin(ctx, f, p.cfg.MaxCredentials, now); err != nil {
		if storage.IsDuplicate(err) {
			return nil, ErrCredentialExists
		}
		return nil, err
	}
	return f, nil
}

func checkAppID(appID string) error {
	u, err := url.Parse(appID)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" {
		return ErrAppID
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && (u.Hostname() == "localhost" || strings.HasSuffix(u.Hostname(), ".localhost")):
	default:
		return ErrAppID
	}
	return nil
}

// BeginLogin prepares an assertion for the user's active credentials (or the one
// factor factorID names). It returns the session to store with the challenge and the
// PublicKeyCredentialRequestOptions JSON for
// PublicKeyCredential.parseRequestOptionsFromJSON. When a legacy U2F key is among
// them, the options carry its AppID in the appid extension (one AppID per request:
// that of the first such key).
func (p *Provider) BeginLogin(ctx context.Context, userID, factorID string) (session, optionsJSON []byte, err error) {
	fs, recs, err := p.active(ctx, userID)
	if err != nil {
		return nil, nil, err
	}
	var creds []gowa.Credential
	appID := ""
	for i := range fs {
		if factorID != "" && fs[i].ID != factorID {
			continue
		}
		creds = append(creds, recs[i].Credential)
		if recs[i].AppID != "" && appID == "" {
			appID = recs[i].AppID
		}
	}
	if len(creds) == 0 {
		return nil, nil, ErrNoCredentials
	}
	h, err := p.handle(ctx, userID)
	if err != nil {
		return nil, nil, err
	}
	return p.beginLogin(ctx, userID, &user{handle: h, creds: creds}, appID)
}

// BeginDiscoverableLogin prepares a passkey login that starts without a user: the
// request has an empty allowCredentials and the user is found from the credential.
func (p *Provider) BeginDiscoverableLogin(ctx context.Context) (session, optionsJSON []byte, err error) {
	return p.beginLogin(ctx, "", nil, "")
}

func (p *Provider) beginLogin(ctx context.Context, userID string, u *user, appID string) ([]byte, []byte, error) {
	pol, err := p.policy.WebAuthnPolicy(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("webauthn policy: %w", err)
	}
	uv := protocol.UserVerificationRequirement(p.cfg.UserVerification)
	if pol.RequireUserVerification {
		uv = protocol.VerificationRequired
	}
	opts := []gowa.LoginOption{gowa.WithUserVerification(uv)}
	if appID != "" {
		opts = append(opts, gowa.WithAppIdExtension(appID))
	}
	var (
		assertion *protocol.CredentialAssertion
		session   *gowa.SessionData
	)
	if u == nil {
		assertion, session, err = p.wa.BeginDiscoverableLogin(opts...)
	} else {
		assertion, session, err = p.wa.BeginLogin(u, opts...)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("webauthn begin login: %w", err)
	}
	optionsJSON, err := json.Marshal(assertion.Response)
	if err != nil {
		return nil, nil, err
	}
	sessionJSON, err := json.Marshal(loginSession{UserID: userID, Session: *session, RequireUV: uv == protocol.VerificationRequired})
	if err != nil {
		return nil, nil, err
	}
	return sessionJSON, optionsJSON, nil
}

// Result describes a verified (or refused, when the credential was identified)
// assertion.
type Result struct {
	// UserID is the backend user the credential belongs to.
	UserID string
	// Factor is the factor of the credential, after the update on success.
	Factor *storage.Factor
	// UserVerified reports the UV flag.
	UserVerified bool
	// Discoverable reports a passkey; Usernameless a login begun without a user.
	Discoverable, Usernameless bool
	// CompleteLogin: policy lets this passkey login stand in for the password too.
	CompleteLogin bool
	// LegacyU2F: the credential is an imported U2F key, verified through the AppID.
	LegacyU2F bool
	// StoredSignCount and SignCount are the counter before and in this assertion
	// (for the audit record of a regression).
	StoredSignCount, SignCount uint32
}

// maxSwaps bounds the compare-and-set retries of one counter update.
const maxSwaps = 8

// FinishLogin verifies an assertion (the browser's PublicKeyCredential as JSON)
// against the session BeginLogin or BeginDiscoverableLogin returned, and on success
// stores the new signature counter. userID is the challenge's user ("" for a
// discoverable login). Errors: ErrMalformed, ErrUnknownCredential,
// ErrInvalidAssertion, ErrUserVerification, ErrCloned, ErrReplayed; with the last
// three, and on success, the Result names the user and factor.
//
// The caller must consume the challenge itself exactly once; FinishLogin only
// guarantees that one challenge advances a credential once.
func (p *Provider) FinishLogin(ctx context.Context, sessionJSON []byte, userID string, assertionJSON []byte) (*Result, error) {
	ls, parsed, err := readLogin(sessionJSON, userID, assertionJSON)
	if err != nil {
		return nil, err
	}
	f, err := p.loginFactor(ctx, ls, []byte(parsed.RawID))
	if err != nil {
		return nil, err
	}
	rec, err := ParseRecord(f.Data)
	if err != nil {
		return nil, fmt.Errorf("factor %s: %w", f.ID, err)
	}
	pol, err := p.policy.WebAuthnPolicy(ctx)
	if err != nil {
		return nil, fmt.Errorf("webauthn policy: %w", err)
	}
	requireUV := ls.RequireUV || pol.RequireUserVerification
	res := &Result{
		UserID: f.UserID, Factor: f, Discoverable: rec.Discoverable, Usernameless: ls.UserID == "",
		LegacyU2F: rec.AppID != "", StoredSignCount: rec.Credential.Authenticator.SignCount,
		SignCount: parsed.Response.AuthenticatorData.Counter,
	}
	cred, err := p.validateAssertion(ctx, ls, f.UserID, rec, parsed, requireUV)
	if err != nil {
		return nil, err
	}
	if rec.Credential.Authenticator.CloneWarning {
		return res, ErrCloned
	}
	res.UserVerified = parsed.Response.AuthenticatorData.Flags.HasUserVerified()
	if requireUV && !res.UserVerified {
		return res, ErrUserVerification
	}
	return p.advanceCounter(ctx, res, ls.Session.Challenge, rec, cred.Flags, pol.PasskeyCompleteLogin)
}

// readLogin reads the stored login session, checks it is the user's, and parses the
// browser's assertion.
func readLogin(sessionJSON []byte, userID string, assertionJSON []byte) (*loginSession, *protocol.ParsedCredentialAssertionData, error) {
	var ls loginSession
	if err := json.Unmarshal(sessionJSON, &ls); err != nil {
		return nil, nil, fmt.Errorf("webauthn session unreadable: %w", err)
	}
	if ls.UserID != userID {
		return nil, nil, errors.New("webauthn session belongs to another user")
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(assertionJSON)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s", ErrMalformed, describe(err))
	}
	return &ls, parsed, nil
}

// loginFactor finds the active factor of the credential rawID: among the session
// user's, and allowed by this challenge; or, for a discoverable login, by its id.
func (p *Provider) loginFactor(ctx context.Context, ls *loginSession, rawID []byte) (*storage.Factor, error) {
	if ls.UserID == "" {
		f, err := p.store.GetFactorByCredentialID(ctx, rawID)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
		if f == nil || f.Method != Method || f.State != storage.FactorActive {
			return nil, ErrUnknownCredential
		}
		return f, nil
	}
	if !slices.ContainsFunc(ls.Session.AllowedCredentialIDs, func(id []byte) bool { return string(id) == string(rawID) }) {
		return nil, ErrUnknownCredential
	}
	fs, err := p.store.ListFactors(ctx, ls.UserID, Method, storage.FactorActive)
	if err != nil {
		return nil, err
	}
	for i := range fs {
		if string(fs[i].CredentialID) == string(rawID) {
			return &fs[i], nil
		}
	}
	return nil, ErrUnknownCredential
}

// validateAssertion has go-webauthn check the assertion (challenge, origin, RP ID
// hash, user presence, signature) against the credential rec of ownerID. With
// requireUV the UV flag is left to the caller, so that a missing flag on an
// otherwise valid assertion gets its own answer.
func (p *Provider) validateAssertion(ctx context.Context, ls *loginSession, ownerID string, rec *Record,
	parsed *protocol.ParsedCredentialAssertionData, requireUV bool) (*gowa.Credential, error) {
	h, err := p.handle(ctx, ownerID)
	if err != nil {
		return nil, err
	}
	u := &user{handle: h, creds: []gowa.Credential{rec.Credential}}
	session := ls.Session
	if requireUV {
		session.UserVerification = protocol.VerificationPreferred
	}
	var cred *gowa.Credential
	if ls.UserID == "" {
		cred, err = p.wa.ValidateDiscoverableLogin(func(_, _ []byte) (gowa.User, error) { return u, nil }, session, parsed)
	} else {
		session.AllowedCredentialIDs = [][]byte{[]byte(parsed.RawID)}
		cred, err = p.wa.ValidateLogin(u, session, parsed)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalidAssertion, describe(err))
	}
	return cred, nil
}

// advanceCounter stores the assertion's counter (res.SignCount) and challenge in
// res.Factor by compare-and-set; on a lost race it reloads the factor and judges
// the counter against what the winner stored. rec is the record res.Factor holds;
// flags are the credential flags of this assertion; passkeyComplete is the policy's
// PasskeyCompleteLogin.
func (p *Provider) advanceCounter(ctx context.Context, res *Result, challenge string, rec *Record,
	flags gowa.CredentialFlags, passkeyComplete bool) (*Result, error) {
	f := res.Factor
	data := f.Data
	for range maxSwaps {
		if rec.Credential.Authenticator.CloneWarning {
			return res, ErrCloned
		}
		if rec.LastChallenge == challenge {
			return res, ErrReplayed
		}
		next := *rec
		next.Credential.Authenticator.UpdateCounter(res.SignCount)
		regressed := next.Credential.Authenticator.CloneWarning
		if !regressed {
			next.Credential.Flags = flags
			next.LastChallenge = challenge
		}
		newData, err := json.Marshal(next)
		if err != nil {
			return nil, err
		}
		now := p.now().UTC()
		won, err := p.store.SwapFactorData(ctx, f.ID, data, newData, now, !regressed)
		if err != nil {
			return nil, err
		}
		if won {
			res.StoredSignCount = rec.Credential.Authenticator.SignCount
			f.Data = newData
			if regressed {
				return res, ErrCloned
			}
			f.LastUsedAt = &now
			res.CompleteLogin = passkeyComplete && rec.Discoverable && res.UserVerified
			return res, nil
		}
		if f, err = p.store.GetFactor(ctx, f.UserID, f.ID); err != nil || f.State != storage.FactorActive {
			return nil, ErrUnknownCredential // removed meanwhile
		}
		res.Factor = f
		data = f.Data
		if rec, err = ParseRecord(data); err != nil {
			return nil, fmt.Errorf("factor %s: %w", f.ID, err)
		}
	}
	return nil, fmt.Errorf("factor %s: counter update kept losing to concurrent logins", f.ID)
}

// describe is go-webauthn's short reason for a refusal (its Details, never DevInfo,
// which can echo challenges).
func describe(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		if pe.Details != "" {
			return pe.Details
		}
		return pe.Type
	}
	return "unparseable"
}
