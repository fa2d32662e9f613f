package storage_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// seedPush gives user a row in every push table with user rows.
func seedPush(ctx context.Context, s *storage.Store, user string) error {
	return errors.Join(
		s.CreatePushEnrollment(ctx, &storage.PushEnrollment{ID: user + "-pe", UserID: user, TokenHash: []byte(user + "-tok"), ExpiresAt: t0}),
		s.CreatePushDevice(ctx, &storage.PushDevice{ID: user + "-pd", UserID: user, Name: "p", Platform: "x", PublicKey: []byte{1},
			State: storage.PushDeviceActive, EndpointKind: storage.PushEndpointPoll}),
		s.CreatePushChallenge(ctx, &storage.PushChallenge{ID: user + "-pc", UserID: user, State: storage.PushPending, NumberMode: "digits", ExpiresAt: t0}),
		func() error { _, err := s.GetPushLimit(ctx, user); return err }(),
	)
}

func TestPushNonceOnce(t *testing.T) {
	s := storagetest.Open(t)
	replica := storagetest.OpenURL(t, storagetest.URL(t)) // another database: nonces do not leak across
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	fresh := 0
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := s.RememberPushNonce(ctx, "d1", []byte("nonce-0123456789"), t0.Add(time.Minute))
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				fresh++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if fresh != 1 {
		t.Fatalf("%d inserts of one nonce succeeded, want 1", fresh)
	}
	if ok, _ := s.RememberPushNonce(ctx, "d2", []byte("nonce-0123456789"), t0.Add(time.Minute)); !ok {
		t.Fatal("the nonce of another device was refused")
	}
	if ok, _ := replica.RememberPushNonce(ctx, "d1", []byte("nonce-0123456789"), t0); !ok {
		t.Fatal("fresh database refused")
	}
	if n, err := s.DeletePushNoncesBefore(ctx, t0.Add(2*time.Minute)); n != 2 || err != nil {
		t.Fatalf("deleted %d, %v", n, err)
	}
}

func TestPushLimitCompareAndSwap(t *testing.T) {
	s := storagetest.Open(t)
	ctx := context.Background()
	l, err := s.GetPushLimit(ctx, "alice")
	if err != nil || l.Version != 0 {
		t.Fatalf("limit = %+v, %v", l, err)
	}
	a, b := *l, *l
	a.Version, a.PendingID, a.DayCount = 1, "c1", 1
	b.Version, b.PendingID = 1, "c2"
	if ok, err := s.CompareAndSwapPushLimit(ctx, &a); !ok || err != nil {
		t.Fatalf("first swap: %v, %v", ok, err)
	}
	if ok, _ := s.CompareAndSwapPushLimit(ctx, &b); ok {
		t.Fatal("second swap from the same version won")
	}
	got, _ := s.GetPushLimit(ctx, "alice")
	if got.PendingID != "c1" || got.Version != 1 || got.DayCount != 1 {
		t.Fatalf("limit = %+v", got)
	}
}

func TestPushChallengeAnswerAndRedeemOnce(t *testing.T) {
	s := storagetest.Open(t)
	ctx := context.Background()
	c := &storage.PushChallenge{ID: "c1", UserID: "alice", State: storage.PushPending, NumberMode: "digits", ExpiresAt: t0.Add(time.Minute)}
	if err := s.CreatePushChallenge(ctx, c); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.AnswerPushChallenge(ctx, "c1", "bob", storage.PushApproved, "approve", "d", t0); ok {
		t.Fatal("another user's answer recorded")
	}
	if ok, _ := s.AnswerPushChallenge(ctx, "c1", "alice", storage.PushApproved, "approve", "d", t0.Add(time.Minute)); ok {
		t.Fatal("answer at expiry recorded")
	}
	if ok, _ := s.RedeemPushChallenge(ctx, "c1", t0); ok {
		t.Fatal("pending challenge redeemed")
	}
	if ok, err := s.AnswerPushChallenge(ctx, "c1", "alice", storage.PushApproved, "approve", "d", t0); !ok || err != nil {
		t.Fatalf("answer: %v %v", ok, err)
	}
	if ok, _ := s.AnswerPushChallenge(ctx, "c1", "alice", storage.PushDenied, "deny", "d", t0); ok {
		t.Fatal("second answer recorded")
	}
	if ok, _ := s.RedeemPushChallenge(ctx, "c1", t0); !ok {
		t.Fatal("approved challenge not redeemed")
	}
	if ok, _ := s.RedeemPushChallenge(ctx, "c1", t0); ok {
		t.Fatal("redeemed twice")
	}
}

func TestPushEnrollmentUsedOnce(t *testing.T) {
	s := storagetest.Open(t)
	ctx := context.Background()
	e := &storage.PushEnrollment{ID: "e1", UserID: "alice", TokenHash: []byte("h"), ExpiresAt: t0.Add(time.Minute)}
	if err := s.CreatePushEnrollment(ctx, e); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetPushEnrollment(ctx, []byte("h"), t0.Add(time.Minute)); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("expired enrollment found: %v", err)
	}
	if ok, _ := s.UsePushEnrollment(ctx, "e1", t0); !ok {
		t.Fatal("not used")
	}
	if ok, _ := s.UsePushEnrollment(ctx, "e1", t0); ok {
		t.Fatal("used twice")
	}
	if _, err := s.GetPushEnrollment(ctx, []byte("h"), t0); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("used enrollment found: %v", err)
	}
}

func TestRetirePushEndpointOnlyTheRefusedOne(t *testing.T) {
	s := storagetest.Open(t)
	ctx := context.Background()
	d := &storage.PushDevice{ID: "d1", UserID: "alice", Name: "p", Platform: "web", PublicKey: []byte{1},
		State: storage.PushDeviceActive, EndpointKind: storage.PushEndpointWebPush, SealedEndpoint: []byte("old")}
	if err := s.CreatePushDevice(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPushEndpoint(ctx, "d1", storage.PushEndpointWebPush, "k1", []byte("new")); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.RetirePushEndpoint(ctx, "d1", []byte("old"), t0); ok {
		t.Fatal("a renewed endpoint was retired for the old one's 410")
	}
	if ok, _ := s.RetirePushEndpoint(ctx, "d1", []byte("new"), t0); !ok {
		t.Fatal("not retired")
	}
	got, _ := s.GetPushDevice(ctx, "d1")
	if got.EndpointKind != storage.PushEndpointPoll || got.SealedEndpoint != nil || got.EndpointRetiredAt == nil || got.State != storage.PushDeviceActive {
		t.Fatalf("device = %+v", got)
	}
}
