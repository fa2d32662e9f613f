package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/twofactor/twofactor/internal/testfix"
	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/channels"
	"github.com/twofactor/twofactor/notify/channels/outbox"
	"github.com/twofactor/twofactor/notify/channels/smtp"
	"github.com/twofactor/twofactor/notify/daemon"
	"github.com/twofactor/twofactor/notify/natstest"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/otpcode"
	"github.com/twofactor/twofactor/server"
	"github.com/twofactor/twofactor/storage"
)

// mailbox is a real SMTP server in this process (go-smtp, plain like Mailpit) that
// keeps each mail's recipient and decoded text.
type mailbox struct {
	mu    sync.Mutex
	mails map[string][]string // recipient → subject + "\n" + decoded body, in order
	port  int
}

type mailSession struct {
	box *mailbox
	to  []string
}

func (s *mailSession) Reset()                                 { s.to = nil }
func (s *mailSession) Logout() error                          { return nil }
func (s *mailSession) Mail(string, *gosmtp.MailOptions) error { return nil }
func (s *mailSession) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}
func (s *mailSession) Data(r io.Reader) error {
	m, err := mail.ReadMessage(r)
	if err != nil {
		return err
	}
	body := m.Body
	if strings.EqualFold(m.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		body = quotedprintable.NewReader(body)
	}
	text, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	subject, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	s.box.mu.Lock()
	defer s.box.mu.Unlock()
	for _, to := range s.to {
		s.box.mails[to] = append(s.box.mails[to], subject+"\n"+string(text))
	}
	return nil
}

func startMailbox(t *testing.T) *mailbox {
	t.Helper()
	box := &mailbox{mails: map[string][]string{}}
	box.port = testfix.ServeSMTP(t, func() gosmtp.Session { return &mailSession{box: box} })
	return box
}

func (b *mailbox) to(addr string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.mails[addr]...)
}

// deliveryRig is authd's side (the code channels on a cluster, GatewaySender
// sealing onto the cluster's NATS) and a real notifyd (daemon.Start) delivering
// email through the in-process SMTP server and SMS and Telegram to the outbox.
type deliveryRig struct {
	c         *cluster
	r         *replica
	providers *[]*otpcode.Provider
	out       server.GatewaySender
	// lossy is out as the code channels and the "not me" notifier use it:
	// while lose is above zero, a notice's publish goes through but is
	// reported lost (lossyOut).
	lossy lossyOut
	lose  *atomic.Int32
	// down, while set, has lossy refuse notices unpublished (lossyOut.down).
	down      *atomic.Bool
	box       *mailbox
	dir       string
	delivered chan notify.Outcome
}

