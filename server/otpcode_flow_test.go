package server_test

import (
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/twofactor/twofactor/notify"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/otpcode"
	"github.com/twofactor/twofactor/server"
	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// memOutbox keeps what the factors hand to delivery, as the development
// outbox does, so a test reads the code the user would receive.
type memOutbox struct {
	mu    sync.Mutex
	sends []*otpcode.Send
	left  []time.Duration // per send: the time its context had left (-1: no deadline)
}

func (o *memOutbox) SendOutOfBand(ctx context.Context, s *otpcode.Send) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.sends = append(o.sends, s)
	left := time.Duration(-1)
	if d, ok := ctx.Deadline(); ok {
		left = time.Until(d)
	}
	o.left = append(o.left, left)
	return nil
}

// last returns the last send, failing when there is none.
func (o *memOutbox) last(t *testing.T) *otpcode.Send {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.sends) == 0 {
		t.Fatal("nothing was sent")
	}
	return o.sends[len(o.sends)-1]
}

func (o *memOutbox) count() int { o.mu.Lock(); defer o.mu.Unlock(); return len(o.sends) }

// otpCluster is a cluster whose replicas register the code channels, each on
// its own store, with one shared outbox.
func otpCluster(t *testing.T, cfg otpcode.Config) (*cluster, *memOutbox, *[]*otpcode.Provider) {
	t.Helper()
	c := newCluster(t)
	out := &memOutbox{}
	var providers []*otpcode.Provider
	cfg.TelegramBot = "ExampleAuthBot"
	c.factorFns = append(c.factorFns, func(st *storage.Store) []server.Factor {
		p, err := otpcode.New(st, c.ring, cfg, otpcode.Options{Clock: c.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		providers = append(providers, p)
		return server.OTPCodeFactors(p, out)
	})
	return c, out, &providers
}

var otpChannels = []struct {
	method      pb.Method
	destination string
	masked      string
}{
	{pb.Method_METHOD_EMAIL, "alice@example.com", "a•••@example.com"},
	{pb.Method_METHOD_SMS, "+49 151 2345 6712", "+49 •••• ••12"},
	{pb.Method_METHOD_SIGNAL, "+1 202 555 0143", "+1 •••• ••43"},
}

// enrollOTP enrolls a destination through the RPCs and returns the factor id.
func enrollOTP(t *testing.T, c *cluster, r *replica, out *memOutbox, user string, m pb.Method, dest string) string {
	t.Helper()
	ctx := c.as("selfservice")
	b, err := r.enrollment().BeginEnrollment(ctx, &pb.BeginEnrollmentRequest{UserId: user, Method: m,
		Options: &pb.BeginEnrollmentRequest_OutOfBand{OutOfBand: &pb.OutOfBandEnrollmentOptions{Destination: dest}}})
	if err != nil {
		t.Fatalf("begin enrollment %s: %v", m, err)
	}
	code := out.last(t).Code
	if _, err := r.enrollment().FinishEnrollment(ctx, &pb.FinishEnrollmentRequest{UserId: user, FactorId: b.GetFactorId(),
		Proof: &pb.FinishEnrollmentRequest_Code{Code: code}}); err != nil {
		t.Fatalf("finish enrollment: %v", err)
	}
	return b.GetFactorId()
}

func beginOTP(t *testing.T, c *cluster, r *replica, user string, m pb.Method) *pb.BeginChallengeResponse {
	t.Helper()
	b, err := r.challenges().BeginChallenge(c.as("login"), &pb.BeginChallengeRequest{UserId: user, Method: m,
		Context: &pb.ClientContext{Ip: "203.0.113.7", Client: "web"}})
	if err != nil {
		t.Fatalf("begin %s: %v", m, err)
	}
	return b
}

func verifyOTP(t *testing.T, c *cluster, r *replica, id, code string) *pb.VerifyChallengeResponse {
	t.Helper()
	v, err := r.challenges().VerifyChallenge(c.as("login"), &pb.VerifyChallengeRequest{ChallengeId: id,
		Response: &pb.VerifyChallengeRequest_Code{Code: code}, Context: &pb.ClientContext{Ip: "203.0.113.7"}})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return v
}

// otherCode is a code of the same length that is not code.
func otherCode(code string) string {
	b := []byte(code)
	b[0] = '0' + (b[0]-'0'+1)%10
	return string(b)
}

func TestOTPCodeEnrollAndLogin(t *testing.T) {
	for _, ch := range otpChannels {
		t.Run(ch.method.String(), func(t *testing.T) {
			c, out, _ := otpCluster(t, otpcode.Config{Domain: "login.example.com"})
			r := c.start()
			ctx := c.as("selfservice")
			b, err := r.enrollment().BeginEnrollment(ctx, &pb.BeginEnrollmentRequest{UserId: "alice", Method: ch.method,
				Options: &pb.BeginEnrollmentRequest_OutOfBand{OutOfBand: &pb.OutOfBandEnrollmentOptions{Destination: ch.destination}}})
			if err != nil {
				t.Fatal(err)
			}
			if d := b.GetOutOfBand(); d.GetMaskedDestination() != ch.masked || d.GetCodeDigits() != 6 ||
				d.GetDelivery().GetState() != pb.DeliveryState_DELIVERY_STATE_QUEUED {
				t.Fatalf("enrollment %+v", b)
			}
			code := out.last(t).Code
			_, err = r.enrollment().FinishEnrollment(ctx, &pb.FinishEnrollmentRequest{UserId: "alice", FactorId: b.GetFactorId(),
				Proof: &pb.FinishEnrollmentRequest_Code{Code: otherCode(code)}})
			if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), "code: wrong code; 4 attempts left") {
				t.Fatalf("wrong proof: %v", err)
			}
			fin, err := r.enrollment().FinishEnrollment(ctx, &pb.FinishEnrollmentRequest{UserId: "alice", FactorId: b.GetFactorId(),
				Proof: &pb.FinishEnrollmentRequest_Code{Code: code}})
			if err != nil || fin.GetFactor().GetState() != pb.FactorState_FACTOR_STATE_ACTIVE ||
				fin.GetFactor().GetOutOfBand().GetMaskedDestination() != ch.masked {
				t.Fatalf("finish: %+v %v", fin, err)
			}
			req, _ := r.challenges().GetLoginRequirements(c.as("login"), &pb.GetLoginRequirementsRequest{UserId: "alice"})
			if !req.GetSecondFactorRequired() || len(req.GetAvailableMethods()) != 1 || req.GetAvailableMethods()[0] != ch.method {
				t.Fatalf("requirements %+v", req)
			}

			bc := beginOTP(t, c, r, "alice", ch.method)
			if o := bc.GetOutOfBand(); o.GetMaskedDestination() != ch.masked || o.GetCodeDigits() != 6 {
				t.Fatalf("begin %+v", bc)
			}
			sent := out.last(t)
			if sent.Channel != strings.ToLower(strings.TrimPrefix(ch.method.String(), "METHOD_")) || sent.UserID != "alice" {
				t.Fatalf("sent %v", sent)
			}
			if v := verifyOTP(t, c, r, bc.GetChallengeId(), otherCode(sent.Code)); v.GetResult() != pb.VerifyResult_VERIFY_RESULT_REJECTED ||
				v.GetReason() != pb.RejectReason_REJECT_REASON_WRONG_CODE || v.GetRemainingAttempts() != 4 ||
				v.GetDelivery().GetState() != pb.DeliveryState_DELIVERY_STATE_QUEUED {
				t.Fatalf("wrong code: %+v", v)
			}
			if v := verifyOTP(t, c, r, bc.GetChallengeId(), sent.Code); v.GetResult() != pb.VerifyResult_VERIFY_RESULT_ACCEPTED || v.GetFactorId() != b.GetFactorId() {
				t.Fatalf("right code: %+v", v)
			}
			if v := verifyOTP(t, c, r, bc.GetChallengeId(), sent.Code); v.GetResult() != pb.VerifyResult_VERIFY_RESULT_EXPIRED {
				t.Fatalf("replayed code: %+v", v)
			}
			// Expiry.
			bc = beginOTP(t, c, r, "alice", ch.method)
			c.clock.Add(otpcode.DefaultCodeTTL)
			if v := verifyOTP(t, c, r, bc.GetChallengeId(), out.last(t).Code); v.GetResult() != pb.VerifyResult_VERIFY_RESULT_EXPIRED {
				t.Fatalf("expired code: %+v", v)
			}
			st := storagetest.OpenURL(t, c.url)
			storagetest.AssertNotStored(t, st, sent.Code, sent.Destination, strings.TrimPrefix(sent.Destination, "+"))
			c.flushAudit()
			logs := c.logs.String()
			for _, secret := range []string{sent.Code, code, strings.TrimPrefix(sent.Destination, "+")} {
				// Digits within a longer number (a duration in ns) are not the code.
				if regexp.MustCompile(`(^|[^0-9])` + secret + `($|[^0-9])`).MatchString(logs) {
					t.Errorf("a log line holds a code or the number")
				}
			}
			if strings.Contains(logs, sent.Destination) {
				t.Error("a log line holds the destination")
			}
		})
	}
}

