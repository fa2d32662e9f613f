package server_test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/twofactor/twofactor/notify"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/push"
	"github.com/twofactor/twofactor/providers/totp"
	"github.com/twofactor/twofactor/providers/trusteddevice"
	"github.com/twofactor/twofactor/providers/webauthn/softauthn"
	"github.com/twofactor/twofactor/server"
	"github.com/twofactor/twofactor/storage/storagetest"
)

const deviceIP = "203.0.113.7"

// allowRemember lets everyone's devices be remembered for maxAge (0: default).
func allowRemember(t *testing.T, c *cluster, r *replica, p *pb.Policy) {
	t.Helper()
	directory(t, c, r)
	if p == nil {
		p = &pb.Policy{RememberDevice: true}
	}
	if _, err := r.admin().SetPolicy(c.as("admin"), &pb.SetPolicyRequest{ActorId: "root", Policy: p}); err != nil {
		t.Fatalf("SetPolicy: %v", err)
	}
}

// loginRemember passes a TOTP challenge with remember_device and returns the answer.
func loginRemember(t *testing.T, c *cluster, r *replica, user string, seed []byte, params totp.Params) *pb.VerifyChallengeResponse {
	t.Helper()
	c.clock.Add(30 * time.Second)
	code, _ := totp.CodeAt(seed, params, c.clock.Now())
	resp, err := r.challenges().VerifyChallenge(c.as("login"), &pb.VerifyChallengeRequest{
		ChallengeId: begin(t, c, r, user), Response: &pb.VerifyChallengeRequest_Code{Code: code},
		Context:        &pb.ClientContext{Ip: deviceIP, UserAgent: "Mozilla/5.0 Firefox/140.0"},
		RememberDevice: true, DeviceLabel: "Firefox on Linux",
	})
	if err != nil || resp.GetResult() != pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
		t.Fatalf("VerifyChallenge: %v, %v", resp, err)
	}
	return resp
}

func checkDevice(t *testing.T, c *cluster, r *replica, user, token string, stepUp bool) *pb.CheckRememberedDeviceResponse {
	t.Helper()
	resp, err := r.challenges().CheckRememberedDevice(c.as("login"), &pb.CheckRememberedDeviceRequest{
		UserId: user, DeviceToken: token, Context: &pb.ClientContext{Ip: deviceIP}, StepUp: stepUp})
	if err != nil {
		t.Fatalf("CheckRememberedDevice: %v", err)
	}
	return resp
}

func wantRemembered(t *testing.T, resp *pb.CheckRememberedDeviceResponse, want pb.RememberedResult) {
	t.Helper()
	if resp.GetResult() != want || (want == pb.RememberedResult_REMEMBERED_RESULT_REMEMBERED) != (resp.GetDeviceToken() != "") {
		t.Fatalf("CheckRememberedDevice = %v, want %v", resp, want)
	}
}

func TestRememberDeviceIssueUseTheft(t *testing.T) {
	c := newCluster(t)
	a, b := c.start(), c.start()
	allowRemember(t, c, a, nil)
	_, seed, params := enrollTOTP(t, c, a, "alice")
	v := loginRemember(t, c, a, "alice", seed, params)
	tok0 := v.GetDeviceToken()
	if _, err := trusteddevice.Parse(tok0); err != nil || v.GetRememberedDevice().GetLabel() != "Firefox on Linux" ||
		!v.GetDeviceTokenExpiresAt().AsTime().Equal(c.clock.Now().Truncate(time.Microsecond).Add(trusteddevice.DefaultMaxAge)) {
		t.Fatalf("issued %v (%v)", v.GetRememberedDevice(), err)
	}
	// The next login, on another replica, skips the second factor and rotates.
	c.clock.Add(time.Hour)
	r1 := checkDevice(t, c, b, "alice", tok0, false)
	wantRemembered(t, r1, pb.RememberedResult_REMEMBERED_RESULT_REMEMBERED)
	if r1.GetDeviceToken() == tok0 || r1.GetDeviceId() != v.GetRememberedDevice().GetId() || !r1.GetDeviceTokenExpiresAt().AsTime().Equal(v.GetDeviceTokenExpiresAt().AsTime()) {
		t.Fatalf("rotation %v", r1)
	}
	tok1 := r1.GetDeviceToken()
	// Presented again within the grace: the same successor, once.
	if g := checkDevice(t, c, a, "alice", tok0, false); g.GetDeviceToken() != tok1 {
		t.Fatalf("within grace: %v", g)
	}
	c.clock.Add(time.Minute)
	wantRemembered(t, checkDevice(t, c, a, "alice", tok0, false), pb.RememberedResult_REMEMBERED_RESULT_NOT_REMEMBERED)
	wantRemembered(t, checkDevice(t, c, a, "alice", tok1, false), pb.RememberedResult_REMEMBERED_RESULT_NOT_REMEMBERED)
	for event, n := range map[string]int{"device.remembered": 1, "device.used": 2, "device.theft_detected": 1} {
		if got := c.auditOf(event); len(got) != n {
			t.Errorf("%d %s events, want %d", len(got), event, n)
		}
	}
	st := storagetest.OpenURL(t, c.url)
	storagetest.AssertNotStored(t, st, tok0, tok1, tok0[5:30], tok1[5:30])
	logs := c.logs.String()
	for _, tok := range []string{tok0, tok1, tok0[5:30], tok1[5:30]} {
		if strings.Contains(logs, tok) {
			t.Fatal("a device token appears in the logs")
		}
	}
}

