package apppasswords

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twofactor/twofactor/storage"
)

// Revocation at once, on every replica (issue 16, finding 10).
//
// Each revocation increments a counter in the shared store after deleting the row.
// A replica trusts its cache only while its last completed read of that counter
// started less than RevocationCheck ago and found the value it already knew; when
// the read is older it reads again (one primary-key read per RevocationCheck, made
// by whichever verification needs it), and when the value moved it empties its
// cache. Revoke returns 2×RevocationCheck after the increment committed. So a
// verification on any replica after Revoke returned either reads the database
// (which no longer has the row) or trusts a cache emptied by a read that began
// after the increment: no replica accepts the revoked password, whether or not it
// hears NATS (announcements only make other replicas forget sooner). A replica
// that cannot read the counter does not use its cache. Only the rates of the
// replicas' clocks matter (elapsed time on each, never one's clock against
// another's), with RevocationCheck of margin.

// DefaultRevocationCheck is Config.RevocationCheck's default.
const DefaultRevocationCheck = 50 * time.Millisecond

var monoBase = time.Now()

// mono is the time on this process's monotonic clock.
func mono() time.Duration { return time.Since(monoBase) }

type epoch struct {
	every time.Duration
	// checked is when the last read that confirmed value began (mono; 0: never).
	checked atomic.Int64
	mu      sync.Mutex // held by the one read in progress
	value   int64
	known   bool
}

// fresh tells whether the cache may be trusted now, reading the counter (and
// emptying c when it moved) if the last read is too old. false when the read
// failed.
func (s *Service) fresh(ctx context.Context) bool {
	ep := &s.epoch
	if mono()-time.Duration(ep.checked.Load()) < ep.every && ep.checked.Load() != 0 {
		return true
	}
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if c := ep.checked.Load(); c != 0 && mono()-time.Duration(c) < ep.every {
		return true // another verification read it meanwhile
	}
	start := mono()
	v, err := s.cfg.Store.GetCounter(ctx, storage.CounterAppPasswordRevocations)
	if err != nil {
		return false
	}
	if !ep.known || v != ep.value {
		s.cache.clear()
		ep.value, ep.known = v, true
	}
	ep.checked.Store(int64(max(start, 1)))
	return true
}

// countRevocation increments the revocation counter; waitRevocation then waits
// until every replica's cache has either read the new value or stopped being
// trusted.
func (s *Service) countRevocation(ctx context.Context) error {
	if err := s.cfg.Store.IncrementCounter(ctx, storage.CounterAppPasswordRevocations); err != nil {
		return fmt.Errorf("count revocation: %w", err)
	}
	return nil
}

func (s *Service) waitRevocation(ctx context.Context, counted time.Duration) error {
	t := time.NewTimer(2*s.epoch.every - (mono() - counted))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
