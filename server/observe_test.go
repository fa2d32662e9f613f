package server_test

import (
	"context"
	"encoding/base32"
	"io"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/twofactor/twofactor/notify"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/totp"
	"github.com/twofactor/twofactor/server/throttle"
)

// wrongCode is a well-formed code that is not valid now.
func wrongCode(seed []byte, p totp.Params, now time.Time) string {
	valid := map[string]bool{}
	for _, d := range []time.Duration{-time.Duration(p.Period) * time.Second, 0, time.Duration(p.Period) * time.Second} {
		c, _ := totp.CodeAt(seed, p, now.Add(d))
		valid[c] = true
	}
	for _, c := range []string{"000000", "111111", "222222", "333333"} {
		if !valid[c] {
			return c
		}
	}
	panic("unreachable")
}

// challengeUUID is the part of a challenge id the audit trail names it by (all of
// a stored challenge's id; the uuid before the dot of a sealed one).
func challengeUUID(id string) string {
	head, _, _ := strings.Cut(id, ".")
	return head
}

func beginFrom(c *cluster, r *replica, user, ip string) (*pb.BeginChallengeResponse, error) {
	return r.challenges().BeginChallenge(c.as("login"), &pb.BeginChallengeRequest{
		UserId: user, Method: pb.Method_METHOD_TOTP, Context: &pb.ClientContext{Ip: ip, UserAgent: "guesser/1.0"},
	})
}

func verifyFrom(t *testing.T, c *cluster, r *replica, id, code, ip string) *pb.VerifyChallengeResponse {
	t.Helper()
	resp, err := r.challenges().VerifyChallenge(c.as("login"), &pb.VerifyChallengeRequest{
		ChallengeId: id, Response: &pb.VerifyChallengeRequest_Code{Code: code}, Context: &pb.ClientContext{Ip: ip, UserAgent: "guesser/1.0"},
	})
	if err != nil {
		t.Fatalf("VerifyChallenge: %v", err)
	}
	return resp
}

