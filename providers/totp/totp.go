// Package totp implements time-based one-time passwords (RFC 6238) as a second
// factor, with github.com/pquerna/otp computing the codes.
//
// Security properties:
//
//   - Seeds are 160 bits from crypto/rand (RFC 4226 §4 R6, "the length of the shared
//     secret MUST be at least 128 bits … RECOMMENDED 160 bits") and are kept only
//     sealed by the storage key ring; they are shown once, at enrollment.
//   - A factor is active only after the user proves one code (RFC 6238 §5.1 says the
//     verifier should confirm the prover has the key). Wrong proofs of a pending
//     enrollment are counted and the enrollment dies after a few.
//   - Every code is accepted at most once: the last accepted time step is stored per
//     factor and only a later step is accepted, decided by one conditional UPDATE
//     (RFC 6238 §5.2: "the verifier MUST NOT accept the second attempt of the same
//     OTP after the successful validation has been issued for the first OTP").
//   - The accepted window is the current step ± Skew steps (RFC 6238 §5.2 and §6,
//     default one step each way). All candidate codes in the window are compared in
//     constant time, with no early exit.
package totp

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"

	"github.com/twofactor/twofactor/storage"
)

// Method is the factor's method name in storage.
const Method = "totp"

// SeedBytes is the seed length: 160 bits (RFC 4226 §4).
const SeedBytes = 20

var (
	// ErrMalformed: the code is not a string of the configured number of digits.
	ErrMalformed = errors.New("code must be digits only (spaces and dashes allowed)")
	// ErrWrongCode: no code in the accepted window matches.
	ErrWrongCode = errors.New("wrong code")
	// ErrReplayed: the code matches but its time step was already used.
	ErrReplayed = errors.New("code already used")
	// ErrSuperseded: VerifyFrom's challenge is used up, because the factor accepted
	// a code (this challenge's or another's) since it began.
	ErrSuperseded = errors.New("the factor was used since the challenge began")
	// ErrNotPending: the enrollment is not pending (already active, expired or gone).
	ErrNotPending = errors.New("enrollment is not pending")
	// ErrEnrollmentExpired: the pending enrollment ran out of time or attempts.
	ErrEnrollmentExpired = errors.New("enrollment expired; begin again")
)

// Config holds the TOTP settings. The zero value of a field means its default.
type Config struct {
	Issuer string // shown by authenticator apps; default "twofactor"
	// Algorithm is SHA1 (default, what every app supports), SHA256 or SHA512.
	Algorithm otp.Algorithm
	Digits    otp.Digits // 6 (default) or 8
	Period    uint       // seconds per step; default 30
	// Skew is how many steps before and after the current one are accepted.
	// Default 1; Nextcloud accepts 3. Set SkewSet to use 0.
	Skew    uint
	SkewSet bool
	// EnrollmentTTL is how long a pending enrollment waits for its proof; default 10 min.
	EnrollmentTTL time.Duration
	// MaxEnrollAttempts wrong proofs end a pending enrollment; default 5.
	MaxEnrollAttempts int
	// MaxFactors bounds a user's TOTP factors, active or being enrolled
	// (storage.CapError beyond it); 0 or less: the default, 16.
	MaxFactors int
}

func (c Config) withDefaults() Config {
	if c.Issuer == "" {
		c.Issuer = "twofactor"
	}
	if c.Digits == 0 {
		c.Digits = otp.DigitsSix
	}
	if c.Period == 0 {
		c.Period = 30
	}
	if c.Skew == 0 && !c.SkewSet {
		c.Skew = 1
	}
	if c.EnrollmentTTL == 0 {
		c.EnrollmentTTL = 10 * time.Minute
	}
	if c.MaxEnrollAttempts == 0 {
		c.MaxEnrollAttempts = 5
	}
	if c.MaxFactors <= 0 {
		c.MaxFactors = 16
	}
	return c
}

// Validate reports a setting that cannot work.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch c.Algorithm {
	case otp.AlgorithmSHA1, otp.AlgorithmSHA256, otp.AlgorithmSHA512:
	default:
		return fmt.Errorf("totp algorithm %d: want SHA1, SHA256 or SHA512", c.Algorithm)
	}
	if c.Digits != otp.DigitsSix && c.Digits != otp.DigitsEight {
		return fmt.Errorf("totp digits %d: want 6 or 8", c.Digits)
	}
	if c.Period < 10 || c.Period > 300 {
		return fmt.Errorf("totp period %ds: want 10 to 300 seconds", c.Period)
	}
	if c.Skew > 10 {
		return fmt.Errorf("totp skew %d: want at most 10 steps", c.Skew)
	}
	return nil
}

