package policy_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/twofactor/twofactor/internal/testfix"
	"github.com/twofactor/twofactor/providers/policy"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// TestCacheTTL: with a cache, a policy set on this replica is in force at once,
// one set on another replica (another Provider on the same store) once the TTL
// has passed, and a caller changing what Get returned changes nothing cached.
func TestCacheTTL(t *testing.T) {
	ctx := context.Background()
	s := storagetest.Open(t)
	c := testfix.NewClock(t0)
	here := newProvider(t, s, c, policy.Options{CacheTTL: 2 * time.Second})
	there := newProvider(t, s, c, policy.Options{})

	totpOnly := policy.Policy{AllowedMethods: []string{"totp"}}
	if _, err := here.Set(ctx, "root", totpOnly); err != nil {
		t.Fatal(err)
	}
	got, err := here.Get(ctx)
	if err != nil || !reflect.DeepEqual(got.AllowedMethods, []string{"totp"}) {
		t.Fatalf("Get after Set here = %v, %v; want totp only", got.AllowedMethods, err)
	}
	got.AllowedMethods[0] = "tampered"

	if _, err := there.Set(ctx, "root", policy.Policy{Enforced: true}); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Second)
	if got, _ := here.Get(ctx); got.Enforced || !reflect.DeepEqual(got.AllowedMethods, []string{"totp"}) {
		t.Fatalf("within the TTL: got %+v, want the cached totp-only policy, untampered", got)
	}
	c.Advance(time.Second)
	if got, _ := here.Get(ctx); !got.Enforced || len(got.AllowedMethods) != 0 {
		t.Fatalf("after the TTL: got %+v, want the policy set on the other replica", got)
	}
}
