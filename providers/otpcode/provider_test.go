package otpcode

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

var destinations = []struct{ channel, typed, normal, masked string }{
	{Email, " Alice@Example.COM ", "Alice@example.com", "A•••@example.com"},
	{SMS, "+49 151 2345 6712", "+4915123456712", "+49 •••• ••12"},
	{Signal, "+1 202 555 0143", "+12025550143", "+1 •••• ••43"},
}

func TestEnrollAndLogin(t *testing.T) {
	for _, d := range destinations {
		t.Run(d.channel, func(t *testing.T) {
			e := newEnv(t, Config{Domain: "login.example.com"})
			en, err := e.p.BeginEnrollment(e.ctx, EnrollInput{UserID: "u1", Channel: d.channel, Destination: d.typed, Locale: "de-DE"})
			if err != nil {
				t.Fatal(err)
			}
			s := en.Send
			if s.Kind != KindCode || s.Channel != d.channel || s.Destination != d.normal || s.Seq != 1 || s.ID != en.Factor.ID ||
				len(s.Code) != DefaultDigits || !strings.Contains(s.Text, s.Code) || en.Masked != d.masked {
				t.Fatalf("enrollment send %+v (%q, %q), masked %q", s, s.Destination, s.Text, en.Masked)
			}
			if !strings.Contains(strings.ToLower(s.Text), "bestätig") {
				t.Errorf("de enrollment text %q", s.Text)
			}
			if en.Factor.State != storage.FactorPending || en.Factor.Name != d.masked {
				t.Fatalf("pending factor %+v", en.Factor)
			}
			if _, err := e.p.BeginChallenge(e.ctx, ChallengeInput{UserID: "u1", Channel: d.channel}); !errors.Is(err, ErrNoFactor) {
				t.Fatalf("challenge before the proof: %v", err)
			}
			if _, res, err := e.p.FinishEnrollment(e.ctx, "u1", en.Factor.ID, wrong(s.Code)); !errors.Is(err, ErrWrongCode) || res.Remaining != 4 {
				t.Fatalf("wrong proof: %v %+v", err, res)
			}
			fin, _, err := e.p.FinishEnrollment(e.ctx, "u1", en.Factor.ID, s.Code)
			if err != nil || fin.Factor.State != storage.FactorActive || fin.Notice != nil || MaskedDestination(fin.Factor) != d.masked {
				t.Fatalf("finish: %+v %v", fin, err)
			}
			if _, _, err := e.p.FinishEnrollment(e.ctx, "u1", en.Factor.ID, s.Code); !errors.Is(err, ErrNotPending) {
				t.Fatalf("second finish: %v", err)
			}

			ch := e.begin(t, "u1", d.channel)
			if ch.FactorID != en.Factor.ID || ch.Masked != d.masked || !ch.ExpiresAt.Equal(e.clk.Now().Add(DefaultCodeTTL)) ||
				ch.Send.Destination != d.normal || ch.Send.ID != ch.ID {
				t.Fatalf("challenge %+v", ch)
			}
			if res, err := e.p.Verify(e.ctx, "u1", ch.ID, wrong(ch.Send.Code)); !errors.Is(err, ErrWrongCode) || res.Remaining != 4 || res.Accepted {
				t.Fatalf("wrong code: %+v %v", res, err)
			}
			if _, err := e.p.Verify(e.ctx, "u2", ch.ID, ch.Send.Code); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("another user's challenge: %v", err)
			}
			res, err := e.p.Verify(e.ctx, "u1", ch.ID, " "+ch.Send.Code[:3]+"-"+ch.Send.Code[3:])
			if err != nil || !res.Accepted || res.FactorID != en.Factor.ID {
				t.Fatalf("right code: %+v %v", res, err)
			}
			if _, err := e.p.Verify(e.ctx, "u1", ch.ID, ch.Send.Code); !errors.Is(err, ErrUsed) {
				t.Fatalf("replayed code: %v", err)
			}
			if rows := storagetest.AssertNotStored(t, e.store, d.normal, strings.TrimPrefix(d.normal, "+"), s.Code, ch.Send.Code); rows < 4 {
				t.Fatalf("read %d rows", rows)
			}
		})
	}
}

