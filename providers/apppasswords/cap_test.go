package apppasswords_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/twofactor/twofactor/internal/testfix"
	"github.com/twofactor/twofactor/providers/apppasswords"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// Passwords issued for one user at the same instant, on two replicas, stop at
// MaxPerUser: the count and the insert are one held transaction, so exactly
// MaxPerUser issues succeed and the others are ErrTooMany, round after round.
func TestIssueCapHoldsUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	url := storagetest.URL(t)
	ring := storagetest.KeyRing(t)
	capped := func(c *apppasswords.Config) { c.MaxPerUser = 3 }
	replicas := []*replica{newReplica(t, url, ring, 0, capped), newReplica(t, url, ring, 0, capped)}
	const issuers, rounds = 24, 8
	for round := range rounds {
		user := fmt.Sprintf("cap-%d", round)
		errs := testfix.AtOnce(issuers, func(i int) error {
			_, _, err := replicas[i%2].svc.Issue(ctx, user, fmt.Sprintf("client %d", i), apppasswords.Scope{})
			return err
		})
		issued := 0
		for _, err := range errs {
			switch {
			case err == nil:
				issued++
			case !errors.Is(err, apppasswords.ErrTooMany):
				t.Fatal(err)
			}
		}
		list, err := replicas[0].svc.List(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		if issued != 3 || len(list) != 3 {
			t.Fatalf("round %d: %d issued and %d stored of %d concurrent issues, want the cap 3", round, issued, len(list), issuers)
		}
	}
}
