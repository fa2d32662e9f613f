package otpcode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/twofactor/twofactor/storage"
)

// MaxNameLen bounds a factor's name.
const MaxNameLen = 255

// EnrollInput asks to enroll a destination.
type EnrollInput struct {
	UserID  string
	Channel string
	// Destination is the address or number as typed; ignored for Telegram,
	// whose chat is bound through the returned link.
	Destination string
	Name        string // "": the masked destination
	// Replaces names an active factor of the same channel that the new one
	// replaces once proved; its destination is then told of the change.
	Replaces string
	Locale   string
	Client   string
}

// Enrollment is a pending factor waiting for its proof.
type Enrollment struct {
	Factor    *storage.Factor
	Masked    string // "" for Telegram until the chat is bound
	ExpiresAt time.Time
	// Send carries the confirmation code (email, SMS, Signal); nil for Telegram.
	Send *Send
	// Link is Telegram's deep link, https://t.me/<bot>?start=<token>: the user
	// opens it and presses Start; the token works once, for LinkTTL.
	Link string
}

// BeginEnrollment creates a pending factor. For email, SMS and Signal the
// destination is sealed in it and a code is drawn for it (counted toward the
// daily caps like any send); for Telegram it returns a deep link whose one-time
// token binds the chat that presses Start. Nothing is written when a check or
// a cap refuses.
func (p *Provider) BeginEnrollment(ctx context.Context, in EnrollInput) (*Enrollment, error) {
	if !ValidChannel(in.Channel) {
		return nil, fmt.Errorf("otpcode: unknown channel %q", in.Channel)
	}
	if err := checkIDs(in.UserID, in.Replaces); err != nil {
		return nil, err
	}
	if len(in.Name) > MaxNameLen {
		return nil, fmt.Errorf("name: at most %d bytes", MaxNameLen)
	}
	if in.Replaces != "" {
		if _, err := p.loginFactor(ctx, in.UserID, in.Channel, in.Replaces); err != nil {
			return nil, fmt.Errorf("replaces: %w", err)
		}
	}
	if in.Channel == Telegram {
		return p.beginTelegram(ctx, in)
	}
	dest, err := ParseDestination(in.Channel, in.Destination, p.cfg.DefaultRegion)
	if err != nil {
		return nil, err
	}
	now := p.now().UTC()
	f := p.pendingFactor(in, dest.Masked(), now.Add(p.cfg.CodeTTL))
	if f.SecretKeyID, f.SealedSecret, err = p.keys.Seal([]byte(dest.Address), f.AAD()); err != nil {
		return nil, err
	}
	var send *Send
	err = p.store.InTx(ctx, func(ctx context.Context) error {
		if err := p.store.CreateFactorWithin(ctx, f, p.factorCap(in), now); err != nil {
			return err
		}
		send, err = p.newCode(ctx, codeRequest{id: f.ID, userID: in.UserID, factor: f, dest: dest,
			purpose: storage.OTPEnroll, locale: in.Locale, client: in.Client, expiresAtLatest: *f.ExpiresAt})
		return err
	})
	if err != nil {
		return nil, err
	}
	return &Enrollment{Factor: f, Masked: dest.Masked(), ExpiresAt: *f.ExpiresAt, Send: send}, nil
}

// Abandon removes a pending factor whose enrollment never reached its caller
// (its code could not be handed over for delivery): unfinishable, it would
// otherwise hold a slot of the channel's cap until it expires. A factor no
// longer pending is left alone.
func (p *Provider) Abandon(ctx context.Context, userID, factorID string) error {
	_, err := p.store.DeletePendingFactor(ctx, userID, factorID)
	return err
}

// factorCap is the cap in's new factor is counted against: a replacement may
// take a user one beyond MaxFactorsPerChannel while it is pending, since the
// factor it replaces goes when it is finished (a user at the cap can still
// change an address in place; a second replacement at once is refused).
func (p *Provider) factorCap(in EnrollInput) int {
	if in.Replaces != "" {
		return p.cfg.MaxFactorsPerChannel + 1
	}
	return p.cfg.MaxFactorsPerChannel
}