func TestSMSText(t *testing.T) {
	e := newEnv(t, Config{Domain: "Login.Example.com", Digits: 8})
	e.enroll(t, "u1", SMS, "+4915123456712")
	ch := e.begin(t, "u1", SMS)
	if len(ch.Send.Code) != 8 || ch.Digits != 8 {
		t.Fatalf("code %q digits %d", ch.Send.Code, ch.Digits)
	}
	lines := strings.Split(ch.Send.Text, "\n")
	if last := lines[len(lines)-1]; last != "@login.example.com #"+ch.Send.Code {
		t.Fatalf("last line %q; want the WebOTP line", last)
	}
	if !strings.Contains(ch.Send.Text, "Example Cloud") || !strings.Contains(ch.Send.Text, "5 min") {
		t.Fatalf("text %q", ch.Send.Text)
	}
	if ch.Send.Subject != "" {
		t.Fatalf("SMS subject %q", ch.Send.Subject)
	}
}

func TestEmailMessage(t *testing.T) {
	e := newEnv(t, Config{CodeTTL: 10 * time.Minute})
	e.enroll(t, "u1", Email, "alice@example.com")
	ch, err := e.p.BeginChallenge(e.ctx, ChallengeInput{UserID: "u1", Channel: Email, Client: "Firefox\r\nBcc: evil@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	s := ch.Send
	if !strings.Contains(s.Subject, s.Code) || strings.ContainsAny(s.Subject, "\r\n") {
		t.Fatalf("subject %q", s.Subject)
	}
	if !strings.Contains(s.Text, "10 minutes") || !strings.Contains(s.Text, "Firefox  Bcc: evil@example.com") || strings.Contains(s.Text, "@example.com #") {
		t.Fatalf("body %q", s.Text)
	}
}

func TestChallengeFactorChoice(t *testing.T) {
	e := newEnv(t, Config{})
	if _, err := e.p.BeginChallenge(e.ctx, ChallengeInput{UserID: "u1", Channel: SMS}); !errors.Is(err, ErrNoFactor) {
		t.Fatalf("no factor: %v", err)
	}
	a := e.enroll(t, "u1", SMS, "+4915123456712")
	b := e.enroll(t, "u1", SMS, "+4915123456789")
	if _, err := e.p.BeginChallenge(e.ctx, ChallengeInput{UserID: "u1", Channel: SMS}); !errors.Is(err, ErrChooseFactor) {
		t.Fatalf("two factors: %v", err)
	}
	ch, err := e.p.BeginChallenge(e.ctx, ChallengeInput{UserID: "u1", Channel: SMS, FactorID: b.ID})
	if err != nil || ch.Send.Destination != "+4915123456789" {
		t.Fatalf("named factor: %+v %v", ch, err)
	}
	for _, id := range []string{"nope", a.ID} {
		if _, err := e.p.BeginChallenge(e.ctx, ChallengeInput{UserID: "u1", Channel: Email, FactorID: id}); !errors.Is(err, ErrNoFactor) {
			t.Fatalf("factor %s of another channel: %v", id, err)
		}
	}
	for _, in := range []ChallengeInput{
		{UserID: "", Channel: SMS},
		{UserID: "u1", Channel: "fax"},
		{UserID: "u1", Channel: SMS, ID: strings.Repeat("c", 37), FactorID: a.ID},
		{UserID: "u1", Channel: SMS, FactorID: strings.Repeat("f", 37)},
	} {
		if _, err := e.p.BeginChallenge(e.ctx, in); err == nil || errors.Is(err, ErrNoFactor) {
			t.Fatalf("challenge %+v: %v", in, err)
		}
	}
	if _, err := e.p.BeginChallenge(e.ctx, ChallengeInput{UserID: "u2", Channel: SMS, FactorID: a.ID}); !errors.Is(err, ErrNoFactor) {
		t.Fatalf("another user's factor: %v", err)
	}
	// A removed factor's open code no longer logs in.
	ch, err = e.p.BeginChallenge(e.ctx, ChallengeInput{UserID: "u1", Channel: SMS, FactorID: a.ID})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.DeleteFactor(e.ctx, "u1", a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.p.Verify(e.ctx, "u1", ch.ID, ch.Send.Code); !errors.Is(err, ErrNoFactor) {
		t.Fatalf("removed factor: %v", err)
	}
}

func TestAttemptsAndExpiry(t *testing.T) {
	e := newEnv(t, Config{})
	e.enroll(t, "u1", Email, "alice@example.com")
	ch := e.begin(t, "u1", Email)
	for i := 4; i >= 0; i-- {
		res, err := e.p.Verify(e.ctx, "u1", ch.ID, wrong(ch.Send.Code))
		if !errors.Is(err, ErrWrongCode) || res.Remaining != i {
			t.Fatalf("wrong answer with %d left: %+v %v", i, res, err)
		}
	}
	if _, err := e.p.Verify(e.ctx, "u1", ch.ID, ch.Send.Code); !errors.Is(err, ErrNoAttemptsLeft) {
		t.Fatalf("right code after 5 wrong ones: %v", err)
	}
	// A code of another length is a wrong code and counts; a malformed one does not.
	ch = e.begin(t, "u1", Email)
	if _, err := e.p.Verify(e.ctx, "u1", ch.ID, "12345"); !errors.Is(err, ErrWrongCode) {
		t.Fatalf("short code: %v", err)
	}
	for _, bad := range []string{"", "12a456", strings.Repeat("1", 11), strings.Repeat(" ", 65)} {
		if _, err := e.p.Verify(e.ctx, "u1", ch.ID, bad); !errors.Is(err, ErrMalformed) {
			t.Fatalf("malformed %q: %v", bad, err)
		}
	}
	st, err := e.p.Status(e.ctx, "u1", ch.ID)
	if err != nil || st.AttemptsLeft != 4 {
		t.Fatalf("status %+v %v", st, err)
	}
	e.clk.Advance(DefaultCodeTTL - time.Second)
	res, err := e.p.Verify(e.ctx, "u1", ch.ID, ch.Send.Code)
	if err != nil || !res.Accepted {
		t.Fatalf("right code a second before expiry: %v", err)
	}
	ch = e.begin(t, "u1", Email)
	e.clk.Advance(DefaultCodeTTL)
	if _, err := e.p.Verify(e.ctx, "u1", ch.ID, ch.Send.Code); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired code: %v", err)
	}
	if _, err := e.p.Verify(e.ctx, "u1", "no-such-challenge", ch.Send.Code); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("unknown challenge: %v", err)
	}
}

func TestEnrollmentEnds(t *testing.T) {
	e := newEnv(t, Config{})
	en, err := e.p.BeginEnrollment(e.ctx, EnrollInput{UserID: "u1", Channel: SMS, Destination: "+4915123456712"})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		if _, _, err := e.p.FinishEnrollment(e.ctx, "u1", en.Factor.ID, wrong(en.Send.Code)); !errors.Is(err, ErrWrongCode) {
			t.Fatalf("wrong proof %d: %v", i, err)
		}
	}
	if _, _, err := e.p.FinishEnrollment(e.ctx, "u1", en.Factor.ID, wrong(en.Send.Code)); !errors.Is(err, ErrEnrollmentExpired) {
		t.Fatalf("fifth wrong proof: %v", err)
	}
	if _, err := e.store.GetFactor(e.ctx, "u1", en.Factor.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("pending factor after the last attempt: %v", err)
	}
	en, err = e.p.BeginEnrollment(e.ctx, EnrollInput{UserID: "u1", Channel: SMS, Destination: "+4915123456712"})
	if err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(DefaultCodeTTL)
	if _, _, err := e.p.FinishEnrollment(e.ctx, "u1", en.Factor.ID, en.Send.Code); !errors.Is(err, ErrEnrollmentExpired) {
		t.Fatalf("expired enrollment: %v", err)
	}
	for _, in := range []EnrollInput{
		{UserID: "u1", Channel: SMS, Destination: "+49 30 12345678"},
		{UserID: "u1", Channel: Email, Destination: "not an address"},
		{UserID: "u1", Channel: "fax", Destination: "+4915123456712"},
		{UserID: "u1", Channel: Email, Destination: "a@example.com", Name: strings.Repeat("n", 256)},
		{UserID: "u1", Channel: Email, Destination: "a@example.com", Replaces: "nope"},
		{UserID: "u1", Channel: Telegram},
		{UserID: "", Channel: Email, Destination: "a@example.com"},
		{UserID: strings.Repeat("u", 256), Channel: Email, Destination: "a@example.com"},
		{UserID: "u1", Channel: Email, Destination: "a@example.com", Replaces: strings.Repeat("f", 37)},
	} {
		if _, err := e.p.BeginEnrollment(e.ctx, in); err == nil {
			t.Errorf("enrollment %+v accepted", in)
		}
	}
	if fs, _ := e.store.ListFactors(e.ctx, "u1", "", ""); len(fs) != 0 {
		t.Fatalf("refused and expired enrollments left %d factors", len(fs))
	}
}

