// Package admincodes implements admin backup codes: a one-time code an admin issues
// for a user who lost their factors, handed over out of band (phone, in person), so
// the user can log in once and set up a new factor.
//
// Whether the actor may issue a code for the user (a member of an admin group, or
// a group admin of one of the user's groups) is decided by the caller, with
// policy.Provider.CanAct; this package records who did.
//
// Security properties:
//
//   - A code is 16 symbols from the backup code alphabet (no look-alikes), drawn from
//     crypto/rand: about 79 bits (NIST SP 800-63B §5.1.2.1 look-up secret).
//   - It is shown once. Only a keyed hash (HMAC-SHA-256 with a key kept outside the
//     database, over the user id and the normalised code) is stored, compared in
//     constant time (SP 800-63B §5.1.2.2, OWASP ASVS 4.0 V2.6.2).
//   - It expires (24 h by default, at most MaxTTL) and works once: consumption is a
//     conditional UPDATE on the unused, unexpired row with that hash, so of several
//     replicas racing exactly one wins (ASVS V2.6.1, V2.5.4 for recovery secrets).
//   - A user has at most one: a newer code replaces an older one, used or not.
//   - The row records which admin issued it, when, and when it was used, for the
//     audit trail (ASVS V7.2.1 / V2.5.6: recovery is an event to log).
package admincodes

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/twofactor/twofactor/providers/backupcodes"
	"github.com/twofactor/twofactor/storage"
)

// Method is the method name of admin codes.
const Method = "admin_code"

// Purpose separates admin code hashes from every other keyed hash.
const Purpose = "admin-code"

// Format is the shape of an admin code: XXXX-XXXX-XXXX-XXXX.
var Format = backupcodes.Format{Length: 16, Group: 4}

// Defaults for Options.
const (
	DefaultTTL = 24 * time.Hour
	MaxTTL     = 7 * 24 * time.Hour
)

// Errors.
var (
	// ErrMalformed: the input cannot be an admin code.
	ErrMalformed = backupcodes.ErrMalformed
	// ErrNoCode: no admin code was issued for the user (or it was removed).
	ErrNoCode = errors.New("user has no admin code")
	// ErrWrongCode: the code is not the user's admin code.
	ErrWrongCode = errors.New("admin code is wrong")
	// ErrExpired: the code is right but past its lifetime.
	ErrExpired = errors.New("admin code expired")
	// ErrUsed: the code is right but was used already.
	ErrUsed = errors.New("admin code was already used")
	// ErrTTL: a requested lifetime is out of range.
	ErrTTL = errors.New("admin code ttl out of range")
)

// Store is the part of storage.Store admin codes use.
type Store interface {
	PutAdminCode(ctx context.Context, c *storage.AdminCode) error
	GetAdminCode(ctx context.Context, userID string) (*storage.AdminCode, error)
	UseAdminCode(ctx context.Context, userID string, hash []byte, now time.Time) (bool, error)
	DeleteAdminCode(ctx context.Context, userID string) (bool, error)
}

// Hasher keys the hashes (storage.KeyRing).
type Hasher interface {
	MAC(purpose string, data ...[]byte) []byte
}

// Options tune a Provider; zero values take the defaults.
type Options struct {
	// DefaultTTL applies when Issue gets no ttl (DefaultTTL).
	DefaultTTL time.Duration
	// MaxTTL bounds the ttl Issue accepts (MaxTTL).
	MaxTTL time.Duration
	// Clock tells the time (time.Now).
	Clock func() time.Time
	// Rand is the random source (crypto/rand.Reader).
	Rand io.Reader
}

// Provider issues and checks admin codes; it keeps no state of its own.
type Provider struct {
	store      Store
	hash       Hasher
	defaultTTL time.Duration
	maxTTL     time.Duration
	now        func() time.Time
	rand       io.Reader
}

