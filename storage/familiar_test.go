package storage_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// A user's familiar networks are bounded (the most recently seen kept), expire,
// are written only when new or due for a refresh, and are read with the
// throttle states in one query.
func TestFamiliarNetworks(t *testing.T) {
	ctx := context.Background()
	st := storagetest.Open(t)
	now := time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC)
	const ttl, refresh, max = 30 * 24 * time.Hour, time.Hour, 3
	for i := range 5 {
		if err := st.RememberFamiliarNetwork(ctx, "alice", fmt.Sprintf("192.0.2.%d", i), now.Add(time.Duration(i)*time.Minute), ttl, refresh, max); err != nil {
			t.Fatal(err)
		}
	}
	at := now.Add(time.Hour)
	nets, err := st.FamiliarNetworks(ctx, "alice", at)
	if err != nil || len(nets) != max || nets[0].Network != "192.0.2.4" || nets[2].Network != "192.0.2.2" {
		t.Fatalf("after 5 networks with a bound of 3: %+v %v", nets, err)
	}
	seen := func(network string, at time.Time) time.Time {
		t.Helper()
		_, s, err := st.GetAttemptStates(ctx, []storage.ThrottleSubject{{Kind: "user", Key: "alice"}}, "alice", network, at)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if s := seen("192.0.2.0", at); !s.IsZero() {
		t.Fatalf("an evicted network is familiar (seen %v)", s)
	}
	if s := seen("192.0.2.4", at); !s.Equal(now.Add(4 * time.Minute).Truncate(time.Microsecond)) {
		t.Fatalf("192.0.2.4 last seen %v", s)
	}
	// Seen again within the refresh: not written; after it: refreshed.
	if err := st.RememberFamiliarNetwork(ctx, "alice", "192.0.2.4", now.Add(30*time.Minute), ttl, refresh, max); err != nil {
		t.Fatal(err)
	}
	if s := seen("192.0.2.4", at); !s.Equal(now.Add(4 * time.Minute).Truncate(time.Microsecond)) {
		t.Fatalf("a network seen within the refresh was written again (%v)", s)
	}
	later := now.Add(2 * time.Hour)
	if err := st.RememberFamiliarNetwork(ctx, "alice", "192.0.2.4", later, ttl, refresh, max); err != nil {
		t.Fatal(err)
	}
	if s := seen("192.0.2.4", later); !s.Equal(later.Truncate(time.Microsecond)) {
		t.Fatalf("not refreshed: %v", s)
	}
	// Expiry, and the cleanup.
	if s := seen("192.0.2.2", now.Add(ttl+time.Hour)); !s.IsZero() {
		t.Fatal("an expired network is familiar")
	}
	if n, err := st.DeleteFamiliarNetworksBefore(ctx, now.Add(ttl+time.Hour)); err != nil || n != 2 {
		t.Fatalf("cleanup removed %d, %v; want the 2 not refreshed", n, err)
	}
	if n, err := st.ForgetFamiliarNetworks(ctx, "alice"); err != nil || n != 1 {
		t.Fatalf("forget: %d %v", n, err)
	}
	if err := st.LockAttempt(ctx, []string{"x"}); err != storage.ErrNotInTx {
		t.Fatalf("LockAttempt outside a transaction: %v", err)
	}
}
