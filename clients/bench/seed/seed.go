// Package seed fills a twofactor database with benchmark users, fast: it writes
// rows directly through package storage (batched inserts, one transaction per
// batch), sealing each TOTP seed with the same key ring file authd uses, so that a
// running or later-started authd accepts them as if they had been enrolled.
//
// Every seed is derived from a bench secret and the user id (see
// bench.SeedFor), so the load tool computes the users' codes without a seeds file.
//
// Security properties: this is a benchmarking tool. Bench seeds are derived from a
// secret the operator chooses and are therefore only as secret as it; never seed
// a production database. Seeds are still sealed at rest with AES-256-GCM and bound
// to their row (storage.SealAAD), exactly as enrollment seals them, so the server
// paths measured are the production ones. Re-seeding is idempotent: factor ids are
// derived from the user id and existing rows are kept (INSERT … ON CONFLICT DO
// NOTHING).
package seed

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm/clause"

	"github.com/twofactor/twofactor/clients/bench"
	"github.com/twofactor/twofactor/providers/totp"
	"github.com/twofactor/twofactor/storage"
)

// Options say what to seed where.
type Options struct {
	// DatabaseURL is the database authd uses (postgres://… or sqlite://path).
	DatabaseURL string
	// KeyFile is authd's key ring (DIR/keys.json); created if missing, as authd
	// would on its first start.
	KeyFile string
	// Secret derives every user's TOTP seed (bench.SeedFor).
	Secret string
	// First and Count select the users bench.UserID(First) … bench.UserID(First+Count-1).
	First, Count int
	// Batch is the number of rows per INSERT statement (default 500); Tx the
	// number of rows per transaction (default 20 000).
	Batch, Tx int
	// Progress, if set, is called after each transaction with the users written so far.
	Progress func(done int)
}

// Result tells what Seed did.
type Result struct {
	Users    int
	Elapsed  time.Duration
	Database storage.Dialect
}

// Seed inserts one active TOTP factor for each user of opts.
func Seed(ctx context.Context, opts Options) (Result, error) {
	if opts.Count <= 0 || opts.First < 0 {
		return Result{}, errors.New("seed: count must be positive and first not negative")
	}
	if opts.Secret == "" {
		return Result{}, errors.New("seed: secret is empty")
	}
	if opts.Batch <= 0 {
		opts.Batch = 500
	}
	if opts.Tx <= 0 {
		opts.Tx = 20000
	}
	start := time.Now()
	if _, err := storage.EnsureKeyFile(opts.KeyFile); err != nil {
		return Result{}, err
	}
	ring, err := storage.LoadKeyRing(opts.KeyFile)
	if err != nil {
		return Result{}, err
	}
	store, err := storage.Open(ctx, opts.DatabaseURL, storage.Options{MaxOpenConns: 2})
	if err != nil {
		return Result{}, err
	}
	defer store.Close()
	if err := store.Migrate(ctx); err != nil {
		return Result{}, err
	}
	data, _ := json.Marshal(Params)
	now := time.Now().UTC()
	rows := make([]storage.Factor, 0, opts.Tx)
	for lo := opts.First; lo < opts.First+opts.Count; lo += opts.Tx {
		hi := min(lo+opts.Tx, opts.First+opts.Count)
		rows = rows[:0]
		for i := lo; i < hi; i++ {
			user := bench.UserID(i)
			seed := bench.SeedFor(opts.Secret, user)
			f := storage.Factor{
				ID: factorID(opts.Secret, user), UserID: user, Method: totp.Method, Name: "bench",
				State: storage.FactorActive, Data: data, CreatedAt: now, UpdatedAt: now,
			}
			if f.SecretKeyID, f.SealedSecret, err = ring.Seal(seed, f.AAD()); err != nil {
				return Result{}, err
			}
			rows = append(rows, f)
		}
		err := store.InTx(ctx, func(ctx context.Context) error {
			return store.DB(ctx).Clauses(clause.OnConflict{DoNothing: true}).CreateInBatches(rows, opts.Batch).Error
		})
		if err != nil {
			return Result{}, fmt.Errorf("seed users %d to %d: %w", lo, hi-1, err)
		}
		if opts.Progress != nil {
			opts.Progress(hi - opts.First)
		}
	}
	return Result{Users: opts.Count, Elapsed: time.Since(start), Database: store.Dialect()}, nil
}

// Params are the TOTP parameters of every seeded factor: authd's defaults.
var Params = totp.Params{Algorithm: "SHA1", Digits: 6, Period: bench.Period}

// factorID derives a stable UUID for a user's bench factor, so seeding twice
// inserts nothing new.
func factorID(secret, user string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("factor\x00" + user))
	id, _ := uuid.FromBytes(m.Sum(nil)[:16])
	id[6] = (id[6] & 0x0f) | 0x40 // version 4 layout
	id[8] = (id[8] & 0x3f) | 0x80 // RFC 4122 variant
	return id.String()
}
