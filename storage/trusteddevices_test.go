package storage_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twofactor/twofactor/internal/testfix"
	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

func countRows(t *testing.T, s *storage.Store, model any) int64 {
	t.Helper()
	var n int64
	if err := s.DB(context.Background()).Model(model).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// The sweep removes expired series and their retired tokens, nothing else; a
// rotation's conditional UPDATE has one winner.
func TestTrustedDevicesRotateAndSweep(t *testing.T) {
	ctx := context.Background()
	s := storagetest.Open(t)
	mk := func(id string, expires time.Time) {
		t.Helper()
		if _, err := s.CreateTrustedDevice(ctx, &storage.TrustedDevice{ID: id, UserID: "u", TokenHash: []byte(id + "-0"), CreatedAt: t0, ExpiresAt: expires}, 10); err != nil {
			t.Fatal(err)
		}
	}
	old, live := "00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000002"
	mk(old, t0.Add(time.Hour))
	mk(live, t0.Add(48*time.Hour))
	for _, id := range []string{old, live} {
		won, err := s.RotateTrustedDevice(ctx, id, []byte(id+"-0"), []byte(id+"-1"), t0, "192.0.2.1")
		if err != nil || !won {
			t.Fatalf("rotate %s: %v, %v", id, won, err)
		}
		if won, err := s.RotateTrustedDevice(ctx, id, []byte(id+"-0"), []byte(id+"-x"), t0, "192.0.2.1"); err != nil || won {
			t.Fatalf("second rotation of the same token won: %v", err)
		}
	}
	if n := countRows(t, s, &storage.RetiredDeviceToken{}); n != 2 {
		t.Fatalf("%d retired tokens, want 2", n)
	}
	n, err := s.DeleteExpiredTrustedDevices(ctx, t0.Add(2*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("sweep = %d, %v", n, err)
	}
	if _, err := s.GetTrustedDevice(ctx, "u", live); err != nil {
		t.Fatalf("the live series went: %v", err)
	}
	if n := countRows(t, s, &storage.RetiredDeviceToken{}); n != 1 {
		t.Fatalf("%d retired tokens after the sweep, want 1", n)
	}
}

// Devices remembered for one user at the same instant, from many replicas' worth
// of connections, never leave more than the cap: each creation holds the user
// before it counts (on PostgreSQL two transactions would otherwise each see only
// their own new row and evict too few; without the hold a round of 24 exceeds
// the cap about one time in three, so 16 rounds all but always catch it).
func TestTrustedDevicesCapHoldsUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	s := storagetest.Open(t)
	const maxPerUser, creators, rounds = 3, 24, 16
	for round := range rounds {
		user := fmt.Sprintf("u-cap-%d", round)
		errs := testfix.AtOnce(creators, func(i int) error {
			id := fmt.Sprintf("00000000-0000-0000-%04d-%012d", round, i)
			_, err := s.CreateTrustedDevice(ctx, &storage.TrustedDevice{ID: id, UserID: user, TokenHash: []byte(id),
				CreatedAt: t0.Add(time.Duration(i) * time.Millisecond), ExpiresAt: t0.Add(time.Hour)}, maxPerUser)
			return err
		})
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		devices, err := s.ListTrustedDevices(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		if len(devices) != maxPerUser {
			t.Fatalf("round %d: %d remembered devices after %d concurrent creations, want the cap %d", round, len(devices), creators, maxPerUser)
		}
	}
}
