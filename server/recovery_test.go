package server_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// beginWith opens a challenge of method m and returns its id.
func beginWith(t *testing.T, c *cluster, r *replica, user string, m pb.Method) string {
	t.Helper()
	resp, err := r.challenges().BeginChallenge(c.as("login"), &pb.BeginChallengeRequest{
		UserId: user, Method: m, Context: &pb.ClientContext{Ip: "203.0.113.7", UserAgent: "test"},
	})
	if err != nil {
		t.Fatalf("BeginChallenge(%s, %v): %v", user, m, err)
	}
	return resp.GetChallengeId()
}

func issueBackupCodes(t *testing.T, c *cluster, r *replica, user string) []string {
	t.Helper()
	resp, err := r.enrollment().IssueBackupCodes(c.as("selfservice"), &pb.IssueBackupCodesRequest{UserId: user})
	if err != nil {
		t.Fatalf("IssueBackupCodes: %v", err)
	}
	return resp.GetCodes()
}

// directory syncs groups: alice and frank in eng (frank also a contractor), bob in
// sales, erin an admin who is in eng too, root an admin; carol administers eng.
func directory(t *testing.T, c *cluster, r *replica) {
	t.Helper()
	ctx := c.as("admin")
	for user, groups := range map[string][]string{
		"alice": {"eng"}, "bob": {"sales"}, "erin": {"eng", "admin"}, "frank": {"eng", "contractors"}, "root": {"admin"},
	} {
		if _, err := r.admin().SetUserGroups(ctx, &pb.SetUserGroupsRequest{UserId: user, Groups: groups}); err != nil {
			t.Fatalf("SetUserGroups(%s): %v", user, err)
		}
	}
	if _, err := r.admin().SetGroupAdmins(ctx, &pb.SetGroupAdminsRequest{Group: "eng", AdminUserIds: []string{"carol"}}); err != nil {
		t.Fatalf("SetGroupAdmins: %v", err)
	}
}

func TestBackupCodesLogInOnceEach(t *testing.T) {
	c := newCluster(t)
	a, b := c.start(), c.start()
	self := c.as("selfservice")
	_, err := a.challenges().BeginChallenge(c.as("login"), &pb.BeginChallengeRequest{UserId: "alice", Method: pb.Method_METHOD_BACKUP_CODE})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("begin without codes: %v, want FailedPrecondition", err)
	}
	if st, _ := a.enrollment().GetBackupCodesStatus(self, &pb.GetBackupCodesStatusRequest{UserId: "alice"}); st.GetEnabled() {
		t.Fatalf("status before issue: %v", st)
	}
	codesIssued := issueBackupCodes(t, c, a, "alice")
	if len(codesIssued) != 10 {
		t.Fatalf("%d codes, want 10", len(codesIssued))
	}
	// Begun on one replica, answered on the other; wrong, right, replayed.
	id := beginWith(t, c, a, "alice", pb.Method_METHOD_BACKUP_CODE)
	if got := verify(t, c, b, id, "22222-22222"); got.Result != pb.VerifyResult_VERIFY_RESULT_REJECTED || got.Reason != pb.RejectReason_REJECT_REASON_WRONG_CODE {
		t.Fatalf("wrong code: %v", got)
	}
	if got := verify(t, c, b, id, strings.ToLower(codesIssued[0])); got.Result != pb.VerifyResult_VERIFY_RESULT_ACCEPTED ||
		got.UserId != "alice" || got.Method != pb.Method_METHOD_BACKUP_CODE {
		t.Fatalf("right code: %v", got)
	}
	id = beginWith(t, c, b, "alice", pb.Method_METHOD_BACKUP_CODE)
	if got := verify(t, c, a, id, codesIssued[0]); got.Result != pb.VerifyResult_VERIFY_RESULT_REJECTED || got.Reason != pb.RejectReason_REJECT_REASON_REPLAYED {
		t.Fatalf("used code again: %v", got)
	}
	if _, err := a.challenges().VerifyChallenge(c.as("login"), &pb.VerifyChallengeRequest{ChallengeId: id, Response: &pb.VerifyChallengeRequest_Code{Code: "OOOOO-OOOOO"}}); status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), "code:") {
		t.Fatalf("malformed code: %v", err)
	}
	st, err := b.enrollment().GetBackupCodesStatus(self, &pb.GetBackupCodesStatusRequest{UserId: "alice"})
	if err != nil || !st.GetEnabled() || st.GetTotal() != 10 || st.GetRemaining() != 9 || !st.GetCreatedAt().AsTime().Equal(c.clock.Now()) {
		t.Fatalf("status: %v, %v", st, err)
	}
	// Regeneration invalidates every old code.
	fresh := issueBackupCodes(t, c, b, "alice")
	for _, old := range codesIssued[1:3] {
		id := beginWith(t, c, a, "alice", pb.Method_METHOD_BACKUP_CODE)
		if got := verify(t, c, a, id, old); got.Result != pb.VerifyResult_VERIFY_RESULT_REJECTED || got.Reason != pb.RejectReason_REJECT_REASON_WRONG_CODE {
			t.Fatalf("old code after regeneration: %v", got)
		}
	}
	if got := verify(t, c, a, beginWith(t, c, a, "alice", pb.Method_METHOD_BACKUP_CODE), fresh[0]); got.Result != pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
		t.Fatalf("new code: %v", got)
	}
	// Using up to the next-to-last code leaves a running-low record in the audit trail.
	for _, code := range fresh[1:9] {
		if got := verify(t, c, b, beginWith(t, c, a, "alice", pb.Method_METHOD_BACKUP_CODE), code); got.Result != pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
			t.Fatalf("code: %v", got)
		}
	}
	if n := strings.Count(c.logs.String(), "backupcodes.running_low"); n != 1 {
		t.Fatalf("running-low audit events: %d, want 1", n)
	}
}