// An attacker guesses alice's TOTP code over many challenges on two replicas,
// waiting out every delay: the shared count locks alice after UserLockAfter wrong
// guesses, even the right code is refused then, the lock shows in GetThrottleStatus,
// an admin clears it, and a second lock expires on its own.
func TestTOTPGuessingStoppedAcrossReplicas(t *testing.T) {
	c := newCluster(t)
	c.throttle = throttle.Config{IPDelayAfter: 2, UserDelayAfter: 4, UserLockAfter: 8, LockDuration: 15 * time.Minute}
	a, b := c.start(), c.start()
	_, seed, params := enrollTOTP(t, c, a, "alice")
	replicas := []*replica{a, b}
	const ip = "2001:db8:66:1::7"

	guess := func(n int) (failures int, last *pb.VerifyChallengeResponse) {
		var id string
		left := 0
		for i := 0; failures < n; i++ {
			r := replicas[i%2]
			if left == 0 {
				resp, err := beginFrom(c, r, "alice", ip)
				if status.Code(err) == codes.ResourceExhausted {
					c.clock.Add(retryInfo(t, err))
					continue
				}
				if err != nil {
					t.Fatalf("BeginChallenge: %v", err)
				}
				id, left = resp.GetChallengeId(), int(resp.GetMaxAttempts())
			}
			got := verifyFrom(t, c, r, id, wrongCode(seed, params, c.clock.Now()), ip)
			switch got.Result {
			case pb.VerifyResult_VERIFY_RESULT_THROTTLED:
				c.clock.Add(got.GetRetryAfter().AsDuration())
			case pb.VerifyResult_VERIFY_RESULT_REJECTED:
				failures++
				left--
			default:
				t.Fatalf("guess %d: %v", i, got)
			}
			last = got
		}
		return failures, last
	}

	// Two free guesses from the network; the third failure delays the network but
	// not alice, who logs in from elsewhere... without resetting the attacker's network.
	guess(3)
	if _, err := beginFrom(c, b, "alice", "2001:db8:66:2::1"); status.Code(err) != codes.ResourceExhausted ||
		!strings.Contains(status.Convert(err).Message(), "client network") {
		t.Fatalf("another address of the attacker's /56: %v", err)
	}
	if _, err := beginFrom(c, b, "alice", "198.51.100.20"); err != nil {
		t.Fatalf("alice from her own network after 3 failures: %v", err)
	}

	// Five more (eight in all) lock alice, whatever network she comes from.
	guess(5)
	resp, err := beginFrom(c, a, "alice", "198.51.100.20")
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(status.Convert(err).Message(), "user is locked") {
		t.Fatalf("BeginChallenge of a locked user: %v", err)
	}
	if d := retryInfo(t, err); d != 15*time.Minute {
		t.Fatalf("retry info %v, want the lock's 15m", d)
	}
	_ = resp
	st, err := b.admin().GetThrottleStatus(c.as("admin"), &pb.GetThrottleStatusRequest{Subject: &pb.ThrottleSubject{Subject: &pb.ThrottleSubject_UserId{UserId: "alice"}}})
	if err != nil || st.GetFailures() != 8 || !st.GetLocked() || !st.GetBlockedUntil().AsTime().Equal(c.clock.Now().Add(15*time.Minute)) {
		t.Fatalf("GetThrottleStatus(alice) = %v, %v", st, err)
	}
	ipst, err := a.admin().GetThrottleStatus(c.as("admin"), &pb.GetThrottleStatusRequest{Subject: &pb.ThrottleSubject{Subject: &pb.ThrottleSubject_Ip{Ip: ip}}})
	if err != nil || ipst.GetKey() != "2001:db8:66::/56" || ipst.GetFailures() != 8 || ipst.GetLocked() {
		t.Fatalf("GetThrottleStatus(ip) = %v, %v", ipst, err)
	}

	// A challenge begun before the lock: even the right code is refused now.
	c.clock.Add(-0) // same instant
	if _, err := a.admin().ClearThrottle(c.as("admin"), &pb.ClearThrottleRequest{ActorId: "mallory", Subject: &pb.ThrottleSubject{Subject: &pb.ThrottleSubject_UserId{UserId: "alice"}}}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("ClearThrottle by a non-admin actor: %v", err)
	}
	if _, err := a.admin().ClearThrottle(c.as("admin"), &pb.ClearThrottleRequest{Subject: &pb.ThrottleSubject{Subject: &pb.ThrottleSubject_UserId{UserId: "alice"}}}); err != nil {
		t.Fatalf("ClearThrottle: %v", err)
	}
	c.clock.Add(30 * time.Second)
	code, _ := totp.CodeAt(seed, params, c.clock.Now())
	ch, err := beginFrom(c, b, "alice", "198.51.100.20")
	if err != nil {
		t.Fatalf("BeginChallenge after an admin cleared the lock: %v", err)
	}
	if got := verifyFrom(t, c, a, ch.GetChallengeId(), code, "198.51.100.20"); got.Result != pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
		t.Fatalf("right code after clear: %v", got)
	}

	// Lock again (alice has passed a second factor from 198.51.100.20 now: the
	// strangers lock her count for other networks only); open a challenge from
	// her network first, then the lock refuses even the right code on it from a
	// network she never signed in from, until the lock expires, while from her
	// own network it is accepted (smart lockout).
	ch, err = beginFrom(c, a, "alice", "198.51.100.20")
	if err != nil {
		t.Fatal(err)
	}
	c.clock.Add(25 * time.Second) // the attacker's network delay has passed
	_, last := guess(8)
	if last.Result != pb.VerifyResult_VERIFY_RESULT_REJECTED {
		t.Fatalf("last guess: %v", last)
	}
	c.clock.Add(30 * time.Second)
	code, _ = totp.CodeAt(seed, params, c.clock.Now())
	got := verifyFrom(t, c, b, ch.GetChallengeId(), code, "192.0.2.77")
	if got.Result != pb.VerifyResult_VERIFY_RESULT_THROTTLED || got.GetRetryAfter().AsDuration() <= 14*time.Minute {
		t.Fatalf("right code while locked, from a new network: %v", got)
	}
	if got := verifyFrom(t, c, a, ch.GetChallengeId(), code, "198.51.100.20"); got.Result != pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
		t.Fatalf("right code while locked, from alice's familiar network: %v", got)
	}
	c.clock.Add(15 * time.Minute)
	code, _ = totp.CodeAt(seed, params, c.clock.Now())
	ch, err = beginFrom(c, b, "alice", "192.0.2.77")
	if err != nil {
		t.Fatalf("BeginChallenge after the lock expired: %v", err)
	}
	if got := verifyFrom(t, c, a, ch.GetChallengeId(), code, "192.0.2.77"); got.Result != pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
		t.Fatalf("right code after the lock expired: %v", got)
	}

	// Both locks and the clear are in alice's audit trail.
	var events []string
	tok := ""
	for {
		page, err := a.admin().ListAuditEvents(c.as("admin"), &pb.ListAuditEventsRequest{UserId: "alice", PageSize: 7, PageToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.GetEvents() {
			events = append(events, e.GetEvent())
		}
		if tok = page.GetNextPageToken(); tok == "" {
			break
		}
	}
	if n := count(events, notify.EventLockout); n != 2 {
		t.Errorf("%d lockout events, want 2", n)
	}
	if n := count(events, notify.EventThrottleCleared); n != 1 {
		t.Errorf("%d throttle.cleared events, want 1", n)
	}
	if events[0] != notify.EventChallengeAccepted || events[len(events)-1] != notify.EventFactorEnrolled {
		t.Errorf("not newest first: %v ... %v", events[0], events[len(events)-1])
	}
	if _, err := a.admin().ListAuditEvents(c.as("admin"), &pb.ListAuditEventsRequest{UserId: "bob", PageToken: tokFor(t, c, a)}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a page token of another user: %v", err)
	}
}

func tokFor(t *testing.T, c *cluster, r *replica) string {
	page, err := r.admin().ListAuditEvents(c.as("admin"), &pb.ListAuditEventsRequest{UserId: "alice", PageSize: 1})
	if err != nil || page.GetNextPageToken() == "" {
		t.Fatalf("first page: %v %v", page, err)
	}
	return page.GetNextPageToken()
}

func count(xs []string, x string) int {
	n := 0
	for _, v := range xs {
		if v == x {
			n++
		}
	}
	return n
}

func retryInfo(t *testing.T, err error) time.Duration {
	t.Helper()
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	t.Fatalf("no RetryInfo in %v", err)
	return 0
}

// tail follows the audit stream through a durable consumer until ctx ends.
func tail(ctx context.Context, t *testing.T, c *cluster, durable string) <-chan notify.AuditEvent {
	out := make(chan notify.AuditEvent, 100)
	go func() {
		err := notify.TailAudit(ctx, c.js, c.names, durable, true, func(e notify.AuditEvent) error {
			out <- e
			return nil
		})
		if err != nil {
			t.Errorf("TailAudit: %v", err)
		}
		close(out)
	}()
	return out
}

func next(t *testing.T, ch <-chan notify.AuditEvent) notify.AuditEvent {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no audit event within 10s")
	}
	return notify.AuditEvent{}
}

