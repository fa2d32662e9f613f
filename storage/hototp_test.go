package storage_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

func otpRow(id string, now time.Time) *storage.OTPCode {
	return &storage.OTPCode{ID: id, UserID: "u1", FactorID: "f1", Channel: "email", Purpose: storage.OTPLogin,
		State: storage.OTPOpen, CodeHash: []byte("hash-" + id), SealedCode: []byte("sealed-" + id), CodeKeyID: "k1",
		MaxAttempts: 3, Sends: 1, LastSentAt: now, NextSendAt: now.Add(time.Minute), Delivery: storage.DeliveryQueued,
		DeliveryAt: now, ExpiresAt: now.Add(5 * time.Minute), CreatedAt: now, UpdatedAt: now}
}

// gormOTP reads a code row through gorm's builder, as the store did before the
// hot statements.
func gormOTP(t *testing.T, s *storage.Store, id string) storage.OTPCode {
	t.Helper()
	var c storage.OTPCode
	if err := s.DB(context.Background()).Where("id = ?", id).Take(&c).Error; err != nil {
		t.Fatalf("gorm read %s: %v", id, err)
	}
	return c
}

// otpDiff is "" when a and b hold the same values, their times the same
// instants (in UTC), else both rows.
func otpDiff(a, b storage.OTPCode) string {
	norm := func(c storage.OTPCode) storage.OTPCode {
		for _, t := range []*time.Time{&c.LastSentAt, &c.NextSendAt, &c.DeliveryAt, &c.ExpiresAt, &c.CreatedAt, &c.UpdatedAt} {
			*t = t.UTC()
		}
		return c
	}
	if a, b = norm(a), norm(b); reflect.DeepEqual(a, b) {
		return ""
	}
	return fmt.Sprintf("\n gorm: %+v\n  hot: %+v", a, b)
}

