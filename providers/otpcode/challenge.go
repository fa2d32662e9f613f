package otpcode

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/twofactor/twofactor/storage"
)

// ChallengeInput asks for a login code.
type ChallengeInput struct {
	// ID is the challenge's id as the server stores it ("": a fresh uuid).
	ID       string
	UserID   string
	Channel  string
	FactorID string // "": the user's only active factor of the channel
	Locale   string // the user's locale, if the backend gives one
	Client   string // the requesting client, as the backend describes it
}

// Challenge is a login code sent (or rather, ready to send: Send).
type Challenge struct {
	ID        string
	FactorID  string
	Masked    string
	Digits    int
	ExpiresAt time.Time
	Send      *Send
}

// BeginChallenge draws a code for one challenge, bound to it, and stores its
// keyed hash and its sealed form; the first send counts toward the daily caps.
// The caller publishes Send after storing its own challenge.
func (p *Provider) BeginChallenge(ctx context.Context, in ChallengeInput) (*Challenge, error) {
	if !ValidChannel(in.Channel) {
		return nil, fmt.Errorf("otpcode: unknown channel %q", in.Channel)
	}
	if err := checkIDs(in.UserID, in.ID); err != nil {
		return nil, err
	}
	if err := checkIDs(in.UserID, in.FactorID); err != nil {
		return nil, err
	}
	if in.ID == "" {
		in.ID = uuid.NewString()
	}
	f, err := p.loginFactor(ctx, in.UserID, in.Channel, in.FactorID)
	if err != nil {
		return nil, err
	}
	dest, err := p.openDestination(f)
	if err != nil {
		return nil, err
	}
	send, err := p.newCode(ctx, codeRequest{id: in.ID, userID: in.UserID, factor: f, dest: dest,
		purpose: storage.OTPLogin, locale: in.Locale, client: in.Client})
	if err != nil {
		return nil, err
	}
	return &Challenge{ID: in.ID, FactorID: f.ID, Masked: dest.Masked(), Digits: p.cfg.Digits, ExpiresAt: send.ExpiresAt, Send: send}, nil
}

// loginFactor finds the active factor a login code goes to.
func (p *Provider) loginFactor(ctx context.Context, userID, channel, factorID string) (*storage.Factor, error) {
	if factorID != "" {
		f, err := p.store.GetFactor(ctx, userID, factorID)
		if errors.Is(err, storage.ErrNotFound) || err == nil && (f.Method != channel || f.State != storage.FactorActive) {
			return nil, ErrNoFactor
		}
		return f, err
	}
	fs, err := p.store.ListFactors(ctx, userID, channel, storage.FactorActive)
	switch {
	case err != nil:
		return nil, err
	case len(fs) == 0:
		return nil, ErrNoFactor
	case len(fs) > 1:
		return nil, ErrChooseFactor
	}
	return &fs[0], nil
}

// codeRequest is what newCode needs.
type codeRequest struct {
	id, userID      string
	factor          *storage.Factor
	dest            Destination
	purpose         string
	locale, client  string
	expiresAtLatest time.Time // an enrollment's end; zero for a login
}

// newCode draws, renders and stores a code, counting its first send.
func (p *Provider) newCode(ctx context.Context, r codeRequest) (*Send, error) {
	code, err := generateCode(p.rand, p.cfg.Digits)
	if err != nil {
		return nil, err
	}
	now := p.now().UTC()
	exp := now.Add(p.cfg.CodeTTL)
	if !r.expiresAtLatest.IsZero() && r.expiresAtLatest.Before(exp) {
		exp = r.expiresAtLatest
	}
	send, err := p.render(r, code, exp, 1)
	if err != nil {
		return nil, err
	}
	keyID, sealed, err := p.keys.Seal([]byte(code), storage.OTPCodeAAD(r.userID, r.id))
	if err != nil {
		return nil, err
	}
	row := &storage.OTPCode{
		ID: r.id, UserID: r.userID, FactorID: r.factor.ID, Channel: r.dest.Channel, Purpose: r.purpose,
		State: storage.OTPOpen, CodeHash: hashCode(p.keys, r.id, code), SealedCode: sealed, CodeKeyID: keyID,
		MaxAttempts: p.cfg.MaxAttempts, Sends: 1, LastSentAt: now, NextSendAt: now.Add(p.cfg.ResendCooldown),
		Delivery: storage.DeliveryQueued, DeliveryAt: now, ExpiresAt: exp, CreatedAt: now, UpdatedAt: now,
	}
	if err := p.store.CreateOTPCode(ctx, row, p.caps(r.userID, r.dest), now); err != nil {
		return nil, capError(err)
	}
	send.CountedAt = now
	return send, nil
}

// DeliveryNotPublished is the delivery reason of a code send taken back by Unsend.
const DeliveryNotPublished = "not published"

// Unsend takes back a code's send that was counted but, as its publisher
// proved, never published: the code's count of sends and the daily caps of
// the user and of the destination get it back, and its delivery is recorded
// as failed. One conditional UPDATE of the code row (it must still be at this
// send: a later send counted meanwhile keeps every count) and conditional
// decrements of the counters of the day it was counted, in one transaction:
// the send is taken back at most once and no count drops below the sends
// really made. It reports whether the send was taken back; a notice (not
// counted per code) is left alone.
func (p *Provider) Unsend(ctx context.Context, s *Send) (bool, error) {
	if s == nil || s.Kind != KindCode || s.CountedAt.IsZero() {
		return false, nil
	}
	dest := Destination{Channel: s.Channel, Address: s.Destination}
	return p.store.UnsendOTPCode(ctx, s.UserID, s.ID, s.Seq, DeliveryNotPublished, p.caps(s.UserID, dest),
		storage.OTPDay(s.CountedAt), p.now().UTC())
}