// pendingFactor builds a pending factor of in's channel.
func (p *Provider) pendingFactor(in EnrollInput, masked string, exp time.Time) *storage.Factor {
	data, _ := json.Marshal(FactorData{Channel: in.Channel, Masked: masked, Replaces: in.Replaces, Locale: normalizeLocale(in.Locale)})
	name := in.Name
	if name == "" {
		name = masked
	}
	now := p.now().UTC()
	return &storage.Factor{ID: uuid.NewString(), UserID: in.UserID, Method: in.Channel, Name: name,
		State: storage.FactorPending, Data: data, ExpiresAt: &exp, CreatedAt: now, UpdatedAt: now}
}

// beginTelegram creates a pending Telegram factor and its link token.
func (p *Provider) beginTelegram(ctx context.Context, in EnrollInput) (*Enrollment, error) {
	if p.cfg.TelegramBot == "" {
		return nil, ErrTelegramDisabled
	}
	tok, err := newLinkToken(p.rand)
	if err != nil {
		return nil, err
	}
	now := p.now().UTC()
	f := p.pendingFactor(in, "", now.Add(p.cfg.LinkTTL))
	if in.Name == "" {
		f.Name = "Telegram"
	}
	err = p.store.InTx(ctx, func(ctx context.Context) error {
		if err := p.store.CreateFactorWithin(ctx, f, p.factorCap(in), now); err != nil {
			return err
		}
		return p.store.CreateOTPLinkToken(ctx, &storage.OTPLinkToken{TokenHash: tokenHash(p.keys, tok),
			UserID: in.UserID, FactorID: f.ID, ExpiresAt: *f.ExpiresAt, CreatedAt: now})
	})
	if err != nil {
		return nil, err
	}
	link := "https://t.me/" + p.cfg.TelegramBot + "?start=" + tok
	return &Enrollment{Factor: f, ExpiresAt: *f.ExpiresAt, Link: link}, nil
}

// Finished is a proved enrollment.
type Finished struct {
	Factor *storage.Factor
	// Notice tells the replaced factor's destination that the factor moved
	// (nil when nothing was replaced).
	Notice *Send
}

// FinishEnrollment proves a pending email, SMS or Signal factor with the code
// sent to it and makes it active (replacing the factor it names, if any).
// Attempts are counted before evaluation; when they are used up, or the
// enrollment expired, the pending factor is removed (ErrEnrollmentExpired).
// A wrong code is ErrWrongCode with the attempts left in Result.
//
// A replacement's notice (Finished.Notice) is only prepared: a caller that
// publishes it uses FinishEnrollmentThen, so that the replacement and the
// notice go together.
func (p *Provider) FinishEnrollment(ctx context.Context, userID, factorID, code string) (*Finished, Result, error) {
	return p.FinishEnrollmentThen(ctx, userID, factorID, code, nil)
}

