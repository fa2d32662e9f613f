// Package backupcodes implements a user's own backup codes: a set of one-time
// look-up secrets (NIST SP 800-63B §5.1.2) the user prints or stores, to log in when
// their usual factor is lost.
//
// Security properties:
//
//   - Codes are drawn from crypto/rand by rejection sampling over an alphabet
//     without look-alike characters (no 0/O, 1/I/L): 10 symbols of 31, about 49.5
//     bits each code (SP 800-63B §5.1.2.1 asks for at least 20 bits; guessing is
//     throttled by the caller, ASVS 4.0 V2.6.3).
//   - A set is shown exactly once, when issued. Only keyed hashes are stored:
//     HMAC-SHA-256 with a key kept outside the database, over the user id and the
//     normalised code, so a hash is bound to its user and a stolen table is useless
//     without the key (SP 800-63B §5.1.2.2, ASVS V2.6.2). Candidate hashes are
//     compared in constant time, all of them, whichever matches.
//   - Each code works once (SP 800-63B §5.1.2.2, ASVS V2.6.1): consumption is a
//     conditional UPDATE, so of several replicas or goroutines racing with the same
//     code exactly one succeeds; the others see ErrUsed.
//   - Regenerating replaces the whole set in one transaction: the old codes stop
//     working when the new ones exist.
//   - Using the next-to-last code leaves a record (storage BackupCodeSet.RunningLowAt)
//     so the user can be told to make new codes before they run out.
//
// The package speaks in Go types and strings; it knows nothing of gRPC or the wire.
package backupcodes

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/twofactor/twofactor/storage"
)

// Method is the method name of backup codes.
const Method = "backup_code"

// Purpose separates backup code hashes from every other keyed hash.
const Purpose = "backup-code"

// DefaultCount is how many codes a set has unless Options say otherwise.
const DefaultCount = 10

// Sentinel errors of Verify.
var (
	// ErrWrongCode: the code is not one of the user's current codes.
	ErrWrongCode = errors.New("backup code is wrong")
	// ErrUsed: the code is one of the user's current codes but was used already.
	ErrUsed = errors.New("backup code was already used")
	// ErrNoCodes: the user has no unused backup codes (none issued, or all used).
	ErrNoCodes = errors.New("user has no unused backup codes")
)

// Store is the part of storage.Store backup codes use.
type Store interface {
	ReplaceBackupCodes(ctx context.Context, userID string, hashes [][]byte, now time.Time) (*storage.BackupCodeSet, error)
	ListBackupCodes(ctx context.Context, userID string) ([]storage.BackupCode, error)
	UseBackupCode(ctx context.Context, userID, setID, codeID string, lowAt int, now time.Time) (storage.BackupCodeUse, error)
	GetBackupCodeSet(ctx context.Context, userID string) (*storage.BackupCodeSet, error)
	CountUnusedBackupCodes(ctx context.Context, userID string) (int, error)
	DeleteBackupCodes(ctx context.Context, userID string) (bool, error)
}

// Hasher keys the hashes (storage.KeyRing).
type Hasher interface {
	MAC(purpose string, data ...[]byte) []byte
}

// Options tune a Provider; zero values take the defaults.
type Options struct {
	// Count is the number of codes in a set (DefaultCount).
	Count int
	// Clock tells the time (time.Now).
	Clock func() time.Time
	// Rand is the random source (crypto/rand.Reader).
	Rand io.Reader
}

// Provider issues and checks backup codes. It is safe for concurrent use and keeps
// no state of its own.
type Provider struct {
	store Store
	hash  Hasher
	count int
	now   func() time.Time
	rand  io.Reader
}