// ParseAlgorithm maps "SHA1", "SHA256", "SHA512" (any case) to an otp.Algorithm.
func ParseAlgorithm(s string) (otp.Algorithm, error) {
	switch strings.ToUpper(strings.ReplaceAll(s, "-", "")) {
	case "SHA1", "":
		return otp.AlgorithmSHA1, nil
	case "SHA256":
		return otp.AlgorithmSHA256, nil
	case "SHA512":
		return otp.AlgorithmSHA512, nil
	}
	return 0, fmt.Errorf("totp algorithm %q: want SHA1, SHA256 or SHA512", s)
}

// Params are a factor's public parameters, kept in storage.Factor.Data so that a
// later change of settings does not break factors already enrolled.
type Params struct {
	Algorithm string `json:"alg"`
	Digits    int    `json:"digits"`
	Period    uint   `json:"period"`
}

func (p Params) opts() hotp.ValidateOpts {
	alg, _ := ParseAlgorithm(p.Algorithm)
	return hotp.ValidateOpts{Digits: otp.Digits(p.Digits), Algorithm: alg}
}

// ParseParams reads a factor's parameters.
func ParseParams(data []byte) (Params, error) {
	var p Params
	if err := json.Unmarshal(data, &p); err != nil {
		return p, fmt.Errorf("totp params: %w", err)
	}
	return p, nil
}

// Store is what the provider needs of storage.
type Store interface {
	ActivateThen(ctx context.Context, userID, id string, activate func(ctx context.Context) (bool, error), notPending error,
		then func(ctx context.Context, f *storage.Factor) error) (*storage.Factor, error)
	CreateFactorWithin(ctx context.Context, f *storage.Factor, limit int, now time.Time) error
	GetFactor(ctx context.Context, userID, id string) (*storage.Factor, error)
	ListFactors(ctx context.Context, userID, method, state string) ([]storage.Factor, error)
	ListFactorHeads(ctx context.Context, userID, method, state string, limit int) ([]storage.FactorHead, error)
	ActivateFactor(ctx context.Context, userID, id string, now time.Time, lastStep *int64) (bool, error)
	CountPendingAttempt(ctx context.Context, userID, id string) (int, error)
	DeleteFactor(ctx context.Context, userID, id string) error
	AdvanceLastStep(ctx context.Context, factorID string, step int64, now time.Time) (bool, error)
	AdvanceLastStepFrom(ctx context.Context, factorID string, from *int64, step int64, now time.Time) (bool, error)
}

// Sealer seals and opens secrets at rest (storage.KeyRing).
type Sealer interface {
	Seal(plaintext, aad []byte) (keyID string, sealed []byte, err error)
	Open(keyID string, sealed, aad []byte) ([]byte, error)
}

// Provider enrolls and verifies TOTP factors.
type Provider struct {
	store  Store
	sealer Sealer
	cfg    Config
	now    func() time.Time
	rand   io.Reader
}

// New returns a Provider. now and rnd may be nil (time.Now, crypto/rand).
func New(store Store, sealer Sealer, cfg Config, now func() time.Time, rnd io.Reader) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	return &Provider{store: store, sealer: sealer, cfg: cfg.withDefaults(), now: now, rand: rnd}, nil
}

// Enrollment is what a user needs to load a new factor into an app. Secret, URI
// and QRPNG carry the seed: show them to the user once and never log them.
type Enrollment struct {
	Factor    *storage.Factor
	Secret    string // base32, no padding
	URI       string // otpauth://totp/…
	QRPNG     []byte
	Params    Params
	ExpiresAt time.Time
}

