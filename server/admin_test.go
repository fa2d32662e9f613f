package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/otpcode"
	"github.com/twofactor/twofactor/storage/storagetest"
)

func TestPolicySetGet(t *testing.T) {
	c := newCluster(t)
	a, b := c.start(), c.start()
	directory(t, c, a)
	adm := c.as("admin")
	got, err := b.admin().GetPolicy(adm, &pb.GetPolicyRequest{})
	if err != nil || !proto.Equal(got.GetPolicy(), &pb.Policy{}) {
		t.Fatalf("default policy: %v, %v", got, err)
	}
	in := &pb.Policy{
		AllowedMethods: []pb.Method{pb.Method_METHOD_WEBAUTHN, pb.Method_METHOD_TOTP},
		Enforced:       true, ExcludedGroups: []string{"contractors", "bots"},
		GracePeriod: durationpb.New(7 * 24 * time.Hour), WebauthnRequireUserVerification: true,
	}
	want := &pb.Policy{
		AllowedMethods: []pb.Method{pb.Method_METHOD_TOTP, pb.Method_METHOD_WEBAUTHN},
		Enforced:       true, ExcludedGroups: []string{"bots", "contractors"},
		GracePeriod: durationpb.New(7 * 24 * time.Hour), WebauthnRequireUserVerification: true,
	}
	for _, actor := range []string{"carol", "alice", "nobody"} {
		_, err := a.admin().SetPolicy(adm, &pb.SetPolicyRequest{ActorId: actor, Policy: in})
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("SetPolicy by %s: %v, want PermissionDenied", actor, err)
		}
	}
	set, err := a.admin().SetPolicy(adm, &pb.SetPolicyRequest{ActorId: "root", Policy: in})
	if err != nil || !proto.Equal(set.GetPolicy(), want) {
		t.Fatalf("SetPolicy = %v, %v", set, err)
	}
	got, err = b.admin().GetPolicy(adm, &pb.GetPolicyRequest{})
	if err != nil || !proto.Equal(got.GetPolicy(), want) {
		t.Fatalf("GetPolicy on the other replica = %v, %v", got, err)
	}
	// Backup codes are now forbidden: not issued, not offered.
	if _, err := a.enrollment().IssueBackupCodes(c.as("selfservice"), &pb.IssueBackupCodesRequest{UserId: "alice"}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("IssueBackupCodes while forbidden: %v", err)
	}
	if _, err := a.admin().IssueAdminBackupCode(adm, &pb.IssueAdminBackupCodeRequest{ActorId: "root", UserId: "alice"}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("IssueAdminBackupCode while forbidden: %v", err)
	}
}