func TestRememberDevicePolicyAndStepUp(t *testing.T) {
	c := newCluster(t)
	r := c.start()
	directory(t, c, r)
	_, seed, params := enrollTOTP(t, c, r, "alice")
	if v := loginRemember(t, c, r, "alice", seed, params); v.GetDeviceToken() != "" || v.GetRememberedDevice() != nil {
		t.Fatalf("policy off by default, yet a token: %v", v)
	}
	allowRemember(t, c, r, &pb.Policy{RememberDeviceGroups: []string{"eng"}, RememberDeviceMaxAge: durationpb.New(48 * time.Hour)})
	v := loginRemember(t, c, r, "alice", seed, params)
	if v.GetDeviceToken() == "" || v.GetDeviceTokenExpiresAt().AsTime().Sub(c.clock.Now()) > 48*time.Hour {
		t.Fatalf("policy on: %v", v)
	}
	// A step-up never uses the token (nor rotates it).
	wantRemembered(t, checkDevice(t, c, r, "alice", v.GetDeviceToken(), true), pb.RememberedResult_REMEMBERED_RESULT_STEP_UP_REQUIRED)
	tok := checkDevice(t, c, r, "alice", v.GetDeviceToken(), false).GetDeviceToken()
	// bob is not in eng: no token for him.
	_, bseed, bparams := enrollTOTP(t, c, r, "bob")
	if bv := loginRemember(t, c, r, "bob", bseed, bparams); bv.GetDeviceToken() != "" {
		t.Fatal("bob got a token outside the policy's groups")
	}
	// Turned off: the token no longer works.
	if _, err := r.admin().SetPolicy(c.as("admin"), &pb.SetPolicyRequest{ActorId: "root", Policy: &pb.Policy{}}); err != nil {
		t.Fatal(err)
	}
	wantRemembered(t, checkDevice(t, c, r, "alice", tok, false), pb.RememberedResult_REMEMBERED_RESULT_NOT_REMEMBERED)
	// Expiry is absolute (48 h), whatever the use.
	allowRemember(t, c, r, &pb.Policy{RememberDevice: true, RememberDeviceMaxAge: durationpb.New(48 * time.Hour)})
	tok = checkDevice(t, c, r, "alice", tok, false).GetDeviceToken()
	c.clock.Add(48 * time.Hour)
	wantRemembered(t, checkDevice(t, c, r, "alice", tok, false), pb.RememberedResult_REMEMBERED_RESULT_NOT_REMEMBERED)
}