// BeginEnrollment creates a pending factor with a fresh seed.
func (p *Provider) BeginEnrollment(ctx context.Context, userID, name, accountName string) (*Enrollment, error) {
	seed := make([]byte, SeedBytes)
	if _, err := io.ReadFull(p.rand, seed); err != nil {
		return nil, fmt.Errorf("totp seed: %w", err)
	}
	defer clear(seed)
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer:      p.cfg.Issuer,
		AccountName: accountName,
		Period:      p.cfg.Period,
		Secret:      seed,
		Digits:      p.cfg.Digits,
		Algorithm:   p.cfg.Algorithm,
	})
	if err != nil {
		return nil, fmt.Errorf("totp key: %w", err)
	}
	qrPNG, err := qrPNG(key.URL(), 256)
	if err != nil {
		return nil, err
	}
	params := Params{Algorithm: p.cfg.Algorithm.String(), Digits: int(p.cfg.Digits), Period: p.cfg.Period}
	data, _ := json.Marshal(params)
	now := p.now().UTC()
	exp := now.Add(p.cfg.EnrollmentTTL)
	f := &storage.Factor{
		ID:        uuid.NewString(),
		UserID:    userID,
		Method:    Method,
		Name:      name,
		State:     storage.FactorPending,
		Data:      data,
		ExpiresAt: &exp,
		CreatedAt: now,
		UpdatedAt: now,
	}
	if f.SecretKeyID, f.SealedSecret, err = p.sealer.Seal(seed, f.AAD()); err != nil {
		return nil, err
	}
	if err := p.store.CreateFactorWithin(ctx, f, p.cfg.MaxFactors, now); err != nil {
		return nil, err
	}
	return &Enrollment{Factor: f, Secret: key.Secret(), URI: key.URL(), QRPNG: qrPNG, Params: params, ExpiresAt: exp}, nil
}

// FinishEnrollment activates a pending factor when code is right. The step of the
// proof counts as used, so the same code cannot also log in.
func (p *Provider) FinishEnrollment(ctx context.Context, userID, factorID, code string) (*storage.Factor, error) {
	return p.FinishEnrollmentThen(ctx, userID, factorID, code, nil)
}