func TestAdminInputNamesTheField(t *testing.T) {
	c := newCluster(t)
	r := c.start()
	directory(t, c, r)
	adm := c.as("admin")
	cases := []struct {
		name  string
		call  func() error
		field string
	}{
		{"policy missing", func() error {
			_, err := r.admin().SetPolicy(adm, &pb.SetPolicyRequest{ActorId: "root"})
			return err
		}, "policy"},
		{"unspecified method", func() error {
			_, err := r.admin().SetPolicy(adm, &pb.SetPolicyRequest{ActorId: "root", Policy: &pb.Policy{AllowedMethods: []pb.Method{pb.Method_METHOD_TOTP, 0}}})
			return err
		}, "policy.allowed_methods[1]"},
		{"recovery methods only", func() error {
			_, err := r.admin().SetPolicy(adm, &pb.SetPolicyRequest{ActorId: "root", Policy: &pb.Policy{AllowedMethods: []pb.Method{pb.Method_METHOD_BACKUP_CODE}}})
			return err
		}, "policy.allowed_methods"},
		{"negative grace", func() error {
			_, err := r.admin().SetPolicy(adm, &pb.SetPolicyRequest{ActorId: "root", Policy: &pb.Policy{GracePeriod: durationpb.New(-time.Hour)}})
			return err
		}, "policy.grace_period"},
		{"empty excluded group", func() error {
			_, err := r.admin().SetPolicy(adm, &pb.SetPolicyRequest{ActorId: "root", Policy: &pb.Policy{ExcludedGroups: []string{"a", ""}}})
			return err
		}, "policy.excluded_groups[1]"},
		{"no actor", func() error {
			_, err := r.admin().SetPolicy(adm, &pb.SetPolicyRequest{Policy: &pb.Policy{}})
			return err
		}, "actor_id"},
		{"empty group name", func() error {
			_, err := r.admin().SetUserGroups(adm, &pb.SetUserGroupsRequest{UserId: "alice", Groups: []string{"eng", ""}})
			return err
		}, "groups[1]"},
		{"control char in group", func() error {
			_, err := r.admin().SetGroupAdmins(adm, &pb.SetGroupAdminsRequest{Group: "e\nng", AdminUserIds: []string{"carol"}})
			return err
		}, "group"},
		{"C1 control char in group", func() error {
			_, err := r.admin().SetUserGroups(adm, &pb.SetUserGroupsRequest{UserId: "alice", Groups: []string{"eng", "ops\u009b31m"}})
			return err
		}, "groups[1]"},
		{"bad admin id", func() error {
			_, err := r.admin().SetGroupAdmins(adm, &pb.SetGroupAdminsRequest{Group: "eng", AdminUserIds: []string{"carol", ""}})
			return err
		}, "admin_user_ids[1]"},
		{"reset without user", func() error {
			_, err := r.admin().ResetFactors(adm, &pb.ResetFactorsRequest{ActorId: "root"})
			return err
		}, "user_id"},
		{"reset with a bad factor id", func() error {
			_, err := r.admin().ResetFactors(adm, &pb.ResetFactorsRequest{ActorId: "root", UserId: "alice", FactorId: "x"})
			return err
		}, "factor_id"},
		{"delete without actor", func() error {
			_, err := r.admin().DeleteUser(adm, &pb.DeleteUserRequest{UserId: "alice"})
			return err
		}, "actor_id"},
	}
	for _, tc := range cases {
		st := status.Convert(tc.call())
		if st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), tc.field+":") {
			t.Errorf("%s: %v %q, want InvalidArgument naming %q", tc.name, st.Code(), st.Message(), tc.field)
		}
	}
	// The admin role is needed for the whole service.
	if _, err := r.admin().GetPolicy(c.as("selfservice"), &pb.GetPolicyRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("GetPolicy with a selfservice key: %v", err)
	}
}

