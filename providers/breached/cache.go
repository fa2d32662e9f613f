package breached

import (
	"container/list"
	"sync"
	"time"
)

// rangeCache keeps parsed range responses for a short time, keyed by prefix,
// evicting the least recently used prefix when full.
type rangeCache struct {
	ttl time.Duration
	max int

	mu    sync.Mutex
	items map[string]*list.Element // of *cacheItem
	order *list.List               // front: most recently used
}

type cacheItem struct {
	prefix  string
	entries []rangeEntry
	expires time.Time
}

func newRangeCache(ttl time.Duration, maxEntries int) *rangeCache {
	return &rangeCache{ttl: ttl, max: maxEntries, items: make(map[string]*list.Element), order: list.New()}
}

func (c *rangeCache) get(prefix string, now time.Time) ([]rangeEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[prefix]
	if !ok {
		return nil, false
	}
	it := el.Value.(*cacheItem)
	if !now.Before(it.expires) {
		c.order.Remove(el)
		delete(c.items, prefix)
		return nil, false
	}
	c.order.MoveToFront(el)
	return it.entries, true
}

func (c *rangeCache) put(prefix string, entries []rangeEntry, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[prefix]; ok {
		it := el.Value.(*cacheItem)
		it.entries, it.expires = entries, now.Add(c.ttl)
		c.order.MoveToFront(el)
		return
	}
	c.items[prefix] = c.order.PushFront(&cacheItem{prefix: prefix, entries: entries, expires: now.Add(c.ttl)})
	for c.order.Len() > c.max {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.items, oldest.Value.(*cacheItem).prefix)
	}
}

func (c *rangeCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
