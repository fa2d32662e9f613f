package storage_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twofactor/twofactor/internal/testfix"
	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// An unpublished send is taken back at most once, however many callers try at
// once, and not once a later send was counted; the counters never go below zero.
func TestUnsendOTPCodeOnceAndNeverBelow(t *testing.T) {
	s := storagetest.Open(t)
	ctx := context.Background()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	day := storage.OTPDay(now)
	caps := []storage.OTPSendCap{{Scope: "user", Key: "u1", Limit: 3}, {Scope: "dest", Key: "d1", Limit: 3}}
	for _, id := range []string{"a", "b"} {
		if err := s.CreateOTPCode(ctx, otpRow(id, now), caps, now); err != nil {
			t.Fatal(err)
		}
	}
	var won atomic.Int32
	for _, err := range testfix.AtOnce(8, func(int) error {
		ok, err := s.UnsendOTPCode(ctx, "u1", "a", 1, "not published", caps, day, now)
		if ok {
			won.Add(1)
		}
		return err
	}) {
		if err != nil {
			t.Fatal(err)
		}
	}
	if won.Load() != 1 {
		t.Fatalf("%d callers took the send back, want 1", won.Load())
	}
	if c := gormOTP(t, s, "a"); c.Sends != 0 || c.Delivery != storage.DeliveryFailed || c.DeliveryReason != "not published" {
		t.Fatalf("code a after unsend: sends %d, delivery %q %q", c.Sends, c.Delivery, c.DeliveryReason)
	}
	// One send (b's) remains counted: two more pass the cap of 3, the next is refused.
	for _, id := range []string{"c", "d"} {
		if err := s.CreateOTPCode(ctx, otpRow(id, now), caps, now); err != nil {
			t.Fatalf("send %s after the unsend: %v", id, err)
		}
	}
	var capErr *storage.SendCapError
	if err := s.CreateOTPCode(ctx, otpRow("e", now), caps, now); !errors.As(err, &capErr) {
		t.Fatalf("fourth counted send: %v, want a cap error", err)
	}
	// A send not the code's last (b was resent meanwhile) is not taken back.
	if err := s.ResendOTPCode(ctx, "u1", "b", 1, now, nil, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.UnsendOTPCode(ctx, "u1", "b", 1, "not published", caps, day, now); err != nil || ok {
		t.Fatalf("unsend of an earlier send: %v %v, want false", ok, err)
	}
	if c := gormOTP(t, s, "b"); c.Sends != 2 {
		t.Fatalf("code b sends %d, want 2", c.Sends)
	}
}