func TestResetFactors(t *testing.T) {
	c := newCluster(t)
	r := c.start()
	directory(t, c, r)
	adm := c.as("admin")
	fid, _, _ := enrollTOTP(t, c, r, "alice")
	enrollTOTP(t, c, r, "alice")
	issueBackupCodes(t, c, r, "alice")
	enrollTOTP(t, c, r, "bob")
	if _, err := r.admin().ResetFactors(adm, &pb.ResetFactorsRequest{ActorId: "carol", UserId: "bob"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("group admin resetting outside her groups: %v", err)
	}
	if _, err := r.admin().ResetFactors(adm, &pb.ResetFactorsRequest{ActorId: "carol", UserId: "alice", FactorId: "00000000-0000-0000-0000-000000000000"}); status.Code(err) != codes.NotFound {
		t.Fatalf("reset of an unknown factor: %v", err)
	}
	one, err := r.admin().ResetFactors(adm, &pb.ResetFactorsRequest{ActorId: "carol", UserId: "alice", FactorId: fid})
	if err != nil || one.GetRemoved() != 1 {
		t.Fatalf("reset one: %v, %v", one, err)
	}
	all, err := r.admin().ResetFactors(adm, &pb.ResetFactorsRequest{ActorId: "carol", UserId: "alice"})
	if err != nil || all.GetRemoved() != 2 {
		t.Fatalf("reset all: %v, %v; want 2 (a TOTP factor and the backup codes)", all, err)
	}
	list, _ := r.enrollment().ListFactors(c.as("selfservice"), &pb.ListFactorsRequest{UserId: "alice"})
	st, _ := r.enrollment().GetBackupCodesStatus(c.as("selfservice"), &pb.GetBackupCodesStatusRequest{UserId: "alice"})
	if len(list.GetFactors()) != 0 || st.GetEnabled() {
		t.Fatalf("after reset: factors %v, backup codes %v", list.GetFactors(), st)
	}
	if !strings.Contains(c.logs.String(), `"event":"admin.reset"`) || !strings.Contains(c.logs.String(), `"actor":"carol"`) {
		t.Fatal("the reset is not in the audit trail with its actor")
	}
	if list, _ := r.enrollment().ListFactors(c.as("selfservice"), &pb.ListFactorsRequest{UserId: "bob"}); len(list.GetFactors()) != 1 {
		t.Fatal("bob's factor went with alice's")
	}
}

// Deleting a user removes all their rows, in every table that holds user rows.
func TestDeleteUserRemovesEverything(t *testing.T) {
	c, out, _ := otpCluster(t, otpcode.Config{})
	r := c.start()
	directory(t, c, r)
	adm := c.as("admin")
	r.admin().SetPolicy(adm, &pb.SetPolicyRequest{ActorId: "root", Policy: &pb.Policy{Enforced: true, RememberDevice: true}})
	for _, user := range []string{"alice", "frank"} {
		_, seed, params := enrollTOTP(t, c, r, user)
		issueBackupCodes(t, c, r, user)
		if _, err := r.admin().IssueAdminBackupCode(adm, &pb.IssueAdminBackupCodeRequest{ActorId: "root", UserId: user}); err != nil {
			t.Fatal(err)
		}
		beginWith(t, c, r, user, pb.Method_METHOD_BACKUP_CODE) // a stored challenge (a TOTP one is sealed into its id)
		enrollPush(t, c, r, r, user)                           // push enrollment token, device and factor
		beginWith(t, c, r, user, pb.Method_METHOD_PUSH)        // push challenge and limit state
		if _, err := r.enrollment().BeginEnrollment(c.as("selfservice"), &pb.BeginEnrollmentRequest{UserId: user, Method: pb.Method_METHOD_WEBAUTHN, Name: "Key",
			Options: &pb.BeginEnrollmentRequest_Webauthn{Webauthn: &pb.WebAuthnEnrollmentOptions{UserName: user}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := r.appPasswords().IssueAppPassword(c.as("selfservice"), &pb.IssueAppPasswordRequest{UserId: user, Name: "DAV"}); err != nil {
			t.Fatal(err)
		}
		r.challenges().GetLoginRequirements(c.as("login"), &pb.GetLoginRequirementsRequest{UserId: user})
		enrollOTP(t, c, r, out, user, pb.Method_METHOD_EMAIL, user+"@example.com") // a sent code's row
		if _, err := r.enrollment().BeginEnrollment(c.as("selfservice"), &pb.BeginEnrollmentRequest{UserId: user, Method: pb.Method_METHOD_TELEGRAM}); err != nil {
			t.Fatal(err) // a link token's row
		}
		// A network the throttle remembers as familiar to the user.
		if err := storagetest.OpenURL(t, c.url).RememberFamiliarNetwork(context.Background(), user, "192.0.2.1", time.Now(), time.Hour, time.Hour, 10); err != nil {
			t.Fatal(err)
		}
		// A remembered device, rotated once (a retired token).
		checkDevice(t, c, r, user, loginRemember(t, c, r, user, seed, params).GetDeviceToken(), false)
	}
	r.admin().SetGroupAdmins(adm, &pb.SetGroupAdminsRequest{Group: "sales", AdminUserIds: []string{"alice", "frank"}})
	if _, err := r.admin().DeleteUser(adm, &pb.DeleteUserRequest{ActorId: "carol", UserId: "bob"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("group admin deleting outside her groups: %v", err)
	}
	// alice now administers sales, which carol does not: no lateral step (issue 16,
	// finding 8); a full admin deletes her.
	if _, err := r.admin().DeleteUser(adm, &pb.DeleteUserRequest{ActorId: "carol", UserId: "alice"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("group admin deleting a group admin of another group: %v", err)
	}
	if _, err := r.admin().DeleteUser(adm, &pb.DeleteUserRequest{ActorId: "root", UserId: "alice"}); err != nil {
		t.Fatal(err)
	}
	db := storagetest.OpenURL(t, c.url).DB(context.Background())
	tables, err := db.Migrator().GetTables()
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, table := range tables {
		if table == "audit_events" {
			continue // the audit trail outlives the account by design (storage.AuditRecord)
		}
		for _, col := range []string{"user_id", "admin_id"} {
			if !db.Migrator().HasColumn(table, col) {
				continue
			}
			var alice, frank int64
			db.Table(table).Where(col+" = ?", "alice").Count(&alice)
			db.Table(table).Where(col+" = ?", "frank").Count(&frank)
			if alice != 0 {
				t.Errorf("table %s keeps %d rows of the deleted user", table, alice)
			}
			if frank == 0 {
				t.Errorf("table %s has no rows of the user kept: the test does not cover it", table)
			}
			checked++
		}
	}
	if checked < 8 {
		t.Fatalf("checked %d tables with user rows, want at least 8", checked)
	}
}
