package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/twofactor/twofactor/notify"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/otpcode"
	"github.com/twofactor/twofactor/server"
)

// A push refused as "this was not me" is told to each active code destination of
// the user (email through SMTP, SMS through the outbox, both through NATS and a real
// notifyd) with the device, time, client and IP, and audited; a plain denial tells
// nobody, and a destination not yet proved gets no notice.
func TestPushNotMeTellsCodeDestinations(t *testing.T) {
	g := newDeliveryRig(t)
	c, r := g.c, g.r
	lastMail := func(addr string) func() string {
		return func() string { m := g.box.to(addr); return m[len(m)-1] }
	}
	g.enrollDelivered(t, pb.Method_METHOD_EMAIL, "alice@example.com", "", lastMail("alice@example.com"))
	g.enrollDelivered(t, pb.Method_METHOD_SMS, "+4915123456712", "", func() string {
		codes, _ := g.outboxTo(t, "+4915123456712")
		return codes[0][strings.Index(codes[0], "\n\n")+2:]
	})
	if _, err := r.enrollment().BeginEnrollment(c.as("selfservice"), &pb.BeginEnrollmentRequest{UserId: "alice", Method: pb.Method_METHOD_EMAIL,
		Options: &pb.BeginEnrollmentRequest_OutOfBand{OutOfBand: &pb.OutOfBandEnrollmentOptions{Destination: "pending@example.net"}}}); err != nil {
		t.Fatal(err)
	}
	g.wait(t, notify.KindCode)
	d := enrollPush(t, c, r, r, "alice")
	ctx := context.Background()
	answer := func(decision pb.PushDecision) {
		t.Helper()
		beginPush(t, c, r, "alice")
		pending, err := d.Pending(ctx, r.devices())
		if err != nil || len(pending) != 1 {
			t.Fatalf("pending = %v, %v", pending, err)
		}
		if _, err := d.Respond(ctx, r.devices(), pending[0].GetChallengeId(), decision, ""); err != nil {
			t.Fatal(err)
		}
	}
	answer(pb.PushDecision_PUSH_DECISION_DENY)
	c.clock.Add(time.Hour) // past the backoff after a refusal
	when := c.clock.Now().UTC().Format("2006-01-02 15:04 UTC")
	answer(pb.PushDecision_PUSH_DECISION_NOT_ME)
	g.wait(t, notify.KindNotice)
	g.wait(t, notify.KindNotice)

	mails := g.box.to("alice@example.com")
	if len(mails) != 2 || !strings.HasPrefix(mails[1], "twofactor: a sign-in attempt was refused as not you\n") {
		t.Fatalf("mails to the address: %q", mails)
	}
	_, notices := g.outboxTo(t, "+4915123456712")
	if len(notices) != 1 {
		t.Fatalf("SMS notices %q", notices)
	}
	for _, text := range []string{mails[1], notices[0]} {
		for _, part := range []string{`"Phone"`, when, "web", "203.0.113.7", "change your password"} {
			if !strings.Contains(text, part) {
				t.Errorf("notice lacks %q:\n%s", part, text)
			}
		}
	}
	if n := len(g.box.to("pending@example.net")); n != 1 {
		t.Fatalf("the unproved address got %d mails, want its code only", n)
	}
	info, err := noticeStream(t, g).Info(ctx)
	if err != nil || info.State.LastSeq != 2 {
		t.Fatalf("notices published: %d (%v), want 2: the denial told nobody", info.State.LastSeq, err)
	}
	recs := c.auditOf(server.EventPushNotMeNotified)
	if len(recs) != 1 || recs[0].UserID != "alice" || recs[0].Result != "notified" || recs[0].Details["notices"] != "2" {
		t.Fatalf("audit %+v (answered %+v) logs %s", recs, c.auditOf(server.EventPushAnswered), c.logs.String()[max(0, len(c.logs.String())-3000):])
	}
}

