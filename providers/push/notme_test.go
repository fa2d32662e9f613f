package push_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twofactor/twofactor/providers/push"
	"github.com/twofactor/twofactor/storage"
)

// NotMeContext opens the login context of a push its device refused as "not
// me", and of no other: not one denied, not one another device answered, not one
// of another user.
func TestNotMeContext(t *testing.T) {
	e := newEnv(t, push.Config{})
	ctx := context.Background()
	d, other := e.enroll("alice"), e.enroll("alice")
	b := e.begin("alice")
	rec := func(d *device) *storage.PushDevice { return &storage.PushDevice{ID: d.id, UserID: d.user} }
	if _, err := e.svc.NotMeContext(ctx, rec(d), b.ChallengeID); !errors.Is(err, push.ErrNotFound) {
		t.Fatalf("pending push: %v", err)
	}
	if _, err := e.respond(e.svc, d, push.RespondInput{ChallengeID: b.ChallengeID, Decision: push.DecisionNotMe}); err != nil {
		t.Fatal(err)
	}
	lc, err := e.svc.NotMeContext(ctx, rec(d), b.ChallengeID)
	if err != nil || lc.Client != "Nextcloud" || lc.ClientIP != "203.0.113.7" || lc.Time.IsZero() {
		t.Fatalf("context %+v %v", lc, err)
	}
	for name, dev := range map[string]*storage.PushDevice{
		"another device": rec(other),
		"another user":   {ID: d.id, UserID: "bob"},
	} {
		if _, err := e.svc.NotMeContext(ctx, dev, b.ChallengeID); !errors.Is(err, push.ErrNotFound) {
			t.Errorf("%s: %v", name, err)
		}
	}
	e.clock.Advance(2 * time.Hour) // past the backoff after a refusal
	denied := e.begin("alice")
	if _, err := e.respond(e.svc, d, push.RespondInput{ChallengeID: denied.ChallengeID, Decision: push.DecisionDeny}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.NotMeContext(ctx, rec(d), denied.ChallengeID); !errors.Is(err, push.ErrNotFound) {
		t.Fatalf("denied push: %v", err)
	}
}
