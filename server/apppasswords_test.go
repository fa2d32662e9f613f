package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/twofactor/twofactor/notify"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/apppasswords"
	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// auditOf lists the audit records of one event, oldest first, as every replica
// wrote them to the shared store.
func (c *cluster) auditOf(event string) []storage.AuditRecord {
	c.t.Helper()
	c.flushAudit()
	var out []storage.AuditRecord
	st := storagetest.OpenURL(c.t, c.url)
	if err := st.DB(context.Background()).Where("event = ?", event).Order("occurred_at, id").Find(&out).Error; err != nil {
		c.t.Fatal(err)
	}
	return out
}

func TestAppPasswordLifecycle(t *testing.T) {
	c := newCluster(t)
	r := c.start()
	self, login := c.as("selfservice"), c.as("login")
	ap := r.appPasswords()

	issued, err := ap.IssueAppPassword(self, &pb.IssueAppPasswordRequest{UserId: "alice", Name: "DAVx⁵", Scope: &pb.AppPasswordScope{ReadOnly: true}})
	if err != nil {
		t.Fatal(err)
	}
	pw, p := issued.GetPassword(), issued.GetAppPassword()
	if !strings.HasPrefix(pw, apppasswords.Prefix) || len(pw) != apppasswords.Length {
		t.Fatalf("password %q is not in the app password format", pw)
	}
	if p.GetUserId() != "alice" || p.GetName() != "DAVx⁵" || !p.GetScope().GetReadOnly() || p.GetScope().GetFilesystemOnly() ||
		!p.GetCreatedAt().AsTime().Equal(c.clock.Now()) || p.GetLastUsedAt() != nil {
		t.Fatalf("issued %v", p)
	}

	c.clock.Add(time.Minute)
	got, err := ap.VerifyAppPassword(login, &pb.VerifyAppPasswordRequest{Login: "alice", Password: pw, Context: &pb.ClientContext{Ip: "203.0.113.7"}})
	if err != nil {
		t.Fatal(err)
	}
	if !got.GetValid() || got.GetUserId() != "alice" || got.GetAppPasswordId() != p.GetId() || !got.GetScope().GetReadOnly() || got.GetThrottled() {
		t.Fatalf("VerifyAppPassword = %v", got)
	}

	list, err := ap.ListAppPasswords(self, &pb.ListAppPasswordsRequest{UserId: "alice"})
	if err != nil || len(list.GetAppPasswords()) != 1 {
		t.Fatalf("ListAppPasswords = %v, %v", list, err)
	}
	if l := list.GetAppPasswords()[0]; !l.GetLastUsedAt().AsTime().Equal(c.clock.Now()) || l.GetLastClientIp() != "203.0.113.7" {
		t.Fatalf("listed %v", l)
	}

	renamed, err := ap.RenameAppPassword(self, &pb.RenameAppPasswordRequest{UserId: "alice", AppPasswordId: p.GetId(), Name: "Thunderbird"})
	if err != nil || renamed.GetAppPassword().GetName() != "Thunderbird" {
		t.Fatalf("RenameAppPassword = %v, %v", renamed, err)
	}
	if _, err := ap.RevokeAppPassword(self, &pb.RevokeAppPasswordRequest{UserId: "alice", AppPasswordId: p.GetId()}); err != nil {
		t.Fatal(err)
	}
	got, err = ap.VerifyAppPassword(login, &pb.VerifyAppPasswordRequest{Login: "alice", Password: pw})
	if err != nil || got.GetValid() || got.GetUserId() != "" || got.GetAppPasswordId() != "" {
		t.Fatalf("VerifyAppPassword after revoke = %v, %v", got, err)
	}
	_, err = ap.RevokeAppPassword(self, &pb.RevokeAppPasswordRequest{UserId: "alice", AppPasswordId: p.GetId()})
	if status.Code(err) != codes.NotFound || !strings.Contains(status.Convert(err).Message(), "app_password_id") {
		t.Fatalf("second revoke: %v, want NotFound naming app_password_id", err)
	}

	// RevokeAll, and the count it reports.
	for _, name := range []string{"one", "two"} {
		if _, err := ap.IssueAppPassword(self, &pb.IssueAppPasswordRequest{UserId: "alice", Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := ap.RevokeAllAppPasswords(self, &pb.RevokeAllAppPasswordsRequest{UserId: "alice"})
	if err != nil || all.GetRevoked() != 2 {
		t.Fatalf("RevokeAllAppPasswords = %v, %v", all, err)
	}

	// The audit trail, and no trace of the password anywhere.
	for _, ev := range []string{"apppassword.issued", "apppassword.revoked", "apppassword.rejected"} {
		if len(c.auditOf(ev)) == 0 {
			t.Errorf("no %s audit event", ev)
		}
	}
	if rej := c.auditOf("apppassword.rejected"); len(rej) != 1 || rej[0].Result != string(apppasswords.ReasonUnknown) {
		t.Errorf("rejected events %+v", rej)
	}
	secret := []byte(pw[len(apppasswords.Prefix):])
	if strings.Contains(c.logs.String(), string(secret)) {
		t.Error("the password is in the logs")
	}
	if where := storagetest.FindInTables(t, storagetest.OpenURL(t, c.url), secret); where != "" {
		t.Errorf("the password is stored in clear in %s", where)
	}
}

func TestVerifyAppPasswordRefusals(t *testing.T) {
	c := newCluster(t)
	r := c.start()
	ap := r.appPasswords()
	issued, err := ap.IssueAppPassword(c.as("selfservice"), &pb.IssueAppPasswordRequest{UserId: "alice", Name: "phone"})
	if err != nil {
		t.Fatal(err)
	}
	pw := issued.GetPassword()
	bob, _ := ap.IssueAppPassword(c.as("selfservice"), &pb.IssueAppPasswordRequest{UserId: "bob", Name: "phone"})

	refusals := []struct {
		name, login, password string
		reason                apppasswords.Reason
	}{
		{"wrong password", "alice", "tfap_0123456789abcdefghjkmnpqrs38f93sc", apppasswords.ReasonUnknown},
		{"malformed password", "alice", "hunter2", apppasswords.ReasonMalformed},
		{"mistyped password", "alice", mistype(pw), apppasswords.ReasonMalformed},
		{"unknown user", "mallory", pw, apppasswords.ReasonOtherUser},
		{"another user's password", "alice", bob.GetPassword(), apppasswords.ReasonOtherUser},
	}
	for _, rc := range refusals {
		t.Run(rc.name, func(t *testing.T) {
			before := len(c.auditOf("apppassword.rejected"))
			got, err := ap.VerifyAppPassword(c.as("login"), &pb.VerifyAppPasswordRequest{Login: rc.login, Password: rc.password,
				Context: &pb.ClientContext{Ip: "198.51.100.4"}})
			if err != nil {
				t.Fatal(err)
			}
			if got.GetValid() || got.GetUserId() != "" || got.GetAppPasswordId() != "" || got.GetScope() != nil {
				t.Fatalf("VerifyAppPassword = %v, want a bare valid=false", got)
			}
			ev := c.auditOf("apppassword.rejected")
			if len(ev) != before+1 || ev[before].Result != string(rc.reason) || ev[before].UserID != rc.login || ev[before].ClientIP != "198.51.100.4" {
				t.Fatalf("audit %+v, want one rejection for %s from 198.51.100.4 because %s", ev[before:], rc.login, rc.reason)
			}
		})
	}

	errorsCases := []struct {
		name  string
		ctx   context.Context
		req   *pb.VerifyAppPasswordRequest
		code  codes.Code
		field string
	}{
		{"empty login", c.as("login"), &pb.VerifyAppPasswordRequest{Password: pw}, codes.InvalidArgument, "login"},
		{"empty password", c.as("login"), &pb.VerifyAppPasswordRequest{Login: "alice"}, codes.InvalidArgument, "password"},
		{"huge password", c.as("login"), &pb.VerifyAppPasswordRequest{Login: "alice", Password: strings.Repeat("x", 2000)}, codes.InvalidArgument, "password"},
		{"bad ip", c.as("login"), &pb.VerifyAppPasswordRequest{Login: "alice", Password: pw, Context: &pb.ClientContext{Ip: "localhost"}}, codes.InvalidArgument, "context.ip"},
		{"no API key", context.Background(), &pb.VerifyAppPasswordRequest{Login: "alice", Password: pw}, codes.Unauthenticated, ""},
		{"selfservice key", c.as("selfservice"), &pb.VerifyAppPasswordRequest{Login: "alice", Password: pw}, codes.PermissionDenied, ""},
	}
	for _, ec := range errorsCases {
		t.Run(ec.name, func(t *testing.T) {
			_, err := ap.VerifyAppPassword(ec.ctx, ec.req)
			if status.Code(err) != ec.code || !strings.HasPrefix(status.Convert(err).Message(), ec.field) {
				t.Fatalf("err = %v, want %v naming %q", err, ec.code, ec.field)
			}
			if strings.Contains(status.Convert(err).Message(), pw) {
				t.Fatal("the error repeats the password")
			}
		})
	}
}

// mistype changes the last symbol of a password to another one.
func mistype(pw string) string {
	if pw[len(pw)-1] == 'a' {
		return pw[:len(pw)-1] + "b"
	}
	return pw[:len(pw)-1] + "a"
}

// When NATS is down a revocation still succeeds (the database and this replica
// have it); the audit record and a warning say it was not announced.
func TestRevokeSucceedsWhenAnnouncingFails(t *testing.T) {
	c := newCluster(t)
	r := c.start()
	self := c.as("selfservice")
	issued, err := r.appPasswords().IssueAppPassword(self, &pb.IssueAppPasswordRequest{UserId: "alice", Name: "sync"})
	if err != nil {
		t.Fatal(err)
	}
	r.nc.Close() // this replica loses NATS
	if _, err := r.appPasswords().RevokeAppPassword(self, &pb.RevokeAppPasswordRequest{UserId: "alice", AppPasswordId: issued.GetAppPassword().GetId()}); err != nil {
		t.Fatalf("RevokeAppPassword with NATS down: %v", err)
	}
	got, err := r.appPasswords().VerifyAppPassword(c.as("login"), &pb.VerifyAppPasswordRequest{Login: "alice", Password: issued.GetPassword()})
	if err != nil || got.GetValid() {
		t.Fatalf("VerifyAppPassword after revoke = %v, %v", got, err)
	}
	ev := c.auditOf("apppassword.revoked")
	if len(ev) != 1 || ev[0].Details["announced"] != "false" {
		t.Fatalf("audit %+v, want announced=false", ev)
	}
	if !strings.Contains(c.logs.String(), "app password revoked but not announced") {
		t.Fatal("no warning logged")
	}
}

func TestAppPasswordManagementChecks(t *testing.T) {
	c := newCluster(t)
	r := c.start()
	ap := r.appPasswords()
	self := c.as("selfservice")
	issued, err := ap.IssueAppPassword(self, &pb.IssueAppPasswordRequest{UserId: "alice", Name: "phone"})
	if err != nil {
		t.Fatal(err)
	}
	id := issued.GetAppPassword().GetId()
	cases := []struct {
		name  string
		call  func() error
		code  codes.Code
		field string
	}{
		{"issue with the login role", func() error {
			_, err := ap.IssueAppPassword(c.as("login"), &pb.IssueAppPasswordRequest{UserId: "alice", Name: "x"})
			return err
		}, codes.PermissionDenied, ""},
		{"issue without a name", func() error {
			_, err := ap.IssueAppPassword(self, &pb.IssueAppPasswordRequest{UserId: "alice"})
			return err
		}, codes.InvalidArgument, "name"},
		{"issue for no user", func() error {
			_, err := ap.IssueAppPassword(self, &pb.IssueAppPasswordRequest{Name: "x"})
			return err
		}, codes.InvalidArgument, "user_id"},
		{"issue with a control character in the name", func() error {
			_, err := ap.IssueAppPassword(self, &pb.IssueAppPasswordRequest{UserId: "alice", Name: "a\x1bb"})
			return err
		}, codes.InvalidArgument, "name"},
		{"rename another user's", func() error {
			_, err := ap.RenameAppPassword(self, &pb.RenameAppPasswordRequest{UserId: "bob", AppPasswordId: id, Name: "x"})
			return err
		}, codes.NotFound, "app_password_id"},
		{"rename with a bad id", func() error {
			_, err := ap.RenameAppPassword(self, &pb.RenameAppPasswordRequest{UserId: "alice", AppPasswordId: "nope", Name: "x"})
			return err
		}, codes.InvalidArgument, "app_password_id"},
		{"revoke another user's", func() error {
			_, err := ap.RevokeAppPassword(self, &pb.RevokeAppPasswordRequest{UserId: "bob", AppPasswordId: id})
			return err
		}, codes.NotFound, "app_password_id"},
		{"list for no user", func() error {
			_, err := ap.ListAppPasswords(self, &pb.ListAppPasswordsRequest{})
			return err
		}, codes.InvalidArgument, "user_id"},
		{"list with the login role", func() error {
			_, err := ap.ListAppPasswords(c.as("login"), &pb.ListAppPasswordsRequest{UserId: "alice"})
			return err
		}, codes.PermissionDenied, ""},
		{"revoke all with the login role", func() error {
			_, err := ap.RevokeAllAppPasswords(c.as("login"), &pb.RevokeAllAppPasswordsRequest{UserId: "alice"})
			return err
		}, codes.PermissionDenied, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if status.Code(err) != tc.code || !strings.HasPrefix(status.Convert(err).Message(), tc.field) {
				t.Fatalf("err = %v, want %v naming %q", err, tc.code, tc.field)
			}
		})
	}
	// Nothing above touched alice's password.
	if l, _ := ap.ListAppPasswords(self, &pb.ListAppPasswordsRequest{UserId: "alice"}); len(l.GetAppPasswords()) != 1 || l.GetAppPasswords()[0].GetName() != "phone" {
		t.Fatalf("alice's app passwords changed: %v", l)
	}
	// The per-user bound is FailedPrecondition naming user_id and the bound.
	for i := 1; ; i++ {
		_, err := ap.IssueAppPassword(self, &pb.IssueAppPasswordRequest{UserId: "carol", Name: "n"})
		if err == nil {
			continue
		}
		want := fmt.Sprintf("user_id: too many app passwords: the user has %d app passwords, the most allowed is %d; revoke one first",
			apppasswords.DefaultMaxPerUser, apppasswords.DefaultMaxPerUser)
		if status.Code(err) != codes.FailedPrecondition || status.Convert(err).Message() != want || i != apppasswords.DefaultMaxPerUser+1 {
			t.Fatalf("issue %d: %v, want FailedPrecondition %q after %d", i, err, want, apppasswords.DefaultMaxPerUser)
		}
		break
	}
}

// The issue's acceptance test: issue → verify → revoke → verify fails on a second
// replica, through real gRPC, a shared database and NATS, wired as authd wires them
// (the replicas' own revocation subscriptions). The issue asked for "within a
// second"; B refuses as soon as the RPC returned (the shared revocation counter),
// and the announcement reaches B's connection too. No wall-clock bound is asserted
// (a loaded CI machine can take a second over the RPC alone); the wait for the
// announcement is bounded only to fail instead of hanging.
func TestRevokedAppPasswordRefusedOnOtherReplicaWithinASecond(t *testing.T) {
	c := newCluster(t)
	a, b := c.start(), c.start()
	issued, err := a.appPasswords().IssueAppPassword(c.as("selfservice"), &pb.IssueAppPasswordRequest{UserId: "alice", Name: "sync"})
	if err != nil {
		t.Fatal(err)
	}
	verifyOn := func(r *replica) bool {
		t.Helper()
		got, err := r.appPasswords().VerifyAppPassword(c.as("login"), &pb.VerifyAppPasswordRequest{Login: "alice", Password: issued.GetPassword()})
		if err != nil {
			t.Fatal(err)
		}
		return got.GetValid()
	}
	for i := 0; i < 3; i++ { // B caches it
		if !verifyOn(b) {
			t.Fatal("B refused a fresh app password")
		}
	}
	// Listen on B's connection too, to know when the announcement reached it.
	heard := make(chan string, 1)
	unsub, err := notify.NewPublisher(c.js, b.nc, c.names).SubscribeRevoked(func(id string) { heard <- id })
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()

	if _, err := a.appPasswords().RevokeAppPassword(c.as("selfservice"), &pb.RevokeAppPasswordRequest{UserId: "alice", AppPasswordId: issued.GetAppPassword().GetId()}); err != nil {
		t.Fatal(err)
	}
	if verifyOn(a) {
		t.Fatal("A accepted the password it revoked")
	}
	if verifyOn(b) {
		t.Fatal("B accepted the revoked app password after the revocation returned")
	}
	const limit = 10 * time.Second // a failure bound, not a measure
	select {
	case id := <-heard:
		if id != issued.GetAppPassword().GetId() {
			t.Fatalf("B's connection heard %s revoked", id)
		}
	case <-time.After(limit):
		t.Fatalf("no revocation reached B's connection within %v", limit)
	}
}
