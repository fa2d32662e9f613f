package otpcode

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twofactor/twofactor/storage"
)

// ResendInput asks for a code to be sent again.
type ResendInput struct {
	UserID string
	// ID is the login challenge's id, or the pending factor's id for an enrollment.
	ID     string
	Locale string
	Client string
}

// Resend sends the same code again, only when asked: never before the
// cooldown is over (ResendCooldown, doubled after each resend), at most
// MaxResends times, and within the daily caps per user and per destination.
// It never resets the code's attempts or its lifetime. Of concurrent resends
// of one code, one wins; the others get a *CooldownError. Errors also:
// ErrResendLimit, ErrSendCap, ErrUsed, ErrExpired, ErrNoAttemptsLeft,
// ErrNoFactor, storage.ErrNotFound.
func (p *Provider) Resend(ctx context.Context, in ResendInput) (*Send, error) {
	now := p.now().UTC()
	row, err := p.store.GetOTPCode(ctx, in.UserID, in.ID)
	if err != nil {
		return nil, err
	}
	if err := p.resendable(row, now); err != nil {
		return nil, err
	}
	f, err := p.codeFactor(ctx, row)
	if err != nil {
		return nil, err
	}
	dest, err := p.openDestination(f)
	if err != nil {
		return nil, err
	}
	code, err := p.keys.Open(row.CodeKeyID, row.SealedCode, storage.OTPCodeAAD(row.UserID, row.ID))
	if err != nil {
		return nil, fmt.Errorf("code %s: %w", row.ID, err)
	}
	r := codeRequest{id: row.ID, userID: row.UserID, factor: f, dest: dest, purpose: row.Purpose, locale: in.Locale, client: in.Client}
	send, err := p.render(r, string(code), row.ExpiresAt, row.Sends+1)
	clear(code)
	if err != nil {
		return nil, err
	}
	next := now.Add(p.cfg.ResendCooldown << min(row.Sends, 16))
	err = p.store.ResendOTPCode(ctx, row.UserID, row.ID, row.Sends, next, p.caps(row.UserID, dest), now)
	if errors.Is(err, storage.ErrOTPNotWon) {
		// Another resend (or an answer) changed the row since it was read.
		if again, gerr := p.store.GetOTPCode(ctx, in.UserID, in.ID); gerr == nil {
			if rerr := p.resendable(again, now); rerr != nil {
				return nil, rerr
			}
		}
		return nil, &CooldownError{RetryAfter: p.cfg.ResendCooldown}
	}
	if err != nil {
		return nil, capError(err)
	}
	send.CountedAt = now
	return send, nil
}

// resendable refuses a resend of a code that is closed, cooling down or resent
// enough.
func (p *Provider) resendable(row *storage.OTPCode, now time.Time) error {
	switch {
	case row.State == storage.OTPUsed:
		return ErrUsed
	case row.State == storage.OTPFailed || row.Attempts >= row.MaxAttempts:
		return ErrNoAttemptsLeft
	case !now.Before(row.ExpiresAt):
		return ErrExpired
	case row.Sends > p.cfg.MaxResends:
		return ErrResendLimit
	case now.Before(row.NextSendAt):
		return &CooldownError{RetryAfter: row.NextSendAt.Sub(now)}
	}
	return nil
}

// codeFactor loads the factor a code row goes to, in the state its purpose
// needs (pending for an enrollment, active for a login).
func (p *Provider) codeFactor(ctx context.Context, row *storage.OTPCode) (*storage.Factor, error) {
	want := storage.FactorActive
	if row.Purpose == storage.OTPEnroll {
		want = storage.FactorPending
	}
	f, err := p.store.GetFactor(ctx, row.UserID, row.FactorID)
	if errors.Is(err, storage.ErrNotFound) || err == nil && (f.State != want || f.Method != row.Channel) {
		return nil, ErrNoFactor
	}
	return f, err
}

// Delivery is a code's delivery as the backend sees it.
type Delivery struct {
	State  string // storage.DeliveryQueued, DeliveryDelivered, DeliveryFailed
	Reason string // why it failed, without the code or the destination
	At     time.Time
}

// MaxReasonLen bounds a recorded failure reason.
const MaxReasonLen = 255

// RecordDelivery records a delivery outcome of the code of challenge (or
// enrollment) id, from a gateway status event; id may be a Send's MessageID.
// An outcome older than the one recorded is ignored. It reports whether it
// wrote.
func (p *Provider) RecordDelivery(ctx context.Context, id string, d Delivery) (bool, error) {
	id, _ = SplitMessageID(id)
	switch d.State {
	case storage.DeliveryQueued, storage.DeliveryDelivered, storage.DeliveryFailed:
	default:
		return false, fmt.Errorf("otpcode: delivery state %q: want queued, delivered or failed", d.State)
	}
	if id == "" || len(id) > 36 {
		return false, storage.ErrNotFound
	}
	reason := oneLine(d.Reason)
	if len(reason) > MaxReasonLen {
		reason = reason[:MaxReasonLen]
	}
	if d.At.IsZero() {
		d.At = p.now()
	}
	return p.store.RecordOTPDelivery(ctx, id, d.State, reason, d.At)
}

// Status is what the backend may know of a code: never the code or the
// destination.
type Status struct {
	ID, FactorID, Channel, Purpose string
	State                          string // storage.OTPOpen, OTPUsed, OTPFailed
	Delivery                       Delivery
	Sends                          int
	AttemptsLeft                   int
	ExpiresAt                      time.Time
	// NextResendAt is when a resend is allowed (zero: never again).
	NextResendAt time.Time
}

// Status reports the state and delivery of a user's code.
func (p *Provider) Status(ctx context.Context, userID, id string) (Status, error) {
	row, err := p.store.GetOTPCode(ctx, userID, id)
	if err != nil {
		return Status{}, err
	}
	st := Status{ID: row.ID, FactorID: row.FactorID, Channel: row.Channel, Purpose: row.Purpose, State: row.State,
		Delivery: Delivery{State: row.Delivery, Reason: row.DeliveryReason, At: row.DeliveryAt},
		Sends:    row.Sends, AttemptsLeft: max(row.MaxAttempts-row.Attempts, 0), ExpiresAt: row.ExpiresAt}
	if row.State == storage.OTPOpen && row.Sends <= p.cfg.MaxResends && row.NextSendAt.Before(row.ExpiresAt) {
		st.NextResendAt = row.NextSendAt
	}
	return st, nil
}