func newDeliveryRig(t *testing.T) *deliveryRig {
	t.Helper()
	c := newCluster(t)
	key, err := notify.GenerateDeliveryKey()
	if err != nil {
		t.Fatal(err)
	}
	g := &deliveryRig{c: c, box: startMailbox(t), dir: filepath.Join(t.TempDir(), "outbox"),
		out: server.GatewaySender{Events: notify.NewPublisher(c.js, c.nc, c.names).WithDeliveryKey(key)}, delivered: make(chan notify.Outcome, 64),
		lose: new(atomic.Int32), down: new(atomic.Bool)}
	g.lossy = lossyOut{out: g.out, lose: g.lose, down: g.down}
	var providers []*otpcode.Provider
	g.providers = &providers
	c.factorFns = append(c.factorFns, func(st *storage.Store) []server.Factor {
		p, err := otpcode.New(st, c.ring, otpcode.Config{TelegramBot: "ExampleAuthBot"}, otpcode.Options{Clock: c.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		providers = append(providers, p)
		c.notMe = server.OTPNotMeNotifier{Provider: p, Out: g.lossy}
		return server.OTPCodeFactors(p, g.lossy)
	})
	g.r = c.start()
	mailer, err := smtp.New(smtp.Config{Host: "127.0.0.1", Port: g.box.port, TLS: smtp.TLSNone, From: "no-reply@example.org", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	files, err := outbox.New(outbox.Config{Dir: g.dir, Logger: discardLog()})
	if err != nil {
		t.Fatal(err)
	}
	d, err := daemon.Start(context.Background(), daemon.Options{JS: c.js, Names: c.names, Key: key,
		Senders: map[string]channels.Sender{notify.ChannelEmail: mailer, notify.ChannelSMS: files, notify.ChannelTelegram: files},
		Now:     c.clock.Now, Logger: discardLog(), Backoff: func(int) time.Duration { return time.Millisecond },
		Observe: func(o notify.Outcome) { g.delivered <- o }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	return g
}

// lossyOut hands sends to out; while lose is above zero it counts it down and
// reports a notice whose publish went through as failed, as when the stream's
// acknowledgement is lost on the way back: the change that handed it over is
// undone and retried, the notice already queued. While down is set it publishes
// no notice and fails as a publisher without NATS does (notify.ErrNotPublished).
type lossyOut struct {
	out  server.OutOfBandSender
	lose *atomic.Int32
	down *atomic.Bool
}

var errAckLost = errors.New("the publish acknowledgement was lost")

func (l lossyOut) SendOutOfBand(ctx context.Context, s *otpcode.Send) error {
	if s.Kind == otpcode.KindNotice && l.down != nil && l.down.Load() {
		return fmt.Errorf("server test: NATS is down: %w", notify.ErrNotPublished)
	}
	if err := l.out.SendOutOfBand(ctx, s); err != nil || s.Kind != otpcode.KindNotice {
		return err
	}
	for n := l.lose.Load(); n > 0; n = l.lose.Load() {
		if l.lose.CompareAndSwap(n, n-1) {
			return errAckLost
		}
	}
	return nil
}

// wait returns the next delivered message of kind, failing on any other outcome.
func (g *deliveryRig) wait(t *testing.T, kind string) notify.Message {
	t.Helper()
	select {
	case o := <-g.delivered:
		if o.Result != notify.OutcomeDelivered || g.c.names.KindOf(o.Message.Subject) != kind {
			t.Fatalf("outcome %s of %s (%v), want a delivered %s", o.Result, o.Message.Subject, o.Err, kind)
		}
		return o.Message
	case <-time.After(20 * time.Second):
		t.Fatalf("no %s delivered", kind)
	}
	return notify.Message{}
}

// outboxTo returns the outbox files addressed to dest, by kind.
func (g *deliveryRig) outboxTo(t *testing.T, dest string) (codes, notices []string) {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(g.dir, "*.txt"))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(b), "To: "+dest+"\n") {
			continue
		}
		if strings.Contains(string(b), "\nKind: notice\n") {
			notices = append(notices, string(b))
		} else {
			codes = append(codes, string(b))
		}
	}
	return codes, notices
}

var sixDigits = regexp.MustCompile(`(?m)^\s*(\d{6})\b`)

// enrollDelivered enrolls dest (replacing old when given) with the code the user
// received through notifyd, read by read.
func (g *deliveryRig) enrollDelivered(t *testing.T, m pb.Method, dest, old string, read func() string) string {
	t.Helper()
	finish := g.beginDelivered(t, m, dest, old, read)
	if _, err := g.r.enrollment().FinishEnrollment(g.c.as("selfservice"), finish); err != nil {
		t.Fatal(err)
	}
	return finish.GetFactorId()
}

// beginDelivered begins alice's enrollment of dest (replacing old when set),
// waits for its code's delivery and returns the FinishEnrollment that proves it
// with the code read.
func (g *deliveryRig) beginDelivered(t *testing.T, m pb.Method, dest, old string, read func() string) *pb.FinishEnrollmentRequest {
	t.Helper()
	b, err := g.r.enrollment().BeginEnrollment(g.c.as("selfservice"), &pb.BeginEnrollmentRequest{UserId: "alice", Method: m,
		Options: &pb.BeginEnrollmentRequest_OutOfBand{OutOfBand: &pb.OutOfBandEnrollmentOptions{Destination: dest, ReplacesFactorId: old}}})
	if err != nil {
		t.Fatal(err)
	}
	if id := g.wait(t, notify.KindCode).ID; id != b.GetFactorId() {
		t.Fatalf("delivered %s, want the enrollment code of %s", id, b.GetFactorId())
	}
	code := sixDigits.FindStringSubmatch(read())
	if code == nil {
		t.Fatalf("no code in %q", read())
	}
	return &pb.FinishEnrollmentRequest{UserId: "alice", FactorId: b.GetFactorId(), Proof: &pb.FinishEnrollmentRequest_Code{Code: code[1]}}
}

// factorStates maps alice's factors to their states.
func (g *deliveryRig) factorStates(t *testing.T) map[string]pb.FactorState {
	t.Helper()
	l, err := g.r.enrollment().ListFactors(g.c.as("selfservice"), &pb.ListFactorsRequest{UserId: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]pb.FactorState{}
	for _, f := range l.GetFactors() {
		out[f.GetId()] = f.GetState()
	}
	return out
}

// lastMail reads the text of the last mail to addr.
func (g *deliveryRig) lastMail(addr string) func() string {
	return func() string { m := g.box.to(addr); return m[len(m)-1][strings.Index(m[len(m)-1], "\n")+1:] }
}

// noticesStored is the notice stream's last sequence: how many notices it ever
// stored (a duplicate it dropped is not one).
func (g *deliveryRig) noticesStored(t *testing.T) uint64 {
	t.Helper()
	info, err := noticeStream(t, g).Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

// A replaced email address is told by mail, through NATS, notifyd and a real SMTP
// server; the new address gets its confirmation code and no notice.
func TestNoticeOfReplacedEmailReachesOldAddress(t *testing.T) {
	g := newDeliveryRig(t)
	old := g.enrollDelivered(t, pb.Method_METHOD_EMAIL, "alice@example.com", "", g.lastMail("alice@example.com"))
	g.enrollDelivered(t, pb.Method_METHOD_EMAIL, "alice@example.org", old, g.lastMail("alice@example.org"))
	g.wait(t, notify.KindNotice)
	oldMails, newMails := g.box.to("alice@example.com"), g.box.to("alice@example.org")
	if len(oldMails) != 2 || len(newMails) != 1 {
		t.Fatalf("mails: old %d, new %d; want 2 (code, notice) and 1 (code)", len(oldMails), len(newMails))
	}
	notice := oldMails[1]
	if !strings.HasPrefix(notice, "Your twofactor email second factor was changed\n") || !strings.Contains(notice, "a•••@example.org") ||
		sixDigits.MatchString(notice[strings.Index(notice, "\n")+1:]) {
		t.Fatalf("notice mail %q", notice)
	}
}

// A replaced phone number and a replaced Telegram chat are told through the outbox;
// the new ones get none.
func TestNoticeOfReplacedSMSAndTelegramReachesOldDestination(t *testing.T) {
	g := newDeliveryRig(t)
	lastSMS := func(dest string) func() string {
		return func() string {
			codes, _ := g.outboxTo(t, dest)
			return codes[len(codes)-1][strings.Index(codes[len(codes)-1], "\n\n")+2:]
		}
	}
	old := g.enrollDelivered(t, pb.Method_METHOD_SMS, "+4915123456712", "", lastSMS("+4915123456712"))
	g.enrollDelivered(t, pb.Method_METHOD_SMS, "+4915123456799", old, lastSMS("+4915123456799"))
	g.wait(t, notify.KindNotice)
	if codes, notices := g.outboxTo(t, "+4915123456712"); len(codes) != 1 || len(notices) != 1 || !strings.Contains(notices[0], "+49 •••• ••99") {
		t.Fatalf("old number: codes %d, notices %q", len(codes), notices)
	}
	if codes, notices := g.outboxTo(t, "+4915123456799"); len(codes) != 1 || len(notices) != 0 {
		t.Fatalf("new number: codes %d, notices %d", len(codes), len(notices))
	}

	oldChat := g.bindTelegram(t, "111111111", "")
	g.bindTelegram(t, "222222222", oldChat)
	g.wait(t, notify.KindNotice)
	if _, notices := g.outboxTo(t, "111111111"); len(notices) != 1 || !strings.Contains(notices[0], "chat ••••22") {
		t.Fatalf("old chat: notices %q", notices)
	}
	if codes, notices := g.outboxTo(t, "222222222"); len(codes)+len(notices) != 0 {
		t.Fatalf("new chat got %d messages", len(codes)+len(notices))
	}
}

// bindTelegram enrolls a Telegram chat (replacing old when given) as the bot's
// /start binding does.
func (g *deliveryRig) bindTelegram(t *testing.T, chat, old string) string {
	t.Helper()
	id, token := g.telegramLink(t, old)
	events := server.OTPCodeEvents{Provider: (*g.providers)[0], Out: g.out}
	if err := events.Binding(context.Background(), token, chat); err != nil {
		t.Fatal(err)
	}
	return id
}

// telegramLink begins alice's Telegram enrollment (replacing old when given)
// and returns the pending factor and its link's start token.
func (g *deliveryRig) telegramLink(t *testing.T, old string) (factorID, token string) {
	t.Helper()
	b, err := g.r.enrollment().BeginEnrollment(g.c.as("selfservice"), &pb.BeginEnrollmentRequest{UserId: "alice", Method: pb.Method_METHOD_TELEGRAM,
		Options: &pb.BeginEnrollmentRequest_OutOfBand{OutOfBand: &pb.OutOfBandEnrollmentOptions{ReplacesFactorId: old}}})
	if err != nil {
		t.Fatal(err)
	}
	return b.GetFactorId(), strings.TrimPrefix(b.GetOutOfBand().GetTelegramLink(), "https://t.me/ExampleAuthBot?start=")
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// A changed destination whose notice cannot be published is not half-done: the
// FinishEnrollment that proves the new address fails as a whole (the old factor
// stays active, the new one pending, the code unused), and once the notice can go
// the same code finishes it and the notice is queued.
func TestReplacedDestinationNoticeFailureChangesNothing(t *testing.T) {
	g := newDeliveryRig(t)
	old := g.enrollDelivered(t, pb.Method_METHOD_EMAIL, "alice@example.com", "", g.lastMail("alice@example.com"))
	ctx := g.c.as("selfservice")
	finish := g.beginDelivered(t, pb.Method_METHOD_EMAIL, "alice@example.org", old, g.lastMail("alice@example.org"))
	bg := context.Background()
	if err := g.c.js.DeleteStream(bg, g.c.names.NoticeStream()); err != nil {
		t.Fatal(err)
	}
	if _, err := g.r.enrollment().FinishEnrollment(ctx, finish); status.Code(err) != codes.Unavailable {
		t.Fatalf("finish although the notice could not be published: %v, want Unavailable", err)
	}
	if !strings.Contains(g.c.logs.String(), deliveryFailedLog) { // old code: no trace of the cause
		t.Fatalf("the notice's failed publish is not logged: %s", g.c.logs.String())
	}
	if st := g.factorStates(t); st[old] != pb.FactorState_FACTOR_STATE_ACTIVE || st[finish.GetFactorId()] != pb.FactorState_FACTOR_STATE_PENDING {
		t.Fatalf("after the failed finish: %v", st)
	}
	if err := notify.EnsureStreams(bg, g.c.js, g.c.names, natstest.TestStreamConfig()); err != nil {
		t.Fatal(err)
	}
	if _, err := g.r.enrollment().FinishEnrollment(ctx, finish); err != nil {
		t.Fatalf("finish once the notice can go: %v", err)
	}
	if st := g.factorStates(t); st[old] == pb.FactorState_FACTOR_STATE_ACTIVE || st[finish.GetFactorId()] != pb.FactorState_FACTOR_STATE_ACTIVE {
		t.Fatalf("after the finish: %v", st)
	}
	// The stream is new, notifyd's consumer went with the old one: the notice waits there.
	if info, err := noticeStream(t, g).Info(bg); err != nil || info.State.Msgs != 1 {
		t.Fatalf("notices queued: %+v, %v; want the one of the change", info, err)
	}
}

// An email address or a phone number replaced while its notice cannot be
// published (the publisher fails as without NATS) is not replaced: Finish answers
// Unavailable, the old factor stays active and the new one pending, and nothing
// is told; once the publisher works the same code replaces it and the old
// destination is told once.
func TestReplacedDestinationUnpublishedNoticeRetried(t *testing.T) {
	for _, tc := range []struct {
		name     string
		method   pb.Method
		old, new string
		told     func(t *testing.T, g *deliveryRig) (codes, notices int)
		read     func(t *testing.T, g *deliveryRig, dest string) func() string
	}{
		{name: "email", method: pb.Method_METHOD_EMAIL, old: "alice@example.com", new: "alice@example.org",
			told: func(_ *testing.T, g *deliveryRig) (int, int) {
				mails := g.box.to("alice@example.com")
				return min(len(mails), 1), max(len(mails)-1, 0) // its code first, then notices
			},
			read: func(_ *testing.T, g *deliveryRig, dest string) func() string { return g.lastMail(dest) }},
		{name: "sms", method: pb.Method_METHOD_SMS, old: "+4915123456712", new: "+4915123456799",
			told: func(t *testing.T, g *deliveryRig) (int, int) {
				codes, notices := g.outboxTo(t, "+4915123456712")
				return len(codes), len(notices)
			},
			read: func(t *testing.T, g *deliveryRig, dest string) func() string {
				return func() string {
					codes, _ := g.outboxTo(t, dest)
					return codes[len(codes)-1][strings.Index(codes[len(codes)-1], "\n\n")+2:]
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newDeliveryRig(t)
			old := g.enrollDelivered(t, tc.method, tc.old, "", tc.read(t, g, tc.old))
			finish := g.beginDelivered(t, tc.method, tc.new, old, tc.read(t, g, tc.new))
			ctx := g.c.as("selfservice")
			g.down.Store(true)
			for range 2 {
				if _, err := g.r.enrollment().FinishEnrollment(ctx, finish); status.Code(err) != codes.Unavailable {
					t.Fatalf("finish with the notice unpublished: %v, want Unavailable", err)
				}
			}
			if st := g.factorStates(t); st[old] != pb.FactorState_FACTOR_STATE_ACTIVE || st[finish.GetFactorId()] != pb.FactorState_FACTOR_STATE_PENDING {
				t.Fatalf("after the failed finishes: old %v, new %v; want active and pending", st[old], st[finish.GetFactorId()])
			}
			if n := g.noticesStored(t); n != 0 {
				t.Fatalf("%d notices stored while the publisher was down", n)
			}
			g.down.Store(false)
			f, err := g.r.enrollment().FinishEnrollment(ctx, finish)
			if err != nil || f.GetFactor().GetState() != pb.FactorState_FACTOR_STATE_ACTIVE {
				t.Fatalf("finish with the same code once the notice can go: %v, %v", f, err)
			}
			g.wait(t, notify.KindNotice)
			if st := g.factorStates(t); st[old] != pb.FactorState_FACTOR_STATE_UNSPECIFIED {
				t.Fatalf("the replaced factor is still there: %v", st[old])
			}
			if c, n := tc.told(t, g); c != 1 || n != 1 || g.noticesStored(t) != 1 {
				t.Fatalf("old destination: %d codes, %d notices (%d stored); want 1 and 1", c, n, g.noticesStored(t))
			}
		})
	}
}

// A Telegram chat replaced by a binding whose notice cannot be published is not
// replaced: the binding fails as a whole (retried by its consumer), the new chat's
// factor stays pending and the token unused, and the binding delivered again once
// the notice can go replaces the chat and queues the notice.
func TestReplacedTelegramChatNoticeFailureChangesNothing(t *testing.T) {
	g := newDeliveryRig(t)
	oldChat := g.bindTelegram(t, "111111111", "")
	newChat, token := g.telegramLink(t, oldChat)
	events := server.OTPCodeEvents{Provider: (*g.providers)[0], Out: g.out}
	bg := context.Background()
	if err := g.c.js.DeleteStream(bg, g.c.names.NoticeStream()); err != nil {
		t.Fatal(err)
	}
	if err := events.Binding(bg, token, "222222222"); err == nil || errors.As(err, new(notify.Permanent)) {
		t.Fatalf("binding without a notice: %v, want a transient error (the event is fetched again)", err)
	}
	if st := g.factorStates(t); st[newChat] != pb.FactorState_FACTOR_STATE_PENDING || st[oldChat] != pb.FactorState_FACTOR_STATE_ACTIVE {
		t.Fatalf("after the failed binding: new %v, old %v; want pending and active", st[newChat], st[oldChat])
	}
	if err := notify.EnsureStreams(bg, g.c.js, g.c.names, natstest.TestStreamConfig()); err != nil {
		t.Fatal(err)
	}
	if err := events.Binding(bg, token, "222222222"); err != nil {
		t.Fatalf("the binding again: %v", err)
	}
	if s := g.factorStates(t)[newChat]; s != pb.FactorState_FACTOR_STATE_ACTIVE {
		t.Fatalf("after the binding: %v", s)
	}
	if info, err := noticeStream(t, g).Info(bg); err != nil || info.State.Msgs != 1 {
		t.Fatalf("notices queued: %+v, %v; want the old chat's", info, err)
	}
}

// A change retried after its notice was queued but the acknowledgement lost (the
// change undone) queues no second notice: the retry publishes the notice under the
// same id, the notice stream drops it as a duplicate, and the old destination is
// told once; the next change of the same factor is told on its own. So for
// FinishEnrollment retried and for a Telegram binding event processed again.
func TestRetriedChangeTellsOnce(t *testing.T) {
	g := newDeliveryRig(t)
	bg := context.Background()
	old := g.enrollDelivered(t, pb.Method_METHOD_EMAIL, "alice@example.com", "", g.lastMail("alice@example.com"))
	ctx := g.c.as("selfservice")
	finish := g.beginDelivered(t, pb.Method_METHOD_EMAIL, "alice@example.org", old, g.lastMail("alice@example.org"))
	g.lose.Store(1)
	if _, err := g.r.enrollment().FinishEnrollment(ctx, finish); err == nil {
		t.Fatal("finished although the notice's acknowledgement was lost")
	}
	if _, err := g.r.enrollment().FinishEnrollment(ctx, finish); err != nil {
		t.Fatalf("the retry: %v", err)
	}
	g.wait(t, notify.KindNotice)
	if n := g.noticesStored(t); n != 1 {
		t.Fatalf("notices stored: %d, want 1 (the retry's is the same notice)", n)
	}
	g.enrollDelivered(t, pb.Method_METHOD_EMAIL, "alice@example.net", finish.GetFactorId(), g.lastMail("alice@example.net"))
	g.wait(t, notify.KindNotice)
	if n := g.noticesStored(t); n != 2 {
		t.Fatalf("notices stored after the next change: %d, want 2", n)
	}
	if a, o := len(g.box.to("alice@example.com")), len(g.box.to("alice@example.org")); a != 2 || o != 2 {
		t.Fatalf("mails: first address %d, second %d; want 2 each (code, one notice)", a, o)
	}

	oldChat := g.bindTelegram(t, "111111111", "")
	_, token := g.telegramLink(t, oldChat)
	events := server.OTPCodeEvents{Provider: (*g.providers)[0], Out: g.lossy}
	g.lose.Store(1)
	if err := events.Binding(bg, token, "222222222"); !errors.Is(err, errAckLost) {
		t.Fatalf("binding with its acknowledgement lost: %v", err)
	}
	if err := events.Binding(bg, token, "222222222"); err != nil {
		t.Fatalf("the binding again: %v", err)
	}
	g.wait(t, notify.KindNotice)
	if n := g.noticesStored(t); n != 3 {
		t.Fatalf("notices stored after the chat's change: %d, want 3", n)
	}
	if _, notices := g.outboxTo(t, "111111111"); len(notices) != 1 {
		t.Fatalf("old chat: notices %q, want one", notices)
	}
}
