package seed

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twofactor/twofactor/clients/bench"
	"github.com/twofactor/twofactor/providers/totp"
	"github.com/twofactor/twofactor/storage"
)

// chunk is one transaction's rows, users lo … lo+len(rows)-1, or the error that
// stopped their making.
type chunk struct {
	lo   int
	rows []storage.Factor
	err  error
}

// produce makes the chunks of opts on opts.Workers goroutines and sends them in
// whatever order they are ready (the writer needs no order). The channel is
// closed when every chunk was sent or ctx is done; a sealing error is sent as the
// chunk's err.
func produce(ctx context.Context, opts Options, ring *storage.KeyRing) <-chan chunk {
	out := make(chan chunk, opts.Workers)
	data, _ := json.Marshal(Params)
	now := time.Now().UTC()
	var next atomic.Int64
	next.Store(int64(opts.First))
	end := opts.First + opts.Count
	var wg sync.WaitGroup
	for range opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				lo := int(next.Add(int64(opts.Tx))) - opts.Tx
				if lo >= end {
					return
				}
				rows, err := makeRows(opts.Secret, ring, data, now, lo, min(lo+opts.Tx, end))
				select {
				case out <- chunk{lo: lo, rows: rows, err: err}:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(out) }()
	return out
}

// makeRows derives and seals the factors of users lo … hi-1, sorted by id so that
// the primary key's B-tree is written page after page.
func makeRows(secret string, ring *storage.KeyRing, data []byte, now time.Time, lo, hi int) ([]storage.Factor, error) {
	rows := make([]storage.Factor, 0, hi-lo)
	for i := lo; i < hi; i++ {
		user := bench.UserID(i)
		f := storage.Factor{
			ID: factorID(secret, user), UserID: user, Method: totp.Method, Name: "bench",
			State: storage.FactorActive, Data: data, CreatedAt: now, UpdatedAt: now,
		}
		var err error
		if f.SecretKeyID, f.SealedSecret, err = ring.Seal(bench.SeedFor(secret, user), f.AAD()); err != nil {
			return nil, err
		}
		rows = append(rows, f)
	}
	slices.SortFunc(rows, func(a, b storage.Factor) int { return strings.Compare(a.ID, b.ID) })
	return rows, nil
}