// New returns a Provider.
func New(store Store, hash Hasher, opts Options) *Provider {
	p := &Provider{store: store, hash: hash, count: opts.Count, now: opts.Clock, rand: opts.Rand}
	if p.count <= 0 {
		p.count = DefaultCount
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.rand == nil {
		p.rand = rand.Reader
	}
	return p
}

// Issued is a new set of codes: shown to the user once, then gone.
type Issued struct {
	Codes     []string
	CreatedAt time.Time
}

// Result is what an accepted code leaves.
type Result struct {
	// Remaining counts the unused codes after this one.
	Remaining int
	// RunningLow is true when at most one code is left: the user should make new ones.
	RunningLow bool
	// LowRecorded is true for the one use that recorded the running-low state
	// (the next-to-last code): the moment to tell the user once.
	LowRecorded bool
}

// Status describes a user's set without revealing any code.
type Status struct {
	Enabled      bool
	Total        int
	Remaining    int
	CreatedAt    time.Time
	RunningLowAt *time.Time
}

// hashCode is the stored form of a normalised code: bound to its user.
func (p *Provider) hashCode(userID, code string) []byte {
	return p.hash.MAC(Purpose, []byte(userID), []byte{0}, []byte(code))
}

// Issue replaces the user's codes with a fresh set and returns it, in display form
// (XXXXX-XXXXX). Only their hashes are stored.
func (p *Provider) Issue(ctx context.Context, userID string) (Issued, error) {
	if userID == "" {
		return Issued{}, errors.New("backup codes: user id is empty")
	}
	codes, err := Generate(p.rand, p.count)
	if err != nil {
		return Issued{}, err
	}
	hashes := make([][]byte, len(codes))
	for i, c := range codes {
		n, err := Normalize(c)
		if err != nil {
			return Issued{}, fmt.Errorf("backup codes: generated code does not normalise: %w", err)
		}
		hashes[i] = p.hashCode(userID, n)
	}
	set, err := p.store.ReplaceBackupCodes(ctx, userID, hashes, p.now().UTC())
	if err != nil {
		return Issued{}, fmt.Errorf("backup codes: store set: %w", err)
	}
	return Issued{Codes: codes, CreatedAt: set.CreatedAt}, nil
}

// Verify checks a code the user typed (any case, spaces and dashes ignored) and
// consumes it. Errors: ErrMalformed, ErrNoCodes, ErrWrongCode, ErrUsed (also for
// the losers of a race on one code), or a storage error.
func (p *Provider) Verify(ctx context.Context, userID, input string) (Result, error) {
	code, err := Normalize(input)
	if err != nil {
		return Result{}, err
	}
	rows, err := p.store.ListBackupCodes(ctx, userID)
	if err != nil {
		return Result{}, fmt.Errorf("backup codes: load: %w", err)
	}
	want := p.hashCode(userID, code)
	match := -1
	unused := 0
	for i := range rows {
		// Compare with every row, matched or not: the time does not tell which.
		if storage.EqualMAC(rows[i].Hash, want) {
			match = i
		}
		if rows[i].UsedAt == nil {
			unused++
		}
	}
	if unused == 0 {
		return Result{}, ErrNoCodes
	}
	if match < 0 {
		return Result{}, ErrWrongCode
	}
	row := rows[match]
	if row.UsedAt != nil {
		return Result{}, ErrUsed
	}
	use, err := p.store.UseBackupCode(ctx, userID, row.SetID, row.ID, 1, p.now().UTC())
	if err != nil {
		return Result{}, fmt.Errorf("backup codes: consume: %w", err)
	}
	if !use.Used {
		return Result{}, ErrUsed
	}
	return Result{Remaining: use.Remaining, RunningLow: use.Remaining <= 1, LowRecorded: use.LowRecorded}, nil
}

// Status tells whether the user has backup codes, how many are left and when they
// were made.
func (p *Provider) Status(ctx context.Context, userID string) (Status, error) {
	set, err := p.store.GetBackupCodeSet(ctx, userID)
	if errors.Is(err, storage.ErrNotFound) {
		return Status{}, nil
	}
	if err != nil {
		return Status{}, fmt.Errorf("backup codes: status: %w", err)
	}
	n, err := p.store.CountUnusedBackupCodes(ctx, userID)
	if err != nil {
		return Status{}, fmt.Errorf("backup codes: status: %w", err)
	}
	return Status{Enabled: true, Total: set.Total, Remaining: n, CreatedAt: set.CreatedAt, RunningLowAt: set.RunningLowAt}, nil
}

// Usable tells whether the user has at least one unused code (the method is
// available for a login).
func (p *Provider) Usable(ctx context.Context, userID string) (bool, error) {
	n, err := p.store.CountUnusedBackupCodes(ctx, userID)
	return n > 0, err
}

// Remove deletes the user's codes; it reports whether there were any.
func (p *Provider) Remove(ctx context.Context, userID string) (bool, error) {
	return p.store.DeleteBackupCodes(ctx, userID)
}