// FinishEnrollmentThen is FinishEnrollment running then (when not nil) on the
// result in the activation's transaction: an error of then undoes the
// activation and the replacement (the old factor stays active, the new one
// pending, its code unused and good for a retry; the attempt stays counted, it
// was counted before the code was evaluated) and is returned as it is, so that
// a replaced destination's notice is handed over with the change or the change
// is not made. A retry hands over the same notice (its id is the change's).
func (p *Provider) FinishEnrollmentThen(ctx context.Context, userID, factorID, code string, then func(ctx context.Context, fin *Finished) error) (*Finished, Result, error) {
	f, err := p.store.GetFactor(ctx, userID, factorID)
	if err != nil {
		return nil, Result{}, err
	}
	if !ValidChannel(f.Method) || f.Method == Telegram || f.State != storage.FactorPending {
		return nil, Result{}, ErrNotPending
	}
	now := p.now().UTC()
	if f.ExpiresAt != nil && !now.Before(*f.ExpiresAt) {
		_ = p.store.DeleteFactor(ctx, userID, factorID)
		return nil, Result{}, ErrEnrollmentExpired
	}
	_, res, err := p.check(ctx, userID, factorID, code, storage.OTPEnroll)
	switch {
	case errors.Is(err, ErrNoAttemptsLeft), errors.Is(err, ErrExpired), errors.Is(err, ErrWrongCode) && res.Remaining == 0:
		_ = p.store.DeleteFactor(ctx, userID, factorID)
		return nil, Result{}, ErrEnrollmentExpired
	case err != nil:
		return nil, res, err
	}
	var fin *Finished
	err = p.store.InTx(ctx, func(ctx context.Context) error {
		won, err := p.store.ConsumeOTPCode(ctx, factorID, now)
		if err != nil || !won {
			return errors.Join(err, ErrNotPending)
		}
		fin, err = p.activate(ctx, f, func(ctx context.Context) (bool, error) {
			return p.store.ActivateFactor(ctx, userID, factorID, now, nil)
		})
		return runThen(ctx, fin, err, then)
	})
	if err != nil {
		return nil, Result{}, err
	}
	return fin, Result{Accepted: true, FactorID: factorID}, nil
}

// activate runs the activation of a pending factor f and, when f replaces
// another factor, removes that one and prepares the notice to its destination.
// Run it in a transaction.
func (p *Provider) activate(ctx context.Context, f *storage.Factor, act func(ctx context.Context) (bool, error)) (*Finished, error) {
	ok, err := act(ctx)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrNotPending
	}
	active, err := p.store.GetFactor(ctx, f.UserID, f.ID)
	if err != nil {
		return nil, err
	}
	fin := &Finished{Factor: active}
	data, _ := ParseFactorData(active.Data)
	if data.Replaces == "" {
		return fin, nil
	}
	old, err := p.store.GetFactor(ctx, f.UserID, data.Replaces)
	if errors.Is(err, storage.ErrNotFound) || err == nil && old.Method != f.Method {
		return fin, nil // removed meanwhile: nobody to tell
	}
	if err != nil {
		return nil, err
	}
	if fin.Notice, err = p.changedNotice(old, f.ID, data); err != nil {
		return nil, err
	}
	return fin, p.store.DeleteFactor(ctx, f.UserID, old.ID)
}

// runThen runs then (when not nil) on fin, an activation's result, in the
// activation's transaction, unless the activation failed with err.
func runThen(ctx context.Context, fin *Finished, err error, then func(ctx context.Context, fin *Finished) error) error {
	if err != nil || then == nil {
		return err
	}
	return then(ctx, fin)
}

// changedNotice tells old's destination that the factor moved to the
// destination data masks, factor newID's. Its id is the change's, (old, newID):
// a retried change hands over the same notice.
func (p *Provider) changedNotice(old *storage.Factor, newID string, data FactorData) (*Send, error) {
	msg, err := p.tpl.RenderChanged(data.Locale, old.Method, MessageData{Service: p.cfg.ServiceName, Masked: data.Masked})
	if err != nil {
		return nil, err
	}
	return p.notice(old, noticeID(noticeChanged, old.ID, newID), data.Locale, msg)
}

// BindTelegram completes a Telegram enrollment from the bot's /start binding:
// the one-time token (single use, within LinkTTL) names the pending factor, and
// chatID, the private chat that sent it, becomes its sealed destination. The
// token is the proof of the round trip: it went to the user's session and came
// back through the chat. Errors: ErrBadToken, ErrDestination, ErrNotPending.
func (p *Provider) BindTelegram(ctx context.Context, token, chatID string) (*Finished, error) {
	return p.BindTelegramThen(ctx, token, chatID, nil)
}

