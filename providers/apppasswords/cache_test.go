package apppasswords

import (
	"fmt"
	"testing"
	"time"
)

func TestCacheBoundedAndExpiring(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	c := newCache(3, 10*time.Second)
	for i := 0; i < 5; i++ {
		if !c.put([]byte{byte(i)}, cacheEntry{id: fmt.Sprint(i)}, c.generation(), now) {
			t.Fatalf("put %d refused", i)
		}
		if c.len() > 3 {
			t.Fatalf("%d entries, bound is 3", c.len())
		}
	}
	if len(c.byID) != len(c.byHash) {
		t.Fatalf("indexes disagree: %d ids, %d hashes", len(c.byID), len(c.byHash))
	}
	if _, ok := c.get([]byte{4}, now.Add(9*time.Second)); !ok {
		t.Fatal("latest entry missing before its TTL")
	}
	if _, ok := c.get([]byte{4}, now.Add(10*time.Second)); ok {
		t.Fatal("entry alive at its TTL")
	}
	// A full cache of expired entries makes room by dropping an expired one.
	later := now.Add(time.Minute)
	c.put([]byte{9}, cacheEntry{id: "9"}, c.generation(), later)
	if c.len() != 3 {
		t.Fatalf("%d entries after evicting, want 3", c.len())
	}
}

func TestCacheGenerationGuardsAgainstRevocationRace(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	c := newCache(10, time.Minute)
	gen := c.generation() // a lookup starts reading the database…
	c.invalidate("p1")    // …the revocation of what it reads overtakes it…
	if c.put([]byte("h"), cacheEntry{id: "p1"}, gen, now) {
		t.Fatal("a lookup older than a revocation was cached")
	}
	if _, ok := c.get([]byte("h"), now); ok {
		t.Fatal("revoked entry cached")
	}
	c.put([]byte("h"), cacheEntry{id: "p1"}, c.generation(), now)
	c.invalidate("p1")
	if _, ok := c.get([]byte("h"), now); ok {
		t.Fatal("invalidated entry still cached")
	}
	if len(c.byID) != 0 {
		t.Fatal("id index kept an invalidated entry")
	}
}

func TestCacheClaimTouchOncePerInterval(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	c := newCache(10, time.Hour)
	c.put([]byte("h"), cacheEntry{id: "p"}, c.generation(), now)
	steps := []struct {
		at   time.Duration
		want bool
	}{{0, true}, {0, false}, {time.Minute, false}, {time.Minute + 1, true}, {90 * time.Second, false}}
	for _, s := range steps {
		if got := c.claimTouch([]byte("h"), now.Add(s.at), time.Minute); got != s.want {
			t.Fatalf("claimTouch at +%v = %v, want %v", s.at, got, s.want)
		}
	}
	if c.claimTouch([]byte("absent"), now, time.Minute) {
		t.Fatal("claimed a touch for an absent entry")
	}
}

func TestNilCacheCachesNothing(t *testing.T) {
	c := newCache(0, time.Minute)
	if c != nil {
		t.Fatal("size 0 should disable the cache")
	}
	c.put([]byte("h"), cacheEntry{id: "p"}, 0, time.Time{})
	if _, ok := c.get([]byte("h"), time.Time{}); ok || c.len() != 0 || c.claimTouch([]byte("h"), time.Time{}, 0) {
		t.Fatal("nil cache returned something")
	}
	c.invalidate("p")
}
