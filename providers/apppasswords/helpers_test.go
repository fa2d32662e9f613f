package apppasswords_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twofactor/twofactor/internal/testfix"
	"github.com/twofactor/twofactor/providers/apppasswords"
	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// countingStore is the real store with counters on the two calls of the verify
// path, and an optional hook run after a lookup read its row.
type countingStore struct {
	*storage.Store
	lookups     atomic.Int64
	touches     atomic.Int64
	afterLookup func(*storage.AppPassword)
	failTouch   bool
	failCounter atomic.Bool
}

func (s *countingStore) GetCounter(ctx context.Context, name string) (int64, error) {
	if s.failCounter.Load() {
		return 0, errors.New("database went away")
	}
	return s.Store.GetCounter(ctx, name)
}

func (s *countingStore) GetAppPasswordByHash(ctx context.Context, hash []byte) (*storage.AppPassword, error) {
	s.lookups.Add(1)
	p, err := s.Store.GetAppPasswordByHash(ctx, hash)
	if err == nil && s.afterLookup != nil {
		s.afterLookup(p)
	}
	return p, err
}

func (s *countingStore) TouchAppPassword(ctx context.Context, id string, now time.Time, ip string, d time.Duration) (bool, error) {
	s.touches.Add(1)
	if s.failTouch {
		return false, errors.New("database went away")
	}
	return s.Store.TouchAppPassword(ctx, id, now, ip, d)
}

// announcements records announced ids; fail makes it fail.
type announcements struct {
	mu   sync.Mutex
	ids  []string
	fail bool
}

func (a *announcements) AnnounceRevoked(_ context.Context, id string) error {
	if a.fail {
		return errors.New("nats: connection closed")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ids = append(a.ids, id)
	return nil
}

type replica struct {
	svc   *apppasswords.Service
	store *countingStore
	clock *testfix.Clock
}

// newReplica starts a service on the database at url (one replica). cacheSize 0
// disables the cache.
func newReplica(t testing.TB, url string, ring *storage.KeyRing, cacheSize int, mod func(*apppasswords.Config)) *replica {
	t.Helper()
	r := &replica{store: &countingStore{Store: storagetest.OpenURL(t, url)}, clock: testfix.NewClock(t0)}
	cfg := apppasswords.Config{Store: r.store, Hasher: ring, Now: r.clock.Now, CacheSize: cacheSize}
	if mod != nil {
		mod(&cfg)
	}
	svc, err := apppasswords.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.svc = svc
	return r
}

// cacheModes runs f with the verification cache on and off.
func cacheModes(t *testing.T, f func(t *testing.T, cacheSize int)) {
	for _, m := range []struct {
		name string
		size int
	}{{"cached", 1000}, {"uncached", 0}} {
		t.Run(m.name, func(t *testing.T) { f(t, m.size) })
	}
}