// Every credentials change kills every remembered device of the user.
func TestRememberedDevicesDieWithCredentialsChange(t *testing.T) {
	c := newCluster(t)
	r := c.start()
	allowRemember(t, c, r, nil)
	self, adm := c.as("selfservice"), c.as("admin")
	fid, seed, params := enrollTOTP(t, c, r, "alice")
	triggers := []struct {
		name string
		do   func() error
	}{
		{"factor added", func() error { enrollTOTP(t, c, r, "alice"); return nil }},
		// A push device enrolls itself (DeviceService), a factor added all the same.
		{"push device enrolled", func() error { enrollPush(t, c, r, r, "alice"); return nil }},
		{"U2F key imported", func() error {
			k, err := softauthn.NewU2F(waAppID, nil)
			if err != nil {
				return err
			}
			_, err = r.admin().ImportU2FRegistration(adm, &pb.ImportU2FRegistrationRequest{ActorId: "root", UserId: "alice", AppId: waAppID,
				KeyHandle: base64.RawURLEncoding.EncodeToString(k.KeyHandle), PublicKey: base64.RawURLEncoding.EncodeToString(k.PublicKeyRaw)})
			return err
		}},
		{"backup codes issued", func() error { issueBackupCodes(t, c, r, "alice"); return nil }},
		{"admin code issued", func() error {
			_, err := r.admin().IssueAdminBackupCode(adm, &pb.IssueAdminBackupCodeRequest{ActorId: "root", UserId: "alice"})
			return err
		}},
		{"password changed", func() error {
			_, err := r.enrollment().NotifyPasswordChanged(self, &pb.NotifyPasswordChangedRequest{UserId: "alice"})
			return err
		}},
		{"factor removed", func() error {
			_, err := r.enrollment().RemoveFactor(self, &pb.RemoveFactorRequest{UserId: "alice", FactorId: fid})
			return err
		}},
		{"factors reset", func() error {
			_, err := r.admin().ResetFactors(adm, &pb.ResetFactorsRequest{ActorId: "root", UserId: "alice"})
			return err
		}},
	}
	for _, tr := range triggers {
		if tr.name == "factors reset" { // the last TOTP factor went with "factor removed"
			fid, seed, params = enrollTOTP(t, c, r, "alice")
		}
		tok := loginRemember(t, c, r, "alice", seed, params).GetDeviceToken()
		tok = checkDevice(t, c, r, "alice", tok, false).GetDeviceToken()
		if err := tr.do(); err != nil {
			t.Fatalf("%s: %v", tr.name, err)
		}
		if got := checkDevice(t, c, r, "alice", tok, false); got.GetResult() != pb.RememberedResult_REMEMBERED_RESULT_NOT_REMEMBERED {
			t.Fatalf("%s: the token still works: %v", tr.name, got)
		}
	}
	if n := len(c.auditOf("device.revoked")); n < len(triggers) {
		t.Fatalf("%d device.revoked events, want one per trigger", n)
	}
}