// The events of an enrolment and a login arrive on NATS in order with the
// documented fields; a consumer that was offline gets the ones it missed when it
// returns; the metrics show the login.
func TestLoginAuditOnNATSAndMetrics(t *testing.T) {
	c := newCluster(t)
	a, b := c.start(), c.start()
	ctx, stop := context.WithCancel(context.Background())
	events := tail(ctx, t, c, "siem")

	_, seed, params := enrollTOTP(t, c, a, "alice")
	first := next(t, events)
	if e := first; e.Event != notify.EventFactorEnrolled || e.UserID != "alice" || e.Method != "totp" || e.V != 1 {
		t.Fatalf("first event %+v", e)
	}
	// The consumer goes offline; the login happens meanwhile.
	stop()
	for range events {
	}
	c.clock.Add(30 * time.Second)
	code, _ := totp.CodeAt(seed, params, c.clock.Now())
	id := begin(t, c, b, "alice")
	verify(t, c, a, id, wrongCode(seed, params, c.clock.Now()))
	if got := verify(t, c, b, id, code); got.Result != pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
		t.Fatalf("login: %v", got)
	}

	ctx, stop = context.WithCancel(context.Background())
	defer stop()
	events = tail(ctx, t, c, "siem")
	want := []struct{ event, result string }{
		{notify.EventChallengeBegun, ""},
		{notify.EventChallengeRejected, "REJECT_REASON_WRONG_CODE"},
		{notify.EventChallengeAccepted, "accepted"},
	}
	// Each replica publishes its events in the order it recorded them; the two
	// replicas' events interleave as their writers run.
	got := map[string]notify.AuditEvent{}
	var order []string
	for len(got) < len(want) {
		e := next(t, events)
		if e.ID == first.ID {
			// Delivery is at least once (TailAudit's contract): the first event may
			// come again if its ack had not reached the server when the consumer
			// stopped. Consumers drop repeats by id.
			continue
		}
		if _, dup := got[e.Event]; dup {
			t.Fatalf("event %s twice: %+v", e.Event, e)
		}
		got[e.Event] = e
		order = append(order, e.Event)
	}
	if slices.Index(order, notify.EventChallengeBegun) > slices.Index(order, notify.EventChallengeAccepted) {
		t.Fatalf("replica b's events out of order: %v", order)
	}
	for i, w := range want {
		e, ok := got[w.event]
		if !ok {
			t.Fatalf("no %s event among %v", w.event, order)
		}
		if e.Event != w.event || e.Result != w.result || e.UserID != "alice" || e.Method != "totp" ||
			!e.Time.Equal(c.clock.Now()) || e.ID == "" || e.RequestID == "" || !strings.HasPrefix(e.Caller, "login(") ||
			e.ClientIP != "203.0.113.7" && i == 0 || e.UserAgent != "test" && i == 0 || e.Details["challenge_id"] != challengeUUID(id) {
			t.Fatalf("event %d: %+v, want %s/%s with every field", i, e, w.event, w.result)
		}
	}

	// Metrics: each replica shows its part of the login.
	for r, wants := range map[*replica][]string{
		a: {
			`twofactor_verifications_total{factor="totp",result="rejected"} 1`,
			`twofactor_rpc_requests_total{code="OK",method="/twofactor.v1.ChallengeService/VerifyChallenge"} 1`,
			`twofactor_rpc_duration_seconds_count{code="OK",method="/twofactor.v1.ChallengeService/VerifyChallenge"} 1`,
			`twofactor_rpc_requests_total{code="OK",method="/twofactor.v1.EnrollmentService/FinishEnrollment"} 1`,
		},
		b: {
			`twofactor_verifications_total{factor="totp",result="accepted"} 1`,
			`twofactor_rpc_requests_total{code="OK",method="/twofactor.v1.ChallengeService/BeginChallenge"} 1`,
			`twofactor_rpc_requests_total{code="OK",method="/twofactor.v1.ChallengeService/VerifyChallenge"} 1`,
		},
	} {
		body := scrape(t, r)
		for _, want := range wants {
			if !strings.Contains(body, want) {
				t.Errorf("metrics of replica %s lack %s", r.addr, want)
			}
		}
		if !strings.Contains(body, "twofactor_audit_lost_total 0") || !strings.Contains(body, "twofactor_audit_publish_failures_total 0") {
			t.Errorf("audit failures counted with NATS up:\n%s", grep(body, "twofactor_audit"))
		}
	}
}