// The code login's hot statements (hototp.go) write and read the rows gorm's
// builder wrote and read, on SQLite and (TWOFACTOR_TEST_DATABASE_URL) PostgreSQL.
func TestHotOTPRowsMatchGorm(t *testing.T) {
	ctx := context.Background()
	s := storagetest.Open(t)
	now := time.Date(2026, 12, 3, 10, 0, 0, 123456000, time.UTC)

	// A row inserted by gorm and one by CreateOTPCode read back alike.
	if err := s.DB(ctx).Create(otpRow("viagorm", now)).Error; err != nil {
		t.Fatal(err)
	}
	caps := []storage.OTPSendCap{{Scope: "user", Key: "u1", Limit: 2}}
	if err := s.CreateOTPCode(ctx, otpRow("viahot", now), caps, now); err != nil {
		t.Fatal(err)
	}
	g, h := gormOTP(t, s, "viagorm"), gormOTP(t, s, "viahot")
	h2 := h
	h2.ID, h2.CodeHash, h2.SealedCode = g.ID, g.CodeHash, g.SealedCode
	if d := otpDiff(g, h2); d != "" {
		t.Errorf("row inserted by CreateOTPCode differs from gorm's: %s", d)
	}
	if string(h.CodeHash) != "hash-viahot" || string(h.SealedCode) != "sealed-viahot" {
		t.Errorf("hashes %q %q", h.CodeHash, h.SealedCode)
	}

	// GetOTPCode reads what gorm reads, to the instant.
	got, err := s.GetOTPCode(ctx, "u1", "viahot")
	if err != nil {
		t.Fatal(err)
	}
	if d := otpDiff(h, *got); d != "" {
		t.Errorf("GetOTPCode differs from gorm's read: %s", d)
	}
	if _, err := s.GetOTPCode(ctx, "u2", "viahot"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("another user's code: %v, want ErrNotFound", err)
	}

	// AttemptOTPCode returns the row as its count left it.
	later := now.Add(time.Second)
	row, err := s.AttemptOTPCode(ctx, "u1", "viahot", later)
	if err != nil {
		t.Fatal(err)
	}
	if row.Attempts != 1 || !row.UpdatedAt.Equal(later) {
		t.Errorf("attempt returned attempts %d updated %v", row.Attempts, row.UpdatedAt)
	}
	if d := otpDiff(gormOTP(t, s, "viahot"), *row); d != "" {
		t.Errorf("AttemptOTPCode's row differs from gorm's read: %s", d)
	}

	// Spent: two more attempts, then none; FailOTPCodeIfSpent fails it.
	for range 2 {
		if _, err := s.AttemptOTPCode(ctx, "u1", "viahot", later); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.AttemptOTPCode(ctx, "u1", "viahot", later); !errors.Is(err, storage.ErrOTPNotWon) {
		t.Errorf("fourth attempt: %v, want ErrOTPNotWon", err)
	}
	if _, err := s.AttemptOTPCode(ctx, "u1", "nosuch", later); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("attempt on no code: %v, want ErrNotFound", err)
	}
	if err := s.FailOTPCodeIfSpent(ctx, "viagorm", later); err != nil { // not spent: unchanged
		t.Fatal(err)
	}
	if err := s.FailOTPCodeIfSpent(ctx, "viahot", later); err != nil {
		t.Fatal(err)
	}
	if st := gormOTP(t, s, "viagorm").State; st != storage.OTPOpen {
		t.Errorf("unspent code's state %q", st)
	}
	if st := gormOTP(t, s, "viahot").State; st != storage.OTPFailed {
		t.Errorf("spent code's state %q", st)
	}
	if won, err := s.ConsumeOTPCode(ctx, "viahot", later); err != nil || won {
		t.Errorf("consume of a failed code: %v %v", won, err)
	}

	// ConsumeOTPCode: one win, then none; an expired code is not consumed.
	if won, err := s.ConsumeOTPCode(ctx, "viagorm", now.Add(5*time.Minute)); err != nil || won {
		t.Errorf("consume at expiry: %v %v", won, err)
	}
	if won, err := s.ConsumeOTPCode(ctx, "viagorm", later); err != nil || !won {
		t.Errorf("consume: %v %v", won, err)
	}
	if won, err := s.ConsumeOTPCode(ctx, "viagorm", later); err != nil || won {
		t.Errorf("second consume: %v %v", won, err)
	}
	if c := gormOTP(t, s, "viagorm"); c.State != storage.OTPUsed || !c.UpdatedAt.Equal(later) {
		t.Errorf("consumed row: state %q updated %v", c.State, c.UpdatedAt)
	}

	// RecordOTPDelivery: over queued, over an older outcome, not over a newer one.
	if ok, err := s.RecordOTPDelivery(ctx, "viagorm", storage.DeliveryDelivered, "", later); err != nil || !ok {
		t.Errorf("record delivered: %v %v", ok, err)
	}
	if ok, err := s.RecordOTPDelivery(ctx, "viagorm", storage.DeliveryFailed, "bounced", now); err != nil || ok {
		t.Errorf("stale outcome written: %v %v", ok, err)
	}
	if ok, err := s.RecordOTPDelivery(ctx, "viagorm", storage.DeliveryFailed, "bounced", later.Add(time.Second)); err != nil || !ok {
		t.Errorf("newer outcome: %v %v", ok, err)
	}
	if c := gormOTP(t, s, "viagorm"); c.Delivery != storage.DeliveryFailed || c.DeliveryReason != "bounced" ||
		!c.DeliveryAt.Equal(later.Add(time.Second)) {
		t.Errorf("delivery %q %q %v", c.Delivery, c.DeliveryReason, c.DeliveryAt)
	}

	// The caps: the second code was the user's first counted send; one more
	// passes, the next is refused and writes nothing.
	if err := s.CreateOTPCode(ctx, otpRow("second", now), caps, now); err != nil {
		t.Fatal(err)
	}
	var capErr *storage.SendCapError
	if err := s.CreateOTPCode(ctx, otpRow("third", now), caps, now); !errors.As(err, &capErr) || capErr.Scope != "user" {
		t.Fatalf("over the cap: %v", err)
	}
	if _, err := s.GetOTPCode(ctx, "u1", "third"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("refused code stored: %v", err)
	}
}