func TestReplaceTellsOldDestination(t *testing.T) {
	e := newEnv(t, Config{})
	old := e.enroll(t, "u1", Email, "alice@example.com")
	en, err := e.p.BeginEnrollment(e.ctx, EnrollInput{UserID: "u1", Channel: Email, Destination: "bob@example.org", Replaces: old.ID, Locale: "de"})
	if err != nil {
		t.Fatal(err)
	}
	if en.Send.Destination != "bob@example.org" {
		t.Fatalf("confirmation goes to %q", en.Send.Destination)
	}
	// Until the new one is proved, the old one still logs in.
	ch := e.begin(t, "u1", Email)
	if ch.FactorID != old.ID {
		t.Fatalf("challenge on %s; want the old factor", ch.FactorID)
	}
	fin, _, err := e.p.FinishEnrollment(e.ctx, "u1", en.Factor.ID, en.Send.Code)
	if err != nil {
		t.Fatal(err)
	}
	n := fin.Notice
	if n == nil || n.Kind != KindNotice || n.Destination != "alice@example.com" || n.Code != "" ||
		!strings.Contains(n.Text, "b•••@example.org") || !strings.Contains(n.Subject, "geändert") {
		t.Fatalf("notice %+v %q %q", n, n.Subject, n.Text)
	}
	if _, err := e.store.GetFactor(e.ctx, "u1", old.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("old factor: %v", err)
	}
	if ch := e.begin(t, "u1", Email); ch.Send.Destination != "bob@example.org" {
		t.Fatalf("login code goes to %q", ch.Send.Destination)
	}
}