// A push device that ends its FinishDeviceEnrollment call as soon as it is stored
// (one enrolling with a stolen token, say) does not keep the user's remembered
// devices alive: the credentials epoch moved in the enrollment's own transaction,
// so the device is stored only with the epoch moved.
// Old code (before the transaction was shared): the epoch's bump ran after the
// commit on the caller's context, failed Canceled, and every remembered device
// stayed valid beside the new device.
func TestRememberedDevicesDieWhenTheEnrollingDeviceLeaves(t *testing.T) {
	c := newCluster(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c.onAudit = func(sctx context.Context, e server.AuditEvent) {
		if e.Event == notify.EventFactorEnrolled && e.Method == push.Method {
			cancel()      // the device leaves once it is stored
			<-sctx.Done() // and the server has seen it leave
		}
	}
	r := c.start()
	allowRemember(t, c, r, nil)
	_, seed, params := enrollTOTP(t, c, r, "alice")
	tok := loginRemember(t, c, r, "alice", seed, params).GetDeviceToken()
	tok = checkDevice(t, c, r, "alice", tok, false).GetDeviceToken()
	token, d := pushToken(t, c, r, "alice")
	if err := d.Enroll(ctx, r.devices(), token, "Phone", "android", nil); status.Code(err) != codes.Canceled {
		t.Fatalf("enrollment left by its caller: %v, want Canceled", err)
	}
	if !hasFactor(t, c, r, "alice", pb.Method_METHOD_PUSH, "") {
		t.Fatal("the push device left after it was stored, yet it is not enrolled")
	}
	if got := checkDevice(t, c, r, "alice", tok, false); got.GetResult() != pb.RememberedResult_REMEMBERED_RESULT_NOT_REMEMBERED {
		t.Fatalf("the remembered device outlived the push device enrolled: %v", got)
	}
}

func TestRememberedDevicesListRevoke(t *testing.T) {
	c := newCluster(t)
	r := c.start()
	allowRemember(t, c, r, nil)
	self, adm := c.as("selfservice"), c.as("admin")
	_, seed, params := enrollTOTP(t, c, r, "alice")
	toks := []string{}
	for i := 0; i < 3; i++ {
		toks = append(toks, loginRemember(t, c, r, "alice", seed, params).GetDeviceToken())
	}
	list, err := r.enrollment().ListRememberedDevices(self, &pb.ListRememberedDevicesRequest{UserId: "alice"})
	if err != nil || len(list.GetDevices()) != 3 || list.GetDevices()[0].GetIssuedIp() != deviceIP || list.GetDevices()[0].GetUserAgent() == "" {
		t.Fatalf("List = %v, %v", list, err)
	}
	first := list.GetDevices()[0].GetId()
	if _, err := r.enrollment().RevokeRememberedDevice(self, &pb.RevokeRememberedDeviceRequest{UserId: "bob", DeviceId: first}); status.Code(err) != codes.NotFound {
		t.Fatalf("revoke of another user's device: %v", err)
	}
	if _, err := r.enrollment().RevokeRememberedDevice(self, &pb.RevokeRememberedDeviceRequest{UserId: "alice", DeviceId: first}); err != nil {
		t.Fatal(err)
	}
	wantRemembered(t, checkDevice(t, c, r, "alice", toks[0], false), pb.RememberedResult_REMEMBERED_RESULT_NOT_REMEMBERED)
	// Group-admin scope: carol administers eng (alice), not sales (bob).
	if _, err := r.admin().ListUserRememberedDevices(adm, &pb.ListUserRememberedDevicesRequest{ActorId: "carol", UserId: "bob"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("carol listing bob's devices: %v", err)
	}
	al, err := r.admin().ListUserRememberedDevices(adm, &pb.ListUserRememberedDevicesRequest{ActorId: "carol", UserId: "alice"})
	if err != nil || len(al.GetDevices()) != 2 {
		t.Fatalf("admin list: %v, %v", al, err)
	}
	if _, err := r.admin().RevokeUserRememberedDevices(adm, &pb.RevokeUserRememberedDevicesRequest{ActorId: "carol", UserId: "bob"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("carol revoking bob's devices: %v", err)
	}
	one, err := r.admin().RevokeUserRememberedDevices(adm, &pb.RevokeUserRememberedDevicesRequest{ActorId: "carol", UserId: "alice", DeviceId: al.GetDevices()[0].GetId()})
	if err != nil || one.GetRevoked() != 1 {
		t.Fatalf("admin revoke one: %v, %v", one, err)
	}
	all, err := r.enrollment().RevokeAllRememberedDevices(self, &pb.RevokeAllRememberedDevicesRequest{UserId: "alice"})
	if err != nil || all.GetRevoked() != 1 {
		t.Fatalf("revoke all: %v, %v", all, err)
	}
	wantRemembered(t, checkDevice(t, c, r, "alice", toks[2], false), pb.RememberedResult_REMEMBERED_RESULT_NOT_REMEMBERED)
	if got := c.auditOf("device.revoked"); len(got) != 3 || got[1].Actor != "carol" {
		t.Fatalf("revocation audit %v", got)
	}
}

// Unknown tokens are throttled per client network; the user is never locked, so
// a valid token from another network still works.
func TestUnknownDeviceTokensThrottledPerNetwork(t *testing.T) {
	c := newCluster(t)
	c.throttle.IPDelayAfter = 3
	r := c.start()
	allowRemember(t, c, r, nil)
	_, seed, params := enrollTOTP(t, c, r, "alice")
	tok := loginRemember(t, c, r, "alice", seed, params).GetDeviceToken()
	// A well-formed token that this cluster never issued.
	elsewhere, err := trusteddevice.New(trusteddevice.Config{Store: storagetest.Open(t), Hasher: storagetest.KeyRing(t)})
	if err != nil {
		t.Fatal(err)
	}
	_, other, _, err := elsewhere.Issue(context.Background(), trusteddevice.IssueInput{UserID: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	throttled := false
	for i := 0; i < 10 && !throttled; i++ {
		resp, err := r.challenges().CheckRememberedDevice(c.as("login"), &pb.CheckRememberedDeviceRequest{
			UserId: "alice", DeviceToken: other, Context: &pb.ClientContext{Ip: "198.51.100.9"}})
		if err != nil {
			t.Fatal(err)
		}
		throttled = resp.GetResult() == pb.RememberedResult_REMEMBERED_RESULT_THROTTLED && resp.GetRetryAfter().AsDuration() > 0
	}
	if !throttled {
		t.Fatal("unknown tokens from one network were never throttled")
	}
	wantRemembered(t, checkDevice(t, c, r, "alice", tok, false), pb.RememberedResult_REMEMBERED_RESULT_REMEMBERED)
}

func TestRememberDeviceInputNamesTheField(t *testing.T) {
	c := newCluster(t)
	r := c.start()
	login := c.as("login")
	for field, req := range map[string]*pb.CheckRememberedDeviceRequest{
		"user_id":      {DeviceToken: "x"},
		"device_token": {UserId: "alice"},
		"context.ip":   {UserId: "alice", DeviceToken: "x", Context: &pb.ClientContext{Ip: "nope"}},
	} {
		if _, err := r.challenges().CheckRememberedDevice(login, req); status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), field) {
			t.Errorf("%s: %v", field, err)
		}
	}
	long := &pb.CheckRememberedDeviceRequest{UserId: "alice", DeviceToken: strings.Repeat("a", 2000)}
	if _, err := r.challenges().CheckRememberedDevice(login, long); status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), "device_token") {
		t.Errorf("long token: %v", err)
	}
	// A garbled cookie is an answer, not an error.
	if resp, err := r.challenges().CheckRememberedDevice(login, &pb.CheckRememberedDeviceRequest{UserId: "alice", DeviceToken: "tfrd_garbage"}); err != nil ||
		resp.GetResult() != pb.RememberedResult_REMEMBERED_RESULT_NOT_REMEMBERED {
		t.Errorf("garbage token: %v, %v", resp, err)
	}
	_, seed, params := enrollTOTP(t, c, r, "alice")
	c.clock.Add(30 * time.Second)
	code, _ := totp.CodeAt(seed, params, c.clock.Now())
	id := begin(t, c, r, "alice")
	_, err := r.challenges().VerifyChallenge(login, &pb.VerifyChallengeRequest{ChallengeId: id, Response: &pb.VerifyChallengeRequest_Code{Code: code},
		RememberDevice: true, DeviceLabel: strings.Repeat("x", 200)})
	if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), "device_label") {
		t.Fatalf("long label: %v", err)
	}
	// Nothing was used up: the same code still passes the challenge.
	if got := verify(t, c, r, id, code); got.GetResult() != pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
		t.Fatalf("after a refused label: %v", got)
	}
	if _, err := r.enrollment().RevokeRememberedDevice(c.as("selfservice"), &pb.RevokeRememberedDeviceRequest{UserId: "alice"}); status.Code(err) != codes.InvalidArgument ||
		!strings.HasPrefix(status.Convert(err).Message(), "device_id") {
		t.Fatalf("revoke without id: %v", err)
	}
	if _, err := r.challenges().CheckRememberedDevice(c.as("selfservice"), &pb.CheckRememberedDeviceRequest{UserId: "alice", DeviceToken: "x"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("selfservice key checking a device: %v", err)
	}
}

