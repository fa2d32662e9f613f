// Package seed fills a twofactor database with benchmark users, fast: it writes
// rows straight into the factors table (on SQLite prepared multi-row INSERTs, on
// PostgreSQL COPY, 100 000 rows per transaction), sealing each TOTP seed with the
// same key ring file authd uses, on parallel workers, so that a running or
// later-started authd accepts them as if they had been enrolled.
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
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/google/uuid"

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
	// Batch is the number of rows per INSERT statement on SQLite (default 100;
	// PostgreSQL copies each transaction's rows with COPY); Tx the number of rows
	// per transaction (default 100 000).
	Batch, Tx int
	// Workers derive and seal the rows in parallel with the writer (default: the
	// number of CPUs).
	Workers int
	// Progress, if set, is called after each transaction with the users written so far.
	Progress func(done int)
}

// Result tells what Seed did.
type Result struct {
	Users    int
	Elapsed  time.Duration
	Database storage.Dialect
}

func (o *Options) defaults() error {
	if o.Count <= 0 || o.First < 0 {
		return errors.New("seed: count must be positive and first not negative")
	}
	if o.Secret == "" {
		return errors.New("seed: secret is empty")
	}
	if o.Batch <= 0 {
		o.Batch = 100
	}
	o.Batch = min(o.Batch, maxBatch)
	if o.Tx <= 0 {
		o.Tx = 100_000
	}
	if o.Workers <= 0 {
		o.Workers = runtime.NumCPU()
	}
	return nil
}

// Seed inserts one active TOTP factor for each user of opts: Workers goroutines
// derive and seal the rows of one transaction each while the writer stores the
// previous ones.
func Seed(ctx context.Context, opts Options) (Result, error) {
	if err := opts.defaults(); err != nil {
		return Result{}, err
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
	w, err := newWriter(ctx, store, opts.Batch)
	if err != nil {
		return Result{}, err
	}
	defer w.close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := 0
	for c := range produce(ctx, opts, ring) {
		if c.err == nil {
			c.err = w.write(ctx, c.rows)
		}
		if c.err != nil {
			return Result{}, fmt.Errorf("seed users %d to %d: %w", c.lo, c.lo+len(c.rows)-1, c.err)
		}
		if done += len(c.rows); opts.Progress != nil {
			opts.Progress(done)
		}
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
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
