package apppasswords

import (
	"sync"
	"time"
)

// cache remembers, per keyed hash, whom a verified app password belongs to, so
// that a client authenticating every request costs no database lookup. It holds
// no password, only keyed hashes, and never a negative answer (a freshly issued
// password works at once on every replica). A nil *cache caches nothing.
type cache struct {
	ttl time.Duration
	max int

	mu     sync.RWMutex
	byHash map[string]*cacheEntry
	byID   map[string]string // app password id → hash key
	// gen counts invalidations. A lookup notes it before reading the database and
	// may store its row only if no invalidation happened meanwhile: otherwise a
	// revocation that overtook the read could be undone by it.
	gen uint64
}

type cacheEntry struct {
	id, userID string
	scope      Scope
	expires    time.Time
	// lastUsed is the last use this replica knows was recorded (zero: none).
	lastUsed time.Time
}

func newCache(max int, ttl time.Duration) *cache {
	if max <= 0 || ttl <= 0 {
		return nil
	}
	return &cache{ttl: ttl, max: max, byHash: make(map[string]*cacheEntry, max), byID: make(map[string]string, max)}
}

// get returns a copy of the live entry for hash.
func (c *cache) get(hash []byte, now time.Time) (cacheEntry, bool) {
	if c == nil {
		return cacheEntry{}, false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.byHash[string(hash)]
	if !ok || !now.Before(e.expires) {
		return cacheEntry{}, false
	}
	return *e, true
}

// generation is the value to pass to put for a lookup that starts now.
func (c *cache) generation() uint64 {
	if c == nil {
		return 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// put stores e under hash unless an invalidation happened since gen was read, and
// reports whether it did. When full, it first drops one entry.
func (c *cache) put(hash []byte, e cacheEntry, gen uint64, now time.Time) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return false
	}
	key := string(hash)
	if old, ok := c.byHash[key]; ok {
		delete(c.byID, old.id)
	} else if len(c.byHash) >= c.max {
		c.evictLocked(now)
	}
	e.expires = now.Add(c.ttl)
	c.byHash[key] = &e
	c.byID[e.id] = key
	return true
}

// evictLocked drops one entry: an expired one among the first few a map
// iteration (which starts at a random place) meets, or else the first it met.
func (c *cache) evictLocked(now time.Time) {
	victim, n := "", 0
	for key, e := range c.byHash {
		if victim == "" {
			victim = key
		}
		if !now.Before(e.expires) {
			victim = key
			break
		}
		if n++; n == 16 {
			break
		}
	}
	if e, ok := c.byHash[victim]; ok {
		delete(c.byID, e.id)
		delete(c.byHash, victim)
	}
}

// claimTouch reports whether the use at now should be recorded: the last one this
// replica knows of is older than interval. It notes now as recorded, so that of
// the requests a busy client sends at once only one goes to the database.
func (c *cache) claimTouch(hash []byte, now time.Time, interval time.Duration) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byHash[string(hash)]
	if !ok || (!e.lastUsed.IsZero() && now.Sub(e.lastUsed) <= interval) {
		return false
	}
	e.lastUsed = now
	return true
}

// invalidate forgets the app password id, cached or not, and fails any lookup in
// flight from putting it back.
func (c *cache) invalidate(id string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if key, ok := c.byID[id]; ok {
		delete(c.byHash, key)
		delete(c.byID, id)
	}
}

// clear forgets every entry and fails any lookup in flight from putting one back.
func (c *cache) clear() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.byHash)
	clear(c.byID)
}

func (c *cache) len() int {
	if c == nil {
		return 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.byHash)
}