// noticeStream is the notice stream of the rig's NATS.
func noticeStream(t *testing.T, g *deliveryRig) jetstream.Stream {
	t.Helper()
	s, err := g.c.js.Stream(context.Background(), g.c.names.NoticeStream())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// blockingNotMe is a NotMeNotifier that holds each call until proceed, then
// reports what its context said.
type blockingNotMe struct {
	entered, proceed chan struct{}
	ctxErr           chan error
}

func (b *blockingNotMe) NotifyNotMe(ctx context.Context, _ otpcode.NotMe) (int, error) {
	b.entered <- struct{}{}
	<-b.proceed
	b.ctxErr <- ctx.Err()
	return 1, nil
}

// The user is told of a refused sign-in even when the device leaves as soon as
// it has answered (a phone losing its network): the notices do not run on the
// device's request context.
func TestPushNotMeOutlivesTheDevicesRequest(t *testing.T) {
	c := newCluster(t)
	n := &blockingNotMe{entered: make(chan struct{}), proceed: make(chan struct{}), ctxErr: make(chan error, 1)}
	c.notMe = n
	r := c.start()
	d := enrollPush(t, c, r, r, "alice")
	beginPush(t, c, r, "alice")
	pending, err := d.Pending(context.Background(), r.devices())
	if err != nil || len(pending) != 1 {
		t.Fatalf("pending = %v, %v", pending, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	answered := make(chan error, 1)
	go func() {
		_, err := d.Respond(ctx, r.devices(), pending[0].GetChallengeId(), pb.PushDecision_PUSH_DECISION_NOT_ME, "")
		answered <- err
	}()
	<-n.entered // the answer is recorded; the notices are being sent
	cancel()
	if err := <-answered; status.Code(err) != codes.Canceled {
		t.Fatalf("the device's call: %v, want Canceled", err)
	}
	// A later call on the same connection is read after the cancellation (HTTP/2
	// keeps the frames' order): once it is answered, the server has seen it.
	if _, err := d.Pending(context.Background(), r.devices()); err != nil {
		t.Fatal(err)
	}
	close(n.proceed)
	if err := <-n.ctxErr; err != nil {
		t.Fatalf("the notices ran on a context ended by the device: %v", err)
	}
}

// A refusal told twice (the "not me" notices run again for the same push) is told
// once: each notice is named by the push and the factor, so the second publish is
// a duplicate the notice stream drops; a lost acknowledgement does not make a
// second notice either, and another refusal is told on its own.
func TestPushNotMeToldTwiceTellsOnce(t *testing.T) {
	g := newDeliveryRig(t)
	c, r := g.c, g.r
	g.enrollDelivered(t, pb.Method_METHOD_EMAIL, "alice@example.com", "", func() string {
		m := g.box.to("alice@example.com")
		return m[len(m)-1][strings.Index(m[len(m)-1], "\n")+1:]
	})
	d := enrollPush(t, c, r, r, "alice")
	ctx := context.Background()
	beginPush(t, c, r, "alice")
	pending, err := d.Pending(ctx, r.devices())
	if err != nil || len(pending) != 1 {
		t.Fatalf("pending = %v, %v", pending, err)
	}
	g.lose.Store(1) // the device's notice goes out, its acknowledgement is lost
	if _, err := d.Respond(ctx, r.devices(), pending[0].GetChallengeId(), pb.PushDecision_PUSH_DECISION_NOT_ME, ""); err != nil {
		t.Fatal(err)
	}
	g.wait(t, notify.KindNotice)
	if recs := c.auditOf(server.EventPushNotMeNotified); len(recs) != 1 || recs[0].Result != "failed" {
		t.Fatalf("audit %+v, want the lost acknowledgement reported", recs)
	}
	again := server.OTPNotMeNotifier{Provider: (*g.providers)[0], Out: g.out}
	n := otpcode.NotMe{UserID: "alice", Challenge: pending[0].GetChallengeId(), Device: "Phone", Time: c.clock.Now()}
	if sent, err := again.NotifyNotMe(ctx, n); err != nil || sent != 1 {
		t.Fatalf("told again: %d, %v", sent, err)
	}
	if got := g.noticesStored(t); got != 1 {
		t.Fatalf("notices stored: %d, want 1 (the same refusal told twice is one notice)", got)
	}
	n.Challenge = "0b5e55ed-0000-4000-8000-000000000002"
	if sent, err := again.NotifyNotMe(ctx, n); err != nil || sent != 1 {
		t.Fatalf("another refusal: %d, %v", sent, err)
	}
	g.wait(t, notify.KindNotice)
	if got, mails := g.noticesStored(t), len(g.box.to("alice@example.com")); got != 2 || mails != 3 {
		t.Fatalf("notices stored %d, mails %d; want 2 and 3 (code, one notice per refusal)", got, mails)
	}
}