// allChannels are the four code channels with a destination each (none for
// Telegram, whose chat is bound by /start).
var allChannels = []struct {
	method      pb.Method
	destination string
}{
	{pb.Method_METHOD_EMAIL, "alice@example.com"},
	{pb.Method_METHOD_SMS, "+4915123456712"},
	{pb.Method_METHOD_SIGNAL, "+12025550143"},
	{pb.Method_METHOD_TELEGRAM, ""},
}

// enrollAny enrolls a destination of method m: with the code sent to it, or for
// Telegram through the binding notifyd reports for the link's token. It returns
// the codes it sent (Telegram: none).
func enrollAny(t *testing.T, c *cluster, r *replica, out *memOutbox, providers *[]*otpcode.Provider, user string, m pb.Method, dest string) int {
	t.Helper()
	if m != pb.Method_METHOD_TELEGRAM {
		enrollOTP(t, c, r, out, user, m, dest)
		return 1
	}
	ctx := c.as("selfservice")
	b, err := r.enrollment().BeginEnrollment(ctx, &pb.BeginEnrollmentRequest{UserId: user, Method: m})
	if err != nil {
		t.Fatal(err)
	}
	token, _ := strings.CutPrefix(b.GetOutOfBand().GetTelegramLink(), "https://t.me/ExampleAuthBot?start=")
	events := server.OTPCodeEvents{Provider: (*providers)[0], Out: out}
	if err := events.Binding(context.Background(), token, "123456789"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.enrollment().FinishEnrollment(ctx, &pb.FinishEnrollmentRequest{UserId: user, FactorId: b.GetFactorId()}); err != nil {
		t.Fatal(err)
	}
	return 0
}

func TestOTPCodeResendCooldownAndCaps(t *testing.T) {
	for _, ch := range allChannels {
		t.Run(ch.method.String(), func(t *testing.T) { resendCooldownAndCaps(t, ch.method, ch.destination) })
	}
}

func resendCooldownAndCaps(t *testing.T, m pb.Method, dest string) {
	c, out, providers := otpCluster(t, otpcode.Config{UserDailyCap: 5, DestinationDailyCap: 100, MaxResends: 2})
	r := c.start()
	sends := enrollAny(t, c, r, out, providers, "alice", m, dest) // send 1 of 5 (Telegram: none)
	bc := beginOTP(t, c, r, "alice", m)                           // 2
	first := out.last(t)
	resend := func() (*pb.ResendChallengeResponse, error) {
		return r.challenges().ResendChallenge(c.as("login"), &pb.ResendChallengeRequest{ChallengeId: bc.GetChallengeId(), Locale: "de"})
	}
	_, err := resend()
	if status.Code(err) != codes.ResourceExhausted || retryInfo(t, err) != 30*time.Second {
		t.Fatalf("resend during the cooldown: %v (retry %v)", err, retryInfo(t, err))
	}
	c.clock.Add(30 * time.Second)
	res, err := resend() // 3
	again := out.last(t)
	if err != nil || again.Code != first.Code || again.MessageID() != first.MessageID()+"_2" || res.GetDelivery().GetSends() != 2 ||
		!strings.Contains(again.Text, "Anmeldecode") {
		t.Fatalf("resend: %+v %v (%v)", res, err, again)
	}
	if _, err := resend(); retryInfo(t, err) != 60*time.Second {
		t.Fatalf("second resend before the doubled cooldown: %v", err)
	}
	c.clock.Add(60 * time.Second)
	if _, err := resend(); err != nil { // 4
		t.Fatal(err)
	}
	c.clock.Add(2 * time.Minute)
	if _, err := resend(); status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "resent as often as allowed") {
		t.Fatalf("resend past the limit: %v", err)
	}
	// The resends kept the attempts: the code still works.
	if v := verifyOTP(t, c, r, bc.GetChallengeId(), first.Code); v.GetResult() != pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
		t.Fatalf("verify after resends: %+v", v)
	}
	for sends += 3; sends < 5; sends++ {
		beginOTP(t, c, r, "alice", m) // 5
	}
	_, err = r.challenges().BeginChallenge(c.as("login"), &pb.BeginChallengeRequest{UserId: "alice", Method: m})
	if status.Code(err) != codes.ResourceExhausted || !strings.HasPrefix(status.Convert(err).Message(), "user_id: the daily limit") {
		t.Fatalf("sixth send of the day: %v", err)
	}
	if n := out.count(); n != 5 {
		t.Fatalf("%d messages handed to delivery; want 5", n)
	}
}