// BindTelegramThen is BindTelegram running then (when not nil) on the result in
// the binding's transaction: an error of then undoes the binding (the token is
// unused again), so that a replaced chat's notice (Finished.Notice) is handed
// over with the change or the change is not made.
func (p *Provider) BindTelegramThen(ctx context.Context, token, chatID string, then func(ctx context.Context, fin *Finished) error) (*Finished, error) {
	if err := checkToken(token); err != nil {
		return nil, err
	}
	chat, err := ParseTelegramChat(chatID)
	if err != nil {
		return nil, err
	}
	now := p.now().UTC()
	var fin *Finished
	err = p.store.InTx(ctx, func(ctx context.Context) error {
		t, err := p.store.UseOTPLinkToken(ctx, tokenHash(p.keys, token), now)
		if errors.Is(err, storage.ErrNotFound) {
			return ErrBadToken
		}
		if err != nil {
			return err
		}
		f, err := p.store.GetFactor(ctx, t.UserID, t.FactorID)
		if errors.Is(err, storage.ErrNotFound) {
			return ErrNotPending
		}
		if err != nil {
			return err
		}
		fin, err = p.bindChat(ctx, f, Destination{Channel: Telegram, Address: chat}, now)
		return runThen(ctx, fin, err, then)
	})
	if err != nil {
		return nil, err
	}
	return fin, nil
}

// bindChat seals dest into the pending Telegram factor f and activates it.
func (p *Provider) bindChat(ctx context.Context, f *storage.Factor, dest Destination, now time.Time) (*Finished, error) {
	data, err := ParseFactorData(f.Data)
	if err != nil {
		return nil, err
	}
	data.Masked = dest.Masked()
	raw, _ := json.Marshal(data)
	keyID, sealed, err := p.keys.Seal([]byte(dest.Address), f.AAD())
	if err != nil {
		return nil, err
	}
	return p.activate(ctx, f, func(ctx context.Context) (bool, error) {
		return p.store.BindPendingFactor(ctx, f.UserID, f.ID, Telegram, keyID, sealed, raw, now)
	})
}

// ErrTelegramPending: the Telegram factor waits for its chat to press Start.
var ErrTelegramPending = errors.New("the Telegram chat has not pressed Start in the bot yet")

// TelegramFactor returns a user's Telegram factor once its chat is bound:
// ErrTelegramPending while it waits, ErrEnrollmentExpired when it waited too
// long (the pending factor is removed), ErrNotPending for another factor.
func (p *Provider) TelegramFactor(ctx context.Context, userID, factorID string) (*storage.Factor, error) {
	return p.TelegramFactorThen(ctx, userID, factorID, nil)
}

// TelegramFactorThen is TelegramFactor running then, when not nil, on the active
// factor in a transaction (the activation, by the chat's binding, is past): its
// error is returned.
func (p *Provider) TelegramFactorThen(ctx context.Context, userID, factorID string, then func(ctx context.Context, f *storage.Factor) error) (*storage.Factor, error) {
	f, err := p.telegramFactor(ctx, userID, factorID)
	if err != nil || then == nil {
		return f, err
	}
	if err := p.store.InTx(ctx, func(ctx context.Context) error { return then(ctx, f) }); err != nil {
		return nil, err
	}
	return f, nil
}

func (p *Provider) telegramFactor(ctx context.Context, userID, factorID string) (*storage.Factor, error) {
	f, err := p.store.GetFactor(ctx, userID, factorID)
	if err != nil {
		return nil, err
	}
	switch {
	case f.Method != Telegram:
		return nil, ErrNotPending
	case f.State == storage.FactorActive:
		return f, nil
	case f.ExpiresAt != nil && !p.now().Before(*f.ExpiresAt):
		_ = p.store.DeleteFactor(ctx, userID, factorID)
		return nil, ErrEnrollmentExpired
	}
	return nil, ErrTelegramPending
}