func scrape(t *testing.T, r *replica) string {
	t.Helper()
	r.flushAudit(t) // the trail counts its failures in the background
	srv := httptest.NewServer(r.srv.Metrics().Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// An enrolment, logins with a TOTP code, backup and admin codes, and app
// passwords leave no secret in the captured logs (JSON, debug level).
func TestNoSecretsInLogs(t *testing.T) {
	c := newCluster(t)
	r := c.start()
	ctx := c.as("selfservice")
	beginResp, err := r.enrollment().BeginEnrollment(ctx, &pb.BeginEnrollmentRequest{UserId: "alice", Method: pb.Method_METHOD_TOTP})
	if err != nil {
		t.Fatal(err)
	}
	secretB32 := beginResp.GetTotp().GetSecret()
	seed, _ := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secretB32)
	params := totp.Params{Algorithm: beginResp.GetTotp().GetAlgorithm(), Digits: int(beginResp.GetTotp().GetDigits()), Period: uint(beginResp.GetTotp().GetPeriodSeconds())}
	wrong := wrongCode(seed, params, c.clock.Now())
	if _, err := r.enrollment().FinishEnrollment(ctx, &pb.FinishEnrollmentRequest{UserId: "alice", FactorId: beginResp.GetFactorId(), Proof: &pb.FinishEnrollmentRequest_Code{Code: wrong}}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("wrong enrolment code: %v", err)
	}
	code1, _ := totp.CodeAt(seed, params, c.clock.Now())
	if _, err := r.enrollment().FinishEnrollment(ctx, &pb.FinishEnrollmentRequest{UserId: "alice", FactorId: beginResp.GetFactorId(), Proof: &pb.FinishEnrollmentRequest_Code{Code: code1}}); err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{"seed (base32)": secretB32, "enrolment code": code1, "wrong code": wrong, "otpauth uri": beginResp.GetTotp().GetUri()}
	c.clock.Add(30 * time.Second)
	code2, _ := totp.CodeAt(seed, params, c.clock.Now())
	secrets["login code"] = code2
	id := begin(t, c, r, "alice")
	if got := verify(t, c, r, id, code2); got.Result != pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
		t.Fatal(got)
	}
	bc, err := r.enrollment().IssueBackupCodes(ctx, &pb.IssueBackupCodesRequest{UserId: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	for i, code := range bc.GetCodes() {
		secrets["backup code "+string(rune('a'+i))] = code
	}
	bid, err := r.challenges().BeginChallenge(c.as("login"), &pb.BeginChallengeRequest{UserId: "alice", Method: pb.Method_METHOD_BACKUP_CODE})
	if err != nil {
		t.Fatal(err)
	}
	if got := verify(t, c, r, bid.GetChallengeId(), bc.GetCodes()[0]); got.Result != pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
		t.Fatal(got)
	}
	// root must be an admin, or no admin code is issued and the test sees none.
	directory(t, c, r)
	ac, err := r.admin().IssueAdminBackupCode(c.as("admin"), &pb.IssueAdminBackupCodeRequest{ActorId: "root", UserId: "alice"})
	if err != nil {
		t.Fatalf("IssueAdminBackupCode: %v", err)
	}
	secrets["admin code"] = ac.GetCode()
	aid, err := r.challenges().BeginChallenge(c.as("login"), &pb.BeginChallengeRequest{UserId: "alice", Method: pb.Method_METHOD_ADMIN_CODE})
	if err != nil {
		t.Fatal(err)
	}
	if got := verify(t, c, r, aid.GetChallengeId(), ac.GetCode()); got.Result != pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
		t.Fatal(got)
	}
	ap, err := r.appPasswords().IssueAppPassword(ctx, &pb.IssueAppPasswordRequest{UserId: "alice", Name: "DAV"})
	if err != nil {
		t.Fatal(err)
	}
	secrets["app password"] = ap.GetPassword()
	if got, err := r.appPasswords().VerifyAppPassword(c.as("login"), &pb.VerifyAppPasswordRequest{Login: "alice", Password: ap.GetPassword(), Context: &pb.ClientContext{Ip: "203.0.113.9"}}); err != nil || !got.GetValid() {
		t.Fatalf("VerifyAppPassword: %v %v", got, err)
	}
	for name, tok := range c.keys {
		secrets["API key "+name] = tok
	}
	logs := c.logs.String()
	if !strings.Contains(logs, `"msg":"audit"`) || !strings.Contains(logs, `"request_id"`) {
		t.Fatal("the captured logs hold no audit lines or request ids: the test sees nothing")
	}
	for what, s := range secrets {
		if s != "" && inLogs(logs, s) {
			t.Errorf("the %s is in the logs", what)
		}
	}
}