// FinishEnrollmentThen is FinishEnrollment running then, when not nil, in the
// transaction that activates the factor, with the active factor: an error from
// then undoes the activation (the enrollment stays pending) and is returned.
func (p *Provider) FinishEnrollmentThen(ctx context.Context, userID, factorID, code string, then func(ctx context.Context, f *storage.Factor) error) (*storage.Factor, error) {
	f, err := p.store.GetFactor(ctx, userID, factorID)
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
	step, err := p.match(f, code, now)
	if errors.Is(err, ErrWrongCode) {
		n, cerr := p.store.CountPendingAttempt(ctx, userID, factorID)
		if cerr == nil && n >= p.cfg.MaxEnrollAttempts {
			_ = p.store.DeleteFactor(ctx, userID, factorID)
			return nil, ErrEnrollmentExpired
		}
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	return p.store.ActivateThen(ctx, userID, factorID, func(ctx context.Context) (bool, error) {
		return p.store.ActivateFactor(ctx, userID, factorID, now, &step)
	}, ErrNotPending, then)
}

// Verify checks code against one active factor and consumes its time step. It
// returns nil when the code is accepted, ErrMalformed, ErrWrongCode or ErrReplayed.
// Of concurrent callers presenting the same code, exactly one gets nil.
func (p *Provider) Verify(ctx context.Context, f *storage.Factor, code string) error {
	now := p.now().UTC()
	step, err := p.match(f, code, now)
	if err != nil {
		return err
	}
	if f.LastStep != nil && step <= *f.LastStep {
		return ErrReplayed
	}
	won, err := p.store.AdvanceLastStep(ctx, f.ID, step, now)
	if err != nil {
		return err
	}
	if !won {
		return ErrReplayed
	}
	return nil
}

// SameStep tells whether two last accepted TOTP steps are the same (nil: none):
// a challenge sealed at step from is still open while the factor's step is from.
func SameStep(a, b *int64) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

// VerifyFrom is Verify for a challenge that began when the factor's last accepted
// step was from (nil: none). The code is accepted only if that is still so, and
// moving the step on uses the challenge up: of concurrent callers, at most one
// wins, and the others get ErrSuperseded. A code of a step already used is
// ErrReplayed, as in Verify.
func (p *Provider) VerifyFrom(ctx context.Context, f *storage.Factor, code string, from *int64) error {
	if !SameStep(f.LastStep, from) {
		return ErrSuperseded
	}
	now := p.now().UTC()
	step, err := p.match(f, code, now)
	if err != nil {
		return err
	}
	if from != nil && step <= *from {
		return ErrReplayed
	}
	won, err := p.store.AdvanceLastStepFrom(ctx, f.ID, from, step, now)
	if err != nil {
		return err
	}
	if !won {
		return ErrSuperseded
	}
	return nil
}

// VerifyAny checks code against every active TOTP factor of the user, returning the
// factor that accepted it.
func (p *Provider) VerifyAny(ctx context.Context, userID, code string) (*storage.Factor, error) {
	factors, err := p.store.ListFactors(ctx, userID, Method, storage.FactorActive)
	if err != nil {
		return nil, err
	}
	// The code is malformed only if no factor could read it: with a 6-digit and an
	// 8-digit factor, a 6-digit guess is a wrong code (it costs an attempt), not
	// bad input that would let guesses go uncounted.
	var replayed, wellFormed bool
	for i := range factors {
		err := p.Verify(ctx, &factors[i], code)
		switch {
		case err == nil:
			return &factors[i], nil
		case errors.Is(err, ErrReplayed):
			replayed, wellFormed = true, true
		case errors.Is(err, ErrWrongCode):
			wellFormed = true
		case errors.Is(err, ErrMalformed):
		default:
			return nil, err
		}
	}
	switch {
	case replayed:
		return nil, ErrReplayed
	case wellFormed || len(factors) == 0:
		return nil, ErrWrongCode
	}
	return nil, ErrMalformed
}

// match finds the time step in the window whose code equals code.
func (p *Provider) match(f *storage.Factor, code string, now time.Time) (int64, error) {
	params, err := ParseParams(f.Data)
	if err != nil {
		return 0, err
	}
	code, err = NormalizeCode(code, params.Digits)
	if err != nil {
		return 0, err
	}
	seed, err := p.sealer.Open(f.SecretKeyID, f.SealedSecret, f.AAD())
	if err != nil {
		return 0, fmt.Errorf("factor %s: %w", f.ID, err)
	}
	defer clear(seed)
	secret := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(seed)
	current := now.Unix() / int64(params.Period)
	skew := int64(p.cfg.Skew)
	matched, found := int64(0), 0
	for s := current - skew; s <= current+skew; s++ {
		if s < 0 {
			continue
		}
		want, err := hotp.GenerateCodeCustom(secret, uint64(s), params.opts())
		if err != nil {
			return 0, err
		}
		eq := subtle.ConstantTimeCompare([]byte(want), []byte(code))
		// Keep the latest matching step without branching on secret data.
		matched = int64(subtle.ConstantTimeSelect(eq, int(s), int(matched)))
		found |= eq
	}
	if found == 0 {
		return 0, ErrWrongCode
	}
	return matched, nil
}

// NormalizeCode drops spaces and dashes ("123 456", "123-456") and checks that
// what remains is exactly digits digits.
func NormalizeCode(code string, digits int) (string, error) {
	if len(code) > 64 {
		return "", ErrMalformed
	}
	var b strings.Builder
	for _, r := range code {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '\t':
		default:
			return "", ErrMalformed
		}
	}
	if b.Len() != digits {
		return "", fmt.Errorf("%w: want %d digits, got %d", ErrMalformed, digits, b.Len())
	}
	return b.String(), nil
}

// CodeAt computes the code of a seed at time t, for clients and tests.
func CodeAt(seed []byte, params Params, t time.Time) (string, error) {
	secret := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(seed)
	return hotp.GenerateCodeCustom(secret, uint64(t.Unix()/int64(params.Period)), params.opts())
}

// ActiveFactors lists the user's active TOTP factors.
func (p *Provider) ActiveFactors(ctx context.Context, userID string) ([]storage.Factor, error) {
	return p.store.ListFactors(ctx, userID, Method, storage.FactorActive)
}

// ActiveFactorHeads returns the ids and last accepted steps of up to limit of the
// user's active TOTP factors, oldest first, without loading their secrets.
func (p *Provider) ActiveFactorHeads(ctx context.Context, userID string, limit int) ([]storage.FactorHead, error) {
	return p.store.ListFactorHeads(ctx, userID, Method, storage.FactorActive, limit)
}

// ActiveFactor loads one active TOTP factor of the user, or storage.ErrNotFound.
func (p *Provider) ActiveFactor(ctx context.Context, userID, id string) (*storage.Factor, error) {
	f, err := p.store.GetFactor(ctx, userID, id)
	if err != nil {
		return nil, err
	}
	if f.Method != Method || f.State != storage.FactorActive {
		return nil, storage.ErrNotFound
	}
	return f, nil
}
