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

// Each capped insert (the one helper under CreateAppPasswordWithin,
// CreateFactorWithin and CreatePushEnrollmentWithin), called for one user by 24
// goroutines at once, lets exactly the cap through and refuses the others with
// a *CapError naming what, the cap and the count it read; rows the cap does not
// count (another user's, an expired pending factor or enrollment token, a used
// token, another method's factor) are left out of the count. On PostgreSQL
// (TWOFACTOR_TEST_DATABASE_URL) each round fails without the hold: two
// transactions would each count the rows committed before either and both
// insert.
func TestCapsHoldUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	now := t0
	past, later := now.Add(-time.Minute), now.Add(time.Hour)
	type capped struct {
		name, what string
		limit      int
		// seed stores rows of user the cap must not count.
		seed func(s *storage.Store, user string) error
		// create is the capped insert of the i-th row of user.
		create func(s *storage.Store, user string, i int) error
	}
	caps := []capped{
		{
			name: "app passwords", what: "app passwords", limit: 3,
			seed: func(s *storage.Store, user string) error {
				return s.CreateAppPassword(ctx, &storage.AppPassword{ID: id(user, 900), UserID: user + "-other", Name: "n",
					LookupHash: []byte(id(user, 900)), CreatedAt: now})
			},
			create: func(s *storage.Store, user string, i int) error {
				return s.CreateAppPasswordWithin(ctx, &storage.AppPassword{ID: id(user, i), UserID: user, Name: "n",
					LookupHash: []byte(id(user, i)), CreatedAt: now}, 3)
			},
		},
		{
			name: "factors", what: "totp factors (active or being enrolled)", limit: 4,
			seed: func(s *storage.Store, user string) error {
				return errors.Join(
					s.CreateFactor(ctx, &storage.Factor{ID: id(user, 900), UserID: user, Method: "totp", Name: "n",
						State: storage.FactorPending, ExpiresAt: &past, CreatedAt: now}),
					s.CreateFactor(ctx, &storage.Factor{ID: id(user, 901), UserID: user, Method: "webauthn", Name: "n",
						State: storage.FactorActive, CreatedAt: now}),
				)
			},
			create: func(s *storage.Store, user string, i int) error {
				f := &storage.Factor{ID: id(user, i), UserID: user, Method: "totp", Name: "n", State: storage.FactorActive, CreatedAt: now}
				if i%2 == 1 {
					f.State, f.ExpiresAt = storage.FactorPending, &later
				}
				return s.CreateFactorWithin(ctx, f, 4, now)
			},
		},
		{
			name: "push enrollments", what: "push enrollments waiting", limit: 5,
			seed: func(s *storage.Store, user string) error {
				return errors.Join(
					s.CreatePushEnrollment(ctx, &storage.PushEnrollment{ID: id(user, 900), UserID: user,
						TokenHash: []byte(id(user, 900)), ExpiresAt: past, CreatedAt: now}),
					s.CreatePushEnrollment(ctx, &storage.PushEnrollment{ID: id(user, 901), UserID: user,
						TokenHash: []byte(id(user, 901)), ExpiresAt: later, UsedAt: &past, CreatedAt: now}),
				)
			},
			create: func(s *storage.Store, user string, i int) error {
				return s.CreatePushEnrollmentWithin(ctx, &storage.PushEnrollment{ID: id(user, i), UserID: user,
					TokenHash: []byte(id(user, i)), ExpiresAt: later, CreatedAt: now}, 5, now)
			},
		},
	}
	const creators, rounds = 24, 8
	for k, c := range caps {
		t.Run(c.name, func(t *testing.T) {
			s := storagetest.Open(t)
			for round := range rounds {
				user := fmt.Sprintf("%04d-%04d", k, round)
				if err := c.seed(s, user); err != nil {
					t.Fatal(err)
				}
				errs := testfix.AtOnce(creators, func(i int) error { return c.create(s, user, i) })
				created := 0
				for _, err := range errs {
					var ce *storage.CapError
					switch {
					case err == nil:
						created++
					case !errors.As(err, &ce):
						t.Fatal(err)
					case ce.What != c.what || ce.Limit != c.limit || ce.Have != int64(c.limit):
						t.Fatalf("round %d: %+v, want What %q, Limit and Have %d", round, *ce, c.what, c.limit)
					}
				}
				if created != c.limit {
					t.Fatalf("round %d: %d of %d concurrent inserts passed the cap %d", round, created, creators, c.limit)
				}
				err := c.create(s, user, creators)
				if want := fmt.Sprintf("the user has %d %s, the most allowed is %d", c.limit, c.what, c.limit); err == nil || err.Error() != want {
					t.Fatalf("round %d: one more = %v, want %q", round, err, want)
				}
			}
		})
	}
}

// id is the uuid-shaped id of the i-th row of user ("dddd-dddd").
func id(user string, i int) string {
	return fmt.Sprintf("00000000-0000-%s-%012d", user, i)
}