// Ten right answers at once on two replicas, per channel: one is accepted.
func TestOTPCodeConcurrentVerifiesOneWins(t *testing.T) {
	for _, ch := range allChannels {
		t.Run(ch.method.String(), func(t *testing.T) {
			c, out, providers := otpCluster(t, otpcode.Config{})
			r1, r2 := c.start(), c.start()
			enrollAny(t, c, r1, out, providers, "alice", ch.method, ch.destination)
			bc := beginOTP(t, c, r1, "alice", ch.method)
			if won := concurrentRightAnswers(t, c, []*replica{r1, r2}, bc.GetChallengeId(), out.last(t).Code); won != 1 {
				t.Fatalf("%d of 10 concurrent right answers accepted; want 1", won)
			}
		})
	}
}

func concurrentRightAnswers(t *testing.T, c *cluster, rs []*replica, challengeID, code string) int {
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		won int
	)
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := rs[i%len(rs)].challenges().VerifyChallenge(c.as("login"), &pb.VerifyChallengeRequest{ChallengeId: challengeID,
				Response: &pb.VerifyChallengeRequest_Code{Code: code}})
			if err != nil {
				t.Error(err)
				return
			}
			if v.GetResult() == pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
				mu.Lock()
				won++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return won
}

func TestOTPCodeTelegramAndDeliveryStatus(t *testing.T) {
	c, out, providers := otpCluster(t, otpcode.Config{})
	r := c.start()
	ctx := c.as("selfservice")
	b, err := r.enrollment().BeginEnrollment(ctx, &pb.BeginEnrollmentRequest{UserId: "alice", Method: pb.Method_METHOD_TELEGRAM})
	if err != nil {
		t.Fatal(err)
	}
	link := b.GetOutOfBand().GetTelegramLink()
	token, ok := strings.CutPrefix(link, "https://t.me/ExampleAuthBot?start=")
	if !ok || len(token) != 43 {
		t.Fatalf("link %q", link)
	}
	finish := func() (*pb.FinishEnrollmentResponse, error) {
		return r.enrollment().FinishEnrollment(ctx, &pb.FinishEnrollmentRequest{UserId: "alice", FactorId: b.GetFactorId()})
	}
	if _, err := finish(); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("finish before the binding: %v", err)
	}
	events := server.OTPCodeEvents{Provider: (*providers)[0], Out: out}
	if err := events.Binding(context.Background(), token, "123456789"); err != nil {
		t.Fatal(err)
	}
	if err := events.Binding(context.Background(), token, "123456789"); err == nil {
		t.Fatal("a used token bound again")
	}
	fin, err := finish()
	if err != nil || fin.GetFactor().GetOutOfBand().GetMaskedDestination() != "chat ••••89" || !fin.GetFactor().GetOutOfBand().GetOutOfBand() {
		t.Fatalf("finish after the binding: %+v %v", fin, err)
	}
	bc := beginOTP(t, c, r, "alice", pb.Method_METHOD_TELEGRAM)
	sent := out.last(t)
	if sent.Destination != "123456789" {
		t.Fatalf("sent to %q", sent.Destination)
	}
	status := func() *pb.DeliveryStatus {
		t.Helper()
		s, err := r.challenges().GetChallengeStatus(c.as("login"), &pb.GetChallengeStatusRequest{ChallengeId: bc.GetChallengeId()})
		if err != nil {
			t.Fatal(err)
		}
		return s.GetDelivery()
	}
	if s := status(); s.GetState() != pb.DeliveryState_DELIVERY_STATE_QUEUED {
		t.Fatalf("status %+v", s)
	}
	if err := events.Status(context.Background(), notify.GatewayStatus{ChallengeID: sent.MessageID(), State: notify.StatusFailed,
		Error: "telegram: 403 bot was blocked by the user", Time: c.clock.Now().Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	if s := status(); s.GetState() != pb.DeliveryState_DELIVERY_STATE_FAILED || !strings.Contains(s.GetReason(), "blocked") {
		t.Fatalf("status after the failure %+v", s)
	}
	if v := verifyOTP(t, c, r, bc.GetChallengeId(), otherCode(sent.Code)); v.GetDelivery().GetState() != pb.DeliveryState_DELIVERY_STATE_FAILED ||
		v.GetReason() != pb.RejectReason_REJECT_REASON_WRONG_CODE || v.GetRemainingAttempts() != 4 {
		t.Fatalf("wrong code: %+v", v)
	}
	if v := verifyOTP(t, c, r, bc.GetChallengeId(), sent.Code); v.GetResult() != pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
		t.Fatalf("right code: %+v", v)
	}
	bc = beginOTP(t, c, r, "alice", pb.Method_METHOD_TELEGRAM)
	c.clock.Add(otpcode.DefaultCodeTTL)
	if v := verifyOTP(t, c, r, bc.GetChallengeId(), out.last(t).Code); v.GetResult() != pb.VerifyResult_VERIFY_RESULT_EXPIRED {
		t.Fatalf("expired code: %+v", v)
	}
}

