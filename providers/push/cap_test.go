package push_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/twofactor/twofactor/internal/testfix"
	"github.com/twofactor/twofactor/providers/push"
	"github.com/twofactor/twofactor/storage"
)

// Enrollments of one user finished at the same instant, on two replicas, stop at
// MaxDevices: the count and the insert run in one transaction that holds the
// user first, so exactly MaxDevices finish and the others are ErrTooManyDevices.
func TestEnrollmentCapHoldsUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	cfg := push.Config{MaxDevices: 2, MaxPendingEnrollments: 12}
	e := newEnv(t, cfg)
	replicas := []*push.Service{e.svc, e.service(e.store, cfg)}
	const devices, rounds = 12, 6
	for round := range rounds {
		user := fmt.Sprintf("cap-%d", round)
		inputs := make([]push.FinishInput, devices)
		for i := range inputs {
			en, err := e.svc.BeginEnrollment(ctx, user, "")
			if err != nil {
				t.Fatal(err)
			}
			inputs[i] = e.finishInput(newKey(t), en.Token, push.Endpoint{Kind: storage.PushEndpointPoll}, false)
		}
		errs := testfix.AtOnce(devices, func(i int) error {
			_, err := replicas[i%2].FinishEnrollment(ctx, inputs[i])
			return err
		})
		finished := 0
		for _, err := range errs {
			switch {
			case err == nil:
				finished++
			case !errors.Is(err, push.ErrTooManyDevices):
				t.Fatal(err)
			}
		}
		active, err := e.svc.Devices(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		if finished != 2 || len(active) != 2 {
			t.Fatalf("round %d: %d finished and %d active of %d concurrent enrollments, want the cap 2", round, finished, len(active), devices)
		}
	}
}