// A replacement whose notice could not be handed over (FinishEnrollmentThen's
// then failing) is undone: the old factor stays active and logs in, the new one
// pending, its code open (the attempt counted, as before the evaluation); the
// same code then finishes it and hands over the same notice.
func TestFinishEnrollmentThenFailureUndoesReplacement(t *testing.T) {
	e := newEnv(t, Config{})
	old := e.enroll(t, "u1", SMS, "+4915123456712")
	en, err := e.p.BeginEnrollment(e.ctx, EnrollInput{UserID: "u1", Channel: SMS, Destination: "+4915123456799", Replaces: old.ID})
	if err != nil {
		t.Fatal(err)
	}
	errDown := errors.New("NATS is down")
	var first *Send
	_, _, err = e.p.FinishEnrollmentThen(e.ctx, "u1", en.Factor.ID, en.Send.Code, func(_ context.Context, fin *Finished) error {
		first = fin.Notice
		return errDown
	})
	if !errors.Is(err, errDown) || first == nil || first.Destination != "+4915123456712" {
		t.Fatalf("finish with the notice refused: %v, notice %+v", err, first)
	}
	if f, err := e.store.GetFactor(e.ctx, "u1", old.ID); err != nil || f.State != storage.FactorActive {
		t.Fatalf("old factor after the undone change: %+v, %v", f, err)
	}
	if f, err := e.store.GetFactor(e.ctx, "u1", en.Factor.ID); err != nil || f.State != storage.FactorPending {
		t.Fatalf("new factor after the undone change: %+v, %v", f, err)
	}
	if c, err := e.store.GetOTPCode(e.ctx, "u1", en.Factor.ID); err != nil || c.State != storage.OTPOpen || c.Attempts != 1 {
		t.Fatalf("code after the undone change: %+v, %v; want open, one attempt counted", c, err)
	}
	if ch := e.begin(t, "u1", SMS); ch.FactorID != old.ID {
		t.Fatalf("challenge on %s; want the old factor", ch.FactorID)
	}
	var told []*Send
	fin, res, err := e.p.FinishEnrollmentThen(e.ctx, "u1", en.Factor.ID, en.Send.Code, func(_ context.Context, fin *Finished) error {
		told = append(told, fin.Notice)
		return nil
	})
	if err != nil || !res.Accepted || fin.Factor.State != storage.FactorActive || len(told) != 1 || told[0].ID != first.ID {
		t.Fatalf("retry: %+v %+v %v, told %v; want active and the first notice once", fin, res, err, told)
	}
	if _, err := e.store.GetFactor(e.ctx, "u1", old.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("old factor after the change: %v", err)
	}
}