// The policy forbids SMS and email codes to admins; other users keep them.
func TestOTPCodePolicyPerGroup(t *testing.T) {
	c, out, _ := otpCluster(t, otpcode.Config{})
	r := c.start()
	directory(t, c, r)
	for _, u := range []string{"erin", "alice"} { // erin is an admin, alice is not
		enrollOTP(t, c, r, out, u, pb.Method_METHOD_SMS, "+4915123456712")
	}
	rules := []*pb.GroupMethodRule{{Group: "admin", ForbiddenMethods: []pb.Method{pb.Method_METHOD_SMS, pb.Method_METHOD_EMAIL}}}
	set, err := r.admin().SetPolicy(c.as("admin"), &pb.SetPolicyRequest{ActorId: "root", Policy: &pb.Policy{GroupRules: rules}})
	if err != nil || len(set.GetPolicy().GetGroupRules()) != 1 || len(set.GetPolicy().GetGroupRules()[0].GetForbiddenMethods()) != 2 {
		t.Fatalf("set policy: %+v %v", set, err)
	}
	_, err = r.challenges().BeginChallenge(c.as("login"), &pb.BeginChallengeRequest{UserId: "erin", Method: pb.Method_METHOD_SMS})
	if status.Code(err) != codes.FailedPrecondition || !strings.HasPrefix(status.Convert(err).Message(), "method:") {
		t.Fatalf("SMS for an admin: %v", err)
	}
	_, err = r.enrollment().BeginEnrollment(c.as("selfservice"), &pb.BeginEnrollmentRequest{UserId: "erin", Method: pb.Method_METHOD_EMAIL,
		Options: &pb.BeginEnrollmentRequest_OutOfBand{OutOfBand: &pb.OutOfBandEnrollmentOptions{Destination: "erin@example.com"}}})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("email enrollment for an admin: %v", err)
	}
	if req, _ := r.challenges().GetLoginRequirements(c.as("login"), &pb.GetLoginRequirementsRequest{UserId: "erin"}); len(req.GetAvailableMethods()) != 0 {
		t.Fatalf("admin's available methods %v", req.GetAvailableMethods())
	}
	beginOTP(t, c, r, "alice", pb.Method_METHOD_SMS)
	bad := []*pb.GroupMethodRule{{Group: "admin", ForbiddenMethods: []pb.Method{pb.Method(99)}}}
	if _, err := r.admin().SetPolicy(c.as("admin"), &pb.SetPolicyRequest{ActorId: "root", Policy: &pb.Policy{GroupRules: bad}}); status.Code(err) != codes.InvalidArgument ||
		!strings.HasPrefix(status.Convert(err).Message(), "policy.group_rules[0].forbidden_methods[0]") {
		t.Fatalf("unknown method in a rule: %v", err)
	}
}