// New returns a Provider.
func New(store Store, hash Hasher, opts Options) *Provider {
	p := &Provider{store: store, hash: hash, defaultTTL: opts.DefaultTTL, maxTTL: opts.MaxTTL, now: opts.Clock, rand: opts.Rand}
	if p.defaultTTL <= 0 {
		p.defaultTTL = DefaultTTL
	}
	if p.maxTTL <= 0 {
		p.maxTTL = MaxTTL
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.rand == nil {
		p.rand = rand.Reader
	}
	return p
}

// Issued is a new admin code: shown to the admin once, then gone.
type Issued struct {
	Code      string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// Used tells who issued the code that was just accepted.
type Used struct {
	IssuedBy string
	IssuedAt time.Time
}

// State describes a user's admin code without revealing it.
type State struct {
	Exists    bool
	Usable    bool // exists, unused and unexpired
	IssuedBy  string
	IssuedAt  time.Time
	ExpiresAt time.Time
	UsedAt    *time.Time
}

func (p *Provider) hashCode(userID, code string) []byte {
	return p.hash.MAC(Purpose, []byte(userID), []byte{0}, []byte(code))
}

// Issue makes a new admin code for userID on behalf of actorID, replacing any older
// one. ttl 0 means the default; a negative ttl or one above the maximum is ErrTTL.
// The caller has checked that actorID may act on userID.
func (p *Provider) Issue(ctx context.Context, actorID, userID string, ttl time.Duration) (Issued, error) {
	switch {
	case actorID == "":
		return Issued{}, errors.New("admin code: actor id is empty")
	case userID == "":
		return Issued{}, errors.New("admin code: user id is empty")
	case ttl < 0 || ttl > p.maxTTL:
		return Issued{}, fmt.Errorf("%w: %v is not within 0..%v", ErrTTL, ttl, p.maxTTL)
	case ttl == 0:
		ttl = p.defaultTTL
	}
	code, err := Format.Generate(p.rand)
	if err != nil {
		return Issued{}, err
	}
	norm, err := Format.Normalize(code)
	if err != nil {
		return Issued{}, fmt.Errorf("admin code: generated code does not normalise: %w", err)
	}
	now := p.now().UTC()
	row := &storage.AdminCode{UserID: userID, Hash: p.hashCode(userID, norm), IssuedBy: actorID, IssuedAt: now, ExpiresAt: now.Add(ttl)}
	if err := p.store.PutAdminCode(ctx, row); err != nil {
		return Issued{}, fmt.Errorf("admin code: store: %w", err)
	}
	return Issued{Code: code, IssuedAt: now, ExpiresAt: row.ExpiresAt}, nil
}

// Verify checks a code the user typed (any case, spaces and dashes ignored) and
// consumes it. Errors: ErrMalformed, ErrNoCode, ErrWrongCode, ErrExpired, ErrUsed
// (also for the losers of a race), or a storage error. Expired and used are only
// told for the right code; a wrong guess learns nothing but ErrWrongCode.
func (p *Provider) Verify(ctx context.Context, userID, input string) (Used, error) {
	code, err := Format.Normalize(input)
	if err != nil {
		return Used{}, ErrMalformed
	}
	row, err := p.store.GetAdminCode(ctx, userID)
	if errors.Is(err, storage.ErrNotFound) {
		return Used{}, ErrNoCode
	}
	if err != nil {
		return Used{}, fmt.Errorf("admin code: load: %w", err)
	}
	want := p.hashCode(userID, code)
	if !storage.EqualMAC(row.Hash, want) {
		return Used{}, ErrWrongCode
	}
	now := p.now().UTC()
	switch {
	case row.UsedAt != nil:
		return Used{}, ErrUsed
	case !now.Before(row.ExpiresAt):
		return Used{}, ErrExpired
	}
	ok, err := p.store.UseAdminCode(ctx, userID, want, now)
	if err != nil {
		return Used{}, fmt.Errorf("admin code: consume: %w", err)
	}
	if !ok {
		return Used{}, ErrUsed
	}
	return Used{IssuedBy: row.IssuedBy, IssuedAt: row.IssuedAt}, nil
}

// State tells whether the user has an admin code and whether it can be used now.
func (p *Provider) State(ctx context.Context, userID string) (State, error) {
	row, err := p.store.GetAdminCode(ctx, userID)
	if errors.Is(err, storage.ErrNotFound) {
		return State{}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("admin code: load: %w", err)
	}
	return State{
		Exists:    true,
		Usable:    row.UsedAt == nil && p.now().Before(row.ExpiresAt),
		IssuedBy:  row.IssuedBy,
		IssuedAt:  row.IssuedAt,
		ExpiresAt: row.ExpiresAt,
		UsedAt:    row.UsedAt,
	}, nil
}

// Revoke removes the user's admin code; it reports whether there was one.
func (p *Provider) Revoke(ctx context.Context, userID string) (bool, error) {
	return p.store.DeleteAdminCode(ctx, userID)
}