// Many racers on two replicas answer several challenges with one backup code:
// exactly one login succeeds.
func TestBackupCodeRaceAcrossReplicas(t *testing.T) {
	c := newCluster(t)
	a, b := c.start(), c.start()
	code := issueBackupCodes(t, c, a, "bob")[4]
	var ids []string
	for i := range 4 {
		ids = append(ids, beginWith(t, c, []*replica{a, b}[i%2], "bob", pb.Method_METHOD_BACKUP_CODE))
	}
	accepted := race(t, c, []*replica{a, b}, ids, code, 24)
	if accepted != 1 {
		t.Fatalf("%d logins accepted one backup code, want exactly 1", accepted)
	}
}

func TestAdminCodeIssueLoginExpire(t *testing.T) {
	c := newCluster(t)
	r := c.start()
	directory(t, c, r)
	adm := c.as("admin")
	// A group admin for a member of her group: allowed; outside it: refused.
	issued, err := r.admin().IssueAdminBackupCode(adm, &pb.IssueAdminBackupCodeRequest{ActorId: "carol", UserId: "alice"})
	if err != nil {
		t.Fatalf("group admin for a member: %v", err)
	}
	if !issued.GetExpiresAt().AsTime().Equal(c.clock.Now().Add(24 * time.Hour)) {
		t.Fatalf("expires %v, want 24 h", issued.GetExpiresAt().AsTime())
	}
	for _, tc := range []struct{ actor, user string }{{"carol", "bob"}, {"carol", "erin"}, {"alice", "frank"}, {"mallory", "alice"}} {
		_, err := r.admin().IssueAdminBackupCode(adm, &pb.IssueAdminBackupCodeRequest{ActorId: tc.actor, UserId: tc.user})
		if status.Code(err) != codes.PermissionDenied || !strings.HasPrefix(status.Convert(err).Message(), "actor_id:") {
			t.Errorf("%s for %s: %v, want PermissionDenied", tc.actor, tc.user, err)
		}
	}
	if _, err := r.admin().IssueAdminBackupCode(adm, &pb.IssueAdminBackupCodeRequest{ActorId: "root", UserId: "bob"}); err != nil {
		t.Fatalf("admin for anyone: %v", err)
	}
	// Login with it once.
	id := beginWith(t, c, r, "alice", pb.Method_METHOD_ADMIN_CODE)
	if got := verify(t, c, r, id, issued.GetCode()); got.Result != pb.VerifyResult_VERIFY_RESULT_ACCEPTED || got.Method != pb.Method_METHOD_ADMIN_CODE {
		t.Fatalf("admin code login: %v", got)
	}
	if !strings.Contains(c.logs.String(), `"detail.issued_by":"carol"`) {
		t.Fatal("the audit trail does not say who issued the used code")
	}
	if _, err := r.challenges().BeginChallenge(c.as("login"), &pb.BeginChallengeRequest{UserId: "alice", Method: pb.Method_METHOD_ADMIN_CODE}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("begin after the code was used: %v, want FailedPrecondition", err)
	}
	// A newer code replaces an older; an expired one does not work.
	short, err := r.admin().IssueAdminBackupCode(adm, &pb.IssueAdminBackupCodeRequest{ActorId: "root", UserId: "alice", Ttl: durationpb.New(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	id = beginWith(t, c, r, "alice", pb.Method_METHOD_ADMIN_CODE)
	_, _ = r.admin().IssueAdminBackupCode(adm, &pb.IssueAdminBackupCodeRequest{ActorId: "root", UserId: "alice", Ttl: durationpb.New(time.Hour)})
	if got := verify(t, c, r, id, short.GetCode()); got.Result != pb.VerifyResult_VERIFY_RESULT_REJECTED || got.Reason != pb.RejectReason_REJECT_REASON_WRONG_CODE {
		t.Fatalf("replaced code: %v", got)
	}
	c.clock.Add(time.Hour)
	if _, err := r.challenges().BeginChallenge(c.as("login"), &pb.BeginChallengeRequest{UserId: "alice", Method: pb.Method_METHOD_ADMIN_CODE}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("begin with an expired code: %v, want FailedPrecondition", err)
	}
	for _, ttl := range []*durationpb.Duration{durationpb.New(-time.Second), durationpb.New(30 * 24 * time.Hour)} {
		_, err := r.admin().IssueAdminBackupCode(adm, &pb.IssueAdminBackupCodeRequest{ActorId: "root", UserId: "alice", Ttl: ttl})
		if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), "ttl:") {
			t.Errorf("ttl %v: %v, want InvalidArgument naming ttl", ttl.AsDuration(), err)
		}
	}
}

// An admin code that expires while its challenge is open is refused.
func TestAdminCodeExpiresDuringChallenge(t *testing.T) {
	c := newCluster(t)
	r := c.start()
	directory(t, c, r)
	issued, err := r.admin().IssueAdminBackupCode(c.as("admin"), &pb.IssueAdminBackupCodeRequest{ActorId: "root", UserId: "bob", Ttl: durationpb.New(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	id := beginWith(t, c, r, "bob", pb.Method_METHOD_ADMIN_CODE)
	c.clock.Add(time.Minute)
	if got := verify(t, c, r, id, issued.GetCode()); got.Result != pb.VerifyResult_VERIFY_RESULT_REJECTED {
		t.Fatalf("expired admin code: %v", got)
	}
}

// No backup or admin code is stored in clear: the raw tables hold none.
func TestNoRecoveryCodeInClear(t *testing.T) {
	c := newCluster(t)
	r := c.start()
	directory(t, c, r)
	secrets := issueBackupCodes(t, c, r, "alice")
	issued, err := r.admin().IssueAdminBackupCode(c.as("admin"), &pb.IssueAdminBackupCodeRequest{ActorId: "root", UserId: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, issued.GetCode())
	for _, s := range secrets[:len(secrets):len(secrets)] {
		secrets = append(secrets, strings.ReplaceAll(s, "-", ""))
	}
	raw := storagetest.OpenURL(t, c.url)
	if rows := storagetest.AssertNotStored(t, raw, secrets...); rows < 12 {
		t.Fatalf("read %d rows, want at least the 10 codes, their set and the admin code", rows)
	}
	for _, s := range secrets {
		if strings.Contains(c.logs.String(), s) {
			t.Fatal("a code appears in the logs")
		}
	}
}

func TestLoginRequirements(t *testing.T) {
	c := newCluster(t)
	r := c.start()
	directory(t, c, r)
	adm := c.as("admin")
	_, err := r.admin().SetPolicy(adm, &pb.SetPolicyRequest{ActorId: "root", Policy: &pb.Policy{
		EnforcedGroups: []string{"eng"}, ExcludedGroups: []string{"contractors"}, GracePeriod: durationpb.New(72 * time.Hour),
		AllowedMethods: []pb.Method{pb.Method_METHOD_TOTP, pb.Method_METHOD_BACKUP_CODE, pb.Method_METHOD_ADMIN_CODE},
	}})
	if err != nil {
		t.Fatal(err)
	}
	enrollTOTP(t, c, r, "erin")
	issueBackupCodes(t, c, r, "erin")
	allowed := []pb.Method{pb.Method_METHOD_TOTP, pb.Method_METHOD_BACKUP_CODE, pb.Method_METHOD_ADMIN_CODE}
	now := c.clock.Now()
	cases := []struct {
		name string
		user string
		want *pb.GetLoginRequirementsResponse
	}{
		{"enforced, no factor: in grace", "alice", &pb.GetLoginRequirementsResponse{MustEnroll: true, InGrace: true}},
		{"not enforced", "bob", &pb.GetLoginRequirementsResponse{}},
		{"excluded", "frank", &pb.GetLoginRequirementsResponse{}},
		{"enforced and enrolled", "erin", &pb.GetLoginRequirementsResponse{SecondFactorRequired: true,
			AvailableMethods: []pb.Method{pb.Method_METHOD_TOTP, pb.Method_METHOD_BACKUP_CODE}}},
	}
	for _, tc := range cases {
		got, err := r.challenges().GetLoginRequirements(c.as("login"), &pb.GetLoginRequirementsRequest{UserId: tc.user})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got.SecondFactorRequired != tc.want.SecondFactorRequired || got.MustEnroll != tc.want.MustEnroll || got.InGrace != tc.want.InGrace ||
			!equalMethods(got.AvailableMethods, tc.want.AvailableMethods) || !equalMethods(got.AllowedMethods, allowed) {
			t.Errorf("%s: %v", tc.name, got)
		}
		if tc.want.InGrace && !got.GetGraceUntil().AsTime().Equal(now.Add(72*time.Hour)) {
			t.Errorf("%s: grace until %v", tc.name, got.GetGraceUntil().AsTime())
		}
	}
	c.clock.Add(73 * time.Hour)
	got, _ := r.challenges().GetLoginRequirements(c.as("login"), &pb.GetLoginRequirementsRequest{UserId: "alice"})
	if !got.MustEnroll || got.InGrace {
		t.Fatalf("alice after the grace period: %v", got)
	}
	// After an admin code, alice can pass a second factor, then must enrol.
	r.admin().IssueAdminBackupCode(adm, &pb.IssueAdminBackupCodeRequest{ActorId: "carol", UserId: "alice"})
	got, _ = r.challenges().GetLoginRequirements(c.as("login"), &pb.GetLoginRequirementsRequest{UserId: "alice"})
	if !got.SecondFactorRequired || !got.MustEnroll || !equalMethods(got.AvailableMethods, []pb.Method{pb.Method_METHOD_ADMIN_CODE}) {
		t.Fatalf("alice with an admin code: %v", got)
	}
}

func equalMethods(a, b []pb.Method) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