// A new destination replaces the old one once proved; the enrollment's code
// can be resent, after its cooldown.
func TestOTPCodeReplaceAndEnrollmentResend(t *testing.T) {
	c, out, _ := otpCluster(t, otpcode.Config{})
	r := c.start()
	ctx := c.as("selfservice")
	old := enrollOTP(t, c, r, out, "alice", pb.Method_METHOD_EMAIL, "alice@example.com")
	b, err := r.enrollment().BeginEnrollment(ctx, &pb.BeginEnrollmentRequest{UserId: "alice", Method: pb.Method_METHOD_EMAIL,
		Options: &pb.BeginEnrollmentRequest_OutOfBand{OutOfBand: &pb.OutOfBandEnrollmentOptions{Destination: "bob@example.org", ReplacesFactorId: old}}})
	if err != nil {
		t.Fatal(err)
	}
	code := out.last(t).Code
	resend := func() (*pb.ResendEnrollmentCodeResponse, error) {
		return r.enrollment().ResendEnrollmentCode(ctx, &pb.ResendEnrollmentCodeRequest{UserId: "alice", FactorId: b.GetFactorId()})
	}
	if _, err := resend(); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("resend during the cooldown: %v", err)
	}
	c.clock.Add(otpcode.DefaultResendCooldown)
	if res, err := resend(); err != nil || res.GetDelivery().GetSends() != 2 || out.last(t).Code != code {
		t.Fatalf("resend: %+v %v", res, err)
	}
	if _, err := r.enrollment().ResendEnrollmentCode(ctx, &pb.ResendEnrollmentCodeRequest{UserId: "alice", FactorId: old}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("resend of an active factor: %v", err)
	}
	if _, err := r.enrollment().FinishEnrollment(ctx, &pb.FinishEnrollmentRequest{UserId: "alice", FactorId: b.GetFactorId(),
		Proof: &pb.FinishEnrollmentRequest_Code{Code: code}}); err != nil {
		t.Fatal(err)
	}
	list, _ := r.enrollment().ListFactors(ctx, &pb.ListFactorsRequest{UserId: "alice"})
	if len(list.GetFactors()) != 1 || list.GetFactors()[0].GetId() != b.GetFactorId() {
		t.Fatalf("factors after the replacement %v", list.GetFactors())
	}
	if n := out.last(t); n.Kind != otpcode.KindNotice || n.Destination != "alice@example.com" || !strings.Contains(n.Text, "b•••@example.org") {
		t.Fatalf("notice %v", n)
	}
	// Published in the replacement's transaction, the notice has a bound of
	// its own (the request has none here).
	out.mu.Lock()
	left := out.left[len(out.left)-1]
	out.mu.Unlock()
	if left <= 0 || left > server.NoticePublishTimeout {
		t.Fatalf("the notice's publish had %v left, want within (0, %v]", left, server.NoticePublishTimeout)
	}
	bc := beginOTP(t, c, r, "alice", pb.Method_METHOD_EMAIL)
	if bc.GetOutOfBand().GetMaskedDestination() != "b•••@example.org" {
		t.Fatalf("login goes to %q", bc.GetOutOfBand().GetMaskedDestination())
	}
	for _, bad := range []*pb.BeginEnrollmentRequest{
		{UserId: "alice", Method: pb.Method_METHOD_SMS},
		{UserId: "alice", Method: pb.Method_METHOD_SMS, Options: &pb.BeginEnrollmentRequest_OutOfBand{OutOfBand: &pb.OutOfBandEnrollmentOptions{Destination: "+49 30 12345678"}}},
		{UserId: "alice", Method: pb.Method_METHOD_EMAIL, Options: &pb.BeginEnrollmentRequest_OutOfBand{OutOfBand: &pb.OutOfBandEnrollmentOptions{Destination: "x@y.z", ReplacesFactorId: "nope"}}},
	} {
		if _, err := r.enrollment().BeginEnrollment(ctx, bad); status.Code(err) != codes.InvalidArgument {
			t.Errorf("enrollment %v: %v", bad, err)
		}
	}
}