// A label or user id the device store refuses (a C1 control character: not
// printable, as the fields' docs ask) is refused before the answer is checked,
// as a long label is. Accepted, it spent the code and the login went on with
// no device remembered (the store's refusal only logged).
func TestRememberDeviceRefusesC1Controls(t *testing.T) {
	c := newCluster(t)
	r := c.start()
	allowRemember(t, c, r, nil)
	_, seed, params := enrollTOTP(t, c, r, "alice")
	c.clock.Add(30 * time.Second)
	code, _ := totp.CodeAt(seed, params, c.clock.Now())
	id := begin(t, c, r, "alice")
	_, err := r.challenges().VerifyChallenge(c.as("login"), &pb.VerifyChallengeRequest{ChallengeId: id, Response: &pb.VerifyChallengeRequest_Code{Code: code},
		RememberDevice: true, DeviceLabel: "Phone\u009b31m"})
	if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), "device_label") {
		t.Fatalf("label with a C1 control: %v", err)
	}
	if got := verify(t, c, r, id, code); got.GetResult() != pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
		t.Fatalf("after a refused label: %v", got)
	}
	_, err = r.enrollment().BeginEnrollment(c.as("selfservice"), &pb.BeginEnrollmentRequest{UserId: "bob\u0085", Method: pb.Method_METHOD_TOTP})
	if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), "user_id") {
		t.Fatalf("user id with a C1 control: %v", err)
	}
}