// inLogs tells whether secret is in logs. A code of digits is looked for as a
// number of its own: as a substring, a 6-digit code turns up by chance in the
// logs' two thousand digits (timestamps, durations, ids) in about one run of
// two hundred (a flake seen once in a full run).
func inLogs(logs, secret string) bool {
	if strings.Trim(secret, "0123456789") != "" {
		return strings.Contains(logs, secret)
	}
	return regexp.MustCompile(`(^|[^0-9])` + secret + `([^0-9]|$)`).MatchString(logs)
}

// With NATS gone, RPCs still succeed and their events are stored; the relay
// counts the events it could not publish, keeps them pending and says so once in
// the log, however many rounds fail.
func TestAuditPublishFailureDoesNotFailTheRPC(t *testing.T) {
	c := newCluster(t)
	r := c.start()
	r.nc.Close()
	enrollTOTP(t, c, r, "alice")
	begin(t, c, r, "alice")
	deadline := time.Now().Add(10 * time.Second)
	for {
		body := scrape(t, r)
		if strings.Contains(body, "twofactor_audit_pending 2") && metricAtLeast(t, body, "twofactor_audit_publish_failures_total", 6) {
			break // three rounds failed with both events pending
		}
		if time.Now().After(deadline) {
			t.Fatalf("publish failures not counted:\n%s", grep(body, "twofactor_audit"))
		}
		time.Sleep(10 * time.Millisecond) // polling a real condition, with a deadline
	}
	if failing, err := r.relay.Failing(); !failing || err == nil {
		t.Errorf("relay failing %v (%v), want true", failing, err)
	}
	page, err := r.admin().ListAuditEvents(c.as("admin"), &pb.ListAuditEventsRequest{UserId: "alice"})
	if err != nil || len(page.GetEvents()) != 2 || page.GetEvents()[0].GetEvent() != notify.EventChallengeBegun ||
		page.GetEvents()[0].GetMethod() != pb.Method_METHOD_TOTP || page.GetEvents()[0].GetClientIp() != "203.0.113.7" {
		t.Fatalf("stored events %v, %v", page, err)
	}
	if n := strings.Count(c.logs.String(), "audit relay: publishing to NATS fails"); n != 1 {
		t.Errorf("the outage is logged %d times, want once", n)
	}
	if strings.Contains(c.logs.String(), "audit event not stored") {
		t.Error("an unpublished event is logged as lost")
	}
}

// metricAtLeast tells whether the unlabelled series name in body is at least min.
func metricAtLeast(t *testing.T, body, name string, min float64) bool {
	t.Helper()
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			return f >= min
		}
	}
	return false
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
