package storage_test

import (
	"context"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// utc returns a copy of the struct *p with every time (and *time) in UTC and
// without a monotonic reading, so that rows read two ways compare with DeepEqual.
func utc[T any](p *T) T {
	v := *p
	rv := reflect.ValueOf(&v).Elem()
	for i := range rv.NumField() {
		switch f := rv.Field(i); x := f.Interface().(type) {
		case time.Time:
			f.Set(reflect.ValueOf(x.UTC().Round(0)))
		case *time.Time:
			if x != nil {
				u := x.UTC().Round(0)
				f.Set(reflect.ValueOf(&u))
			}
		}
	}
	return v
}

// The hot statements read and write every column as gorm does: rows written by
// one are read back equal by the other, nullable columns set and unset.
func TestHotPushRowsMatchGorm(t *testing.T) {
	s := storagetest.Open(t)
	ctx := context.Background()
	at := t0.Add(time.Microsecond)
	later := at.Add(time.Hour)
	if err := s.DB(ctx).Create(&storage.Factor{ID: "d1", UserID: "alice", Method: "push", Name: "p", State: storage.FactorActive}).Error; err != nil {
		t.Fatal(err)
	}
	full := &storage.PushDevice{ID: "d1", UserID: "alice", Name: "phone", Platform: "android", PublicKey: []byte{1, 2},
		State: storage.PushDeviceActive, EndpointKind: storage.PushEndpointNtfy, SealedEndpoint: []byte{3}, EndpointKeyID: "k1",
		CreatedAt: at, LastSeenAt: &later, RevokedAt: &later, EndpointRetiredAt: &later}
	if err := s.CreatePushDevice(ctx, full); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetActivePushDevice(ctx, "d1")
	if err != nil || !reflect.DeepEqual(utc(got), utc(full)) {
		t.Fatalf("device = %+v, %v; want %+v", got, err, full)
	}
	if list, err := s.ListPushDevices(ctx, "alice", true); err != nil || len(list) != 1 || !reflect.DeepEqual(utc(&list[0]), utc(full)) {
		t.Fatalf("devices = %+v, %v", list, err)
	}

	for _, c := range []*storage.PushChallenge{
		{ID: "c-min", UserID: "alice", State: storage.PushPending, NumberMode: "none", ExpiresAt: later, CreatedAt: at},
		{ID: "c-full", UserID: "alice", State: storage.PushDenied, NumberMode: "digits", NumberHash: []byte{9},
			SealedContext: []byte{8}, ContextKeyID: "k2", ExpiresAt: later, Decision: "deny", DeviceID: "d1",
			AnsweredAt: &at, RedeemedAt: &later, CreatedAt: at},
	} {
		if err := s.CreatePushChallenge(ctx, c); err != nil {
			t.Fatal(err)
		}
		var viaGorm storage.PushChallenge
		if err := s.DB(ctx).Where("id = ?", c.ID).Take(&viaGorm).Error; err != nil {
			t.Fatal(err)
		}
		got, err := s.GetPushChallenge(ctx, c.ID)
		if err != nil || !reflect.DeepEqual(utc(got), utc(c)) || !reflect.DeepEqual(utc(&viaGorm), utc(c)) {
			t.Fatalf("challenge %s: hot %+v (%v), gorm %+v; want %+v", c.ID, got, err, viaGorm, c)
		}
	}
	if heads, err := s.ListPendingPushHeads(ctx, "alice", at, 10); err != nil || len(heads) != 1 ||
		heads[0].ID != "c-min" || !heads[0].ExpiresAt.Equal(later) {
		t.Fatalf("pending = %+v, %v", heads, err)
	}

	l, err := s.GetPushLimit(ctx, "alice") // created by the hot insert
	if err != nil || !reflect.DeepEqual(utc(l), utc(&storage.PushLimit{UserID: "alice"})) {
		t.Fatalf("new limit = %+v, %v", l, err)
	}
	next := storage.PushLimit{UserID: "alice", Version: 1, PendingID: "c-min", PendingUntil: later, Level: 2,
		NextAllowedAt: at, Day: "2026-11-26", DayCount: 3, Locked: true}
	if ok, err := s.CompareAndSwapPushLimit(ctx, &next); !ok || err != nil {
		t.Fatalf("swap: %v, %v", ok, err)
	}
	var viaGorm storage.PushLimit
	if err := s.DB(ctx).Where("user_id = ?", "alice").Take(&viaGorm).Error; err != nil || !reflect.DeepEqual(utc(&viaGorm), utc(&next)) {
		t.Fatalf("limit via gorm = %+v, %v; want %+v", viaGorm, err, next)
	}
	if got, err := s.GetPushLimit(ctx, "alice"); err != nil || !reflect.DeepEqual(utc(got), utc(&next)) {
		t.Fatalf("limit = %+v, %v; want %+v", got, err, next)
	}

	lc := &storage.Challenge{ID: "l1", UserID: "alice", Method: "push", State: storage.ChallengeOpen, Session: []byte("c-min"),
		MaxAttempts: 5, ExpiresAt: later, ClientIP: "192.0.2.1", CreatedAt: at, UpdatedAt: at}
	if err := s.CreateChallenge(ctx, lc); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetChallenge(ctx, "l1"); err != nil || !reflect.DeepEqual(utc(got), utc(lc)) {
		t.Fatalf("login challenge = %+v, %v; want %+v", got, err, lc)
	}
}

// RedeemUsersPushChallenge redeems only the user's approved, unexpired
// challenge, once, of any number of concurrent callers.
func TestRedeemUsersPushChallengeOnce(t *testing.T) {
	s := storagetest.Open(t)
	ctx := context.Background()
	mk := func(id, state string, expires time.Time) {
		t.Helper()
		if err := s.CreatePushChallenge(ctx, &storage.PushChallenge{ID: id, UserID: "alice", State: state, NumberMode: "digits",
			ExpiresAt: expires, CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	mk("ok", storage.PushApproved, t0.Add(time.Minute))
	mk("pending", storage.PushPending, t0.Add(time.Minute))
	mk("denied", storage.PushDenied, t0.Add(time.Minute))
	mk("late", storage.PushApproved, t0)
	for _, tc := range []struct{ id, user string }{{"ok", "bob"}, {"pending", "alice"}, {"denied", "alice"}, {"late", "alice"}, {"none", "alice"}} {
		if ok, err := s.RedeemUsersPushChallenge(ctx, tc.id, tc.user, t0); ok || err != nil {
			t.Errorf("%s by %s: redeemed %v, %v", tc.id, tc.user, ok, err)
		}
	}
	var won atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := s.RedeemUsersPushChallenge(ctx, "ok", "alice", t0)
			if err != nil {
				t.Error(err)
			}
			if ok {
				won.Add(1)
			}
		}()
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d redemptions of one approval, want 1", won.Load())
	}
	if c, err := s.GetPushChallenge(ctx, "ok"); err != nil || c.State != storage.PushRedeemed || c.RedeemedAt == nil {
		t.Fatalf("after redemption: %+v, %v", c, err)
	}
}