// A change retried after its transaction failed (the notice handed over, the
// commit lost) names the same notice, so delivery drops the second; a notice id
// is a UUID (what message ids, outbox names and webhooks accept); another change
// of the same factor names another notice.
func TestRetriedChangeNamesTheSameNotice(t *testing.T) {
	e := newEnv(t, Config{TelegramBot: "ExampleAuthBot"})
	old := e.enroll(t, "u1", Email, "alice@example.com")
	en, err := e.p.BeginEnrollment(e.ctx, EnrollInput{UserID: "u1", Channel: Email, Destination: "bob@example.org", Replaces: old.ID})
	if err != nil {
		t.Fatal(err)
	}
	errLost := errors.New("the acknowledgement was lost")
	var first *Send
	if err := e.store.InTx(e.ctx, func(ctx context.Context) error {
		fin, _, err := e.p.FinishEnrollment(ctx, "u1", en.Factor.ID, en.Send.Code)
		if err != nil {
			return err
		}
		first = fin.Notice
		return errLost
	}); !errors.Is(err, errLost) || first == nil {
		t.Fatalf("first attempt: %v, notice %v", err, first)
	}
	fin, _, err := e.p.FinishEnrollment(e.ctx, "u1", en.Factor.ID, en.Send.Code)
	if err != nil || fin.Notice == nil {
		t.Fatalf("retry: %v %v", fin, err)
	}
	if fin.Notice.ID != first.ID {
		t.Fatalf("retried change's notice %s, first %s: want the same", fin.Notice.ID, first.ID)
	}
	if u, err := uuid.Parse(first.ID); err != nil || u.String() != first.ID || fin.Notice.MessageID() != first.ID {
		t.Fatalf("notice id %q (message id %q): want a UUID", first.ID, fin.Notice.MessageID())
	}
	en2, err := e.p.BeginEnrollment(e.ctx, EnrollInput{UserID: "u1", Channel: Email, Destination: "carol@example.net", Replaces: en.Factor.ID})
	if err != nil {
		t.Fatal(err)
	}
	fin2, _, err := e.p.FinishEnrollment(e.ctx, "u1", en2.Factor.ID, en2.Send.Code)
	if err != nil || fin2.Notice == nil || fin2.Notice.ID == first.ID {
		t.Fatalf("next change: %v %v, first notice %s", fin2, err, first.ID)
	}

	// A Telegram binding processed again after its transaction failed.
	_, tok := beginTelegram(t, e, "u1", "")
	chat, err := e.p.BindTelegram(e.ctx, tok, "111111111")
	if err != nil {
		t.Fatal(err)
	}
	_, tok = beginTelegram(t, e, "u1", chat.Factor.ID)
	var bound *Send
	if _, err := e.p.BindTelegramThen(e.ctx, tok, "222222222", func(_ context.Context, fin *Finished) error {
		bound = fin.Notice
		return errLost
	}); !errors.Is(err, errLost) || bound == nil {
		t.Fatalf("first binding: %v, notice %v", err, bound)
	}
	again, err := e.p.BindTelegram(e.ctx, tok, "222222222")
	if err != nil || again.Notice == nil || again.Notice.ID != bound.ID {
		t.Fatalf("binding again: %v %v, first notice %s", again, err, bound.ID)
	}
}

// A user at the channel's cap can still replace an address in place (the
// replaced factor goes when the new one is finished), but not begin a second
// replacement, nor a new address beside them.
func TestReplaceAtTheCap(t *testing.T) {
	e := newEnv(t, Config{MaxFactorsPerChannel: 2, UserDailyCap: 100, DestinationDailyCap: 100})
	old := e.enroll(t, "u1", Email, "a@example.com")
	e.enroll(t, "u1", Email, "b@example.com")
	var capErr *storage.CapError
	if _, err := e.p.BeginEnrollment(e.ctx, EnrollInput{UserID: "u1", Channel: Email, Destination: "c@example.com"}); !errors.As(err, &capErr) {
		t.Fatalf("a third address beside two: %v, want the cap", err)
	}
	en, err := e.p.BeginEnrollment(e.ctx, EnrollInput{UserID: "u1", Channel: Email, Destination: "c@example.com", Replaces: old.ID})
	if err != nil {
		t.Fatalf("replacing at the cap: %v", err)
	}
	if _, err := e.p.BeginEnrollment(e.ctx, EnrollInput{UserID: "u1", Channel: Email, Destination: "d@example.com", Replaces: old.ID}); !errors.As(err, &capErr) {
		t.Fatalf("a second replacement while one is pending: %v, want the cap", err)
	}
	if _, _, err := e.p.FinishEnrollment(e.ctx, "u1", en.Factor.ID, en.Send.Code); err != nil {
		t.Fatalf("finishing the replacement: %v", err)
	}
	fs, err := e.store.ListFactors(e.ctx, "u1", Email, storage.FactorActive)
	if err != nil || len(fs) != 2 {
		t.Fatalf("active factors after the replacement: %d, %v; want 2", len(fs), err)
	}
}