// Sweep removes sent codes, link tokens and old send counters.
func TestOTPCodeSweep(t *testing.T) {
	c, out, _ := otpCluster(t, otpcode.Config{})
	r := c.start()
	enrollOTP(t, c, r, out, "alice", pb.Method_METHOD_EMAIL, "alice@example.com")
	beginOTP(t, c, r, "alice", pb.Method_METHOD_EMAIL)
	if _, err := r.enrollment().BeginEnrollment(c.as("selfservice"), &pb.BeginEnrollmentRequest{UserId: "alice", Method: pb.Method_METHOD_TELEGRAM}); err != nil {
		t.Fatal(err)
	}
	db := storagetest.OpenURL(t, c.url).DB(context.Background())
	count := func(table string) int64 {
		var n int64
		db.Table(table).Count(&n)
		return n
	}
	if count("otp_codes") != 2 || count("otp_link_tokens") != 1 || count("otp_send_counters") != 2 {
		t.Fatalf("before the sweep: %d codes, %d tokens, %d counters", count("otp_codes"), count("otp_link_tokens"), count("otp_send_counters"))
	}
	c.clock.Add(49 * time.Hour)
	if err := r.srv.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if count("otp_codes") != 0 || count("otp_link_tokens") != 0 || count("otp_send_counters") != 0 {
		t.Fatalf("after the sweep: %d codes, %d tokens, %d counters", count("otp_codes"), count("otp_link_tokens"), count("otp_send_counters"))
	}
}