// render builds the Send of a code.
func (p *Provider) render(r codeRequest, code string, exp time.Time, seq int) (*Send, error) {
	msg, err := p.tpl.RenderCode(r.locale, r.dest.Channel, p.cfg.Domain, MessageData{
		Service: p.cfg.ServiceName, Code: code, Minutes: minutes(exp.Sub(p.now())), Client: cleanClient(r.client),
		Enrollment: r.purpose == storage.OTPEnroll,
	})
	if err != nil {
		return nil, err
	}
	return &Send{Kind: KindCode, Channel: r.dest.Channel, ID: r.id, Seq: seq, UserID: r.userID, FactorID: r.factor.ID,
		Destination: r.dest.Address, Code: code, Subject: msg.Subject, Text: msg.Text, Locale: normalizeLocale(r.locale), ExpiresAt: exp}, nil
}

// minutes rounds a lifetime up to whole minutes (a 4 min 30 s code "5 minutes").
func minutes(d time.Duration) int {
	m := int((d + time.Minute - 1) / time.Minute)
	return max(m, 1)
}

// Result is the outcome of an answer.
type Result struct {
	Accepted bool
	FactorID string
	// Remaining counts the attempts still allowed after a wrong answer.
	Remaining int
}

// Verify checks a login code. The attempt is counted before the answer is
// evaluated (one conditional UPDATE: of any number of concurrent answers at
// most MaxAttempts are evaluated), the keyed hashes are compared in constant
// time, and the code is consumed by a conditional UPDATE (of concurrent right
// answers exactly one is accepted; the others get ErrUsed). Errors:
// ErrMalformed (not counted: it cannot be a guess), ErrWrongCode (Result has
// Remaining), ErrNoAttemptsLeft, ErrExpired, ErrUsed, ErrNoFactor (the factor
// was removed), storage.ErrNotFound.
func (p *Provider) Verify(ctx context.Context, userID, id, code string) (Result, error) {
	row, res, err := p.check(ctx, userID, id, code, storage.OTPLogin)
	if err != nil {
		return res, err
	}
	f, err := p.store.GetFactor(ctx, userID, row.FactorID)
	if errors.Is(err, storage.ErrNotFound) || err == nil && (f.State != storage.FactorActive || f.Method != row.Channel) {
		return Result{}, ErrNoFactor
	}
	if err != nil {
		return Result{}, err
	}
	won, err := p.store.ConsumeOTPCode(ctx, id, p.now().UTC())
	if err != nil {
		return Result{}, err
	}
	if !won {
		return Result{}, ErrUsed
	}
	return Result{Accepted: true, FactorID: row.FactorID}, nil
}

// check counts an attempt on a code row of purpose and compares the answer.
// It returns the row when the answer is right (not yet consumed).
func (p *Provider) check(ctx context.Context, userID, id, code, purpose string) (*storage.OTPCode, Result, error) {
	code, err := looseCode(code)
	if err != nil {
		return nil, Result{}, err
	}
	now := p.now().UTC()
	row, err := p.store.AttemptOTPCode(ctx, userID, id, now)
	if errors.Is(err, storage.ErrOTPNotWon) {
		return nil, Result{}, p.whyClosed(ctx, userID, id, now)
	}
	if err != nil {
		return nil, Result{}, err
	}
	if row.Purpose != purpose {
		return nil, Result{}, storage.ErrNotFound
	}
	// Always compare the keyed hashes (constant time); a code of another
	// length simply does not match.
	if !storage.EqualMAC(hashCode(p.keys, id, code), row.CodeHash) {
		if row.Attempts >= row.MaxAttempts {
			if err := p.store.FailOTPCodeIfSpent(ctx, id, now); err != nil {
				return nil, Result{}, err
			}
		}
		return nil, Result{Remaining: max(row.MaxAttempts-row.Attempts, 0)}, ErrWrongCode
	}
	return row, Result{}, nil
}

// looseCode drops spaces and dashes and checks that what remains is 1 to
// MaxDigits digits. The exact length is not checked here: a code of the wrong
// length is a wrong code, and counts.
func looseCode(code string) (string, error) {
	if len(code) > 64 {
		return "", ErrMalformed
	}
	out := make([]byte, 0, MaxDigits)
	for i := 0; i < len(code); i++ {
		switch c := code[i]; {
		case c >= '0' && c <= '9':
			if len(out) == MaxDigits {
				return "", fmt.Errorf("%w: more than %d digits", ErrMalformed, MaxDigits)
			}
			out = append(out, c)
		case c == ' ' || c == '-' || c == '\t':
		default:
			return "", ErrMalformed
		}
	}
	if len(out) == 0 {
		return "", fmt.Errorf("%w: no digits", ErrMalformed)
	}
	return string(out), nil
}

// whyClosed tells why a code took no attempt.
func (p *Provider) whyClosed(ctx context.Context, userID, id string, now time.Time) error {
	row, err := p.store.GetOTPCode(ctx, userID, id)
	if err != nil {
		return err
	}
	switch {
	case row.State == storage.OTPUsed:
		return ErrUsed
	case row.State == storage.OTPFailed || row.Attempts >= row.MaxAttempts:
		return ErrNoAttemptsLeft
	case !now.Before(row.ExpiresAt):
		return ErrExpired
	}
	return storage.ErrOTPNotWon
}
