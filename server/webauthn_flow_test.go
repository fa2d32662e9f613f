package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/webauthn"
	"github.com/twofactor/twofactor/providers/webauthn/softauthn"
)

const (
	waOrigin = "https://login.example.com"
	waAppID  = "https://login.example.com"
)

var testWebAuthnConfig = webauthn.Config{
	RPID:          "login.example.com",
	RPDisplayName: "Example",
	RPOrigins:     []string{waOrigin, "android:apk-key-hash:2jmj7l5rSw0yVb_vlWAYkK_YBwk"},
}

// testWebAuthnPolicy is the policy the replicas of a cluster share; tests change it.
type testWebAuthnPolicy struct {
	mu sync.Mutex
	p  webauthn.Policy
}

func (p *testWebAuthnPolicy) WebAuthnPolicy(context.Context) (webauthn.Policy, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.p, nil
}

func (p *testWebAuthnPolicy) set(v webauthn.Policy) { p.mu.Lock(); p.p = v; p.mu.Unlock() }

func newSoftAuthn(t *testing.T, o softauthn.Options) *softauthn.Authenticator {
	t.Helper()
	a, err := softauthn.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// waEnroll registers a key for user: begun on r1, finished on r2.
func waEnroll(t *testing.T, c *cluster, r1, r2 *replica, user, name string, a *softauthn.Authenticator, discoverable bool) *pb.Factor {
	t.Helper()
	ctx := c.as("selfservice")
	begin, err := r1.enrollment().BeginEnrollment(ctx, &pb.BeginEnrollmentRequest{
		UserId: user, Method: pb.Method_METHOD_WEBAUTHN, Name: name,
		Options: &pb.BeginEnrollmentRequest_Webauthn{Webauthn: &pb.WebAuthnEnrollmentOptions{
			UserName: user + "@example.com", DisplayName: strings.ToUpper(user), Discoverable: discoverable,
		}},
	})
	if err != nil {
		t.Fatalf("BeginEnrollment: %v", err)
	}
	resp, _, err := a.Register([]byte(begin.GetWebauthn().GetCreationOptionsJson()), waOrigin)
	if err != nil {
		t.Fatalf("authenticator Register: %v", err)
	}
	fin, err := r2.enrollment().FinishEnrollment(ctx, &pb.FinishEnrollmentRequest{
		UserId: user, FactorId: begin.GetFactorId(),
		Proof: &pb.FinishEnrollmentRequest_WebauthnAttestationJson{WebauthnAttestationJson: string(resp)},
	})
	if err != nil {
		t.Fatalf("FinishEnrollment: %v", err)
	}
	if fin.GetFactor().GetState() != pb.FactorState_FACTOR_STATE_ACTIVE || fin.GetFactor().GetId() != begin.GetFactorId() {
		t.Fatalf("enrolled factor = %v", fin.GetFactor())
	}
	return fin.GetFactor()
}

func waBegin(t *testing.T, c *cluster, r *replica, user string) (id string, options []byte) {
	t.Helper()
	resp, err := r.challenges().BeginChallenge(c.as("login"), &pb.BeginChallengeRequest{
		UserId: user, Method: pb.Method_METHOD_WEBAUTHN, Context: &pb.ClientContext{Ip: "198.51.100.9", UserAgent: "test"},
	})
	if err != nil {
		t.Fatalf("BeginChallenge: %v", err)
	}
	if resp.GetWebauthnRequestOptionsJson() == "" {
		t.Fatal("BeginChallenge returned no request options")
	}
	return resp.GetChallengeId(), []byte(resp.GetWebauthnRequestOptionsJson())
}

func waVerify(t *testing.T, c *cluster, r *replica, id string, assertion []byte) *pb.VerifyChallengeResponse {
	t.Helper()
	resp, err := r.challenges().VerifyChallenge(c.as("login"), &pb.VerifyChallengeRequest{
		ChallengeId: id, Response: &pb.VerifyChallengeRequest_WebauthnAssertionJson{WebauthnAssertionJson: string(assertion)},
	})
	if err != nil {
		t.Fatalf("VerifyChallenge: %v", err)
	}
	return resp
}

func assertWith(t *testing.T, a *softauthn.Authenticator, options []byte, o softauthn.AssertOptions) []byte {
	t.Helper()
	resp, err := a.Assert(options, waOrigin, o)
	if err != nil {
		t.Fatalf("authenticator Assert: %v", err)
	}
	return resp
}

func listFactor(t *testing.T, c *cluster, r *replica, user, id string) *pb.Factor {
	t.Helper()
	list, err := r.enrollment().ListFactors(c.as("selfservice"), &pb.ListFactorsRequest{UserId: user})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range list.GetFactors() {
		if f.GetId() == id {
			return f
		}
	}
	t.Fatalf("factor %s not listed", id)
	return nil
}

// TestWebAuthnEnrollAndLoginAcrossReplicas: every key type registers and logs in,
// each ceremony begun on one replica and finished on the other.
func TestWebAuthnEnrollAndLoginAcrossReplicas(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts softauthn.Options
		alg  int32
	}{
		{"ES256 none", softauthn.Options{Algorithm: softauthn.ES256, Attestation: softauthn.AttestationNone}, -7},
		{"ES256 packed", softauthn.Options{Algorithm: softauthn.ES256, Attestation: softauthn.AttestationPacked}, -7},
		{"EdDSA none", softauthn.Options{Algorithm: softauthn.EdDSA, Attestation: softauthn.AttestationNone}, -8},
		{"EdDSA packed", softauthn.Options{Algorithm: softauthn.EdDSA, Attestation: softauthn.AttestationPacked, BackupEligible: true, BackedUp: true}, -8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t)
			a, b := c.start(), c.start()
			key := newSoftAuthn(t, tc.opts)
			f := waEnroll(t, c, a, b, "alice", "YubiKey", key, false)
			d := f.GetWebauthn()
			if d.GetAlgorithm() != tc.alg || d.GetAttestationFormat() != tc.opts.Attestation || d.GetSignCount() != 0 ||
				d.GetBackupEligible() != tc.opts.BackupEligible || d.GetBackedUp() != tc.opts.BackedUp ||
				d.GetCredentialId() != base64.RawURLEncoding.EncodeToString(key.Credentials()[0].ID) ||
				strings.Join(d.GetTransports(), ",") != "usb" || f.GetName() != "YubiKey" || f.GetMethod() != pb.Method_METHOD_WEBAUTHN {
				t.Fatalf("enrolled factor = %v", f)
			}
			for i, pair := range [][2]*replica{{a, b}, {b, a}, {a, a}} {
				id, opts := waBegin(t, c, pair[0], "alice")
				got := waVerify(t, c, pair[1], id, assertWith(t, key, opts, softauthn.AssertOptions{}))
				if got.GetResult() != pb.VerifyResult_VERIFY_RESULT_ACCEPTED || got.GetUserId() != "alice" || got.GetFactorId() != f.GetId() ||
					got.GetMethod() != pb.Method_METHOD_WEBAUTHN || got.GetCompleteLogin() {
					t.Fatalf("login %d: %v", i, got)
				}
			}
			if n := listFactor(t, c, b, "alice", f.GetId()).GetWebauthn().GetSignCount(); n != 3 {
				t.Fatalf("sign count after 3 logins = %d", n)
			}
		})
	}
}

// TestWebAuthnSeveralKeysRenameRemove: a second key, the first one excluded from
// its registration; both log in; rename and remove.
func TestWebAuthnSeveralKeysRenameRemove(t *testing.T) {
	c := newCluster(t)
	r := c.start()
	self := c.as("selfservice")
	k1, k2 := newSoftAuthn(t, softauthn.Options{}), newSoftAuthn(t, softauthn.Options{Algorithm: softauthn.EdDSA})
	f1 := waEnroll(t, c, r, r, "bob", "Key one", k1, false)

	// Enrolling k1 again is refused by the authenticator: the options exclude it.
	begin, err := r.enrollment().BeginEnrollment(self, &pb.BeginEnrollmentRequest{UserId: "bob", Method: pb.Method_METHOD_WEBAUTHN})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := k1.Register([]byte(begin.GetWebauthn().GetCreationOptionsJson()), waOrigin); err != softauthn.ErrExcluded {
		t.Fatalf("registering the same key twice: %v, want the authenticator to see it excluded", err)
	}
	f2 := waEnroll(t, c, r, r, "bob", "Key two", k2, false)

	for _, k := range []struct {
		a *softauthn.Authenticator
		f *pb.Factor
	}{{k1, f1}, {k2, f2}} {
		id, opts := waBegin(t, c, r, "bob")
		if got := waVerify(t, c, r, id, assertWith(t, k.a, opts, softauthn.AssertOptions{})); got.GetResult() != pb.VerifyResult_VERIFY_RESULT_ACCEPTED || got.GetFactorId() != k.f.GetId() {
			t.Fatalf("login with %s: %v", k.f.GetName(), got)
		}
	}
	if _, err := r.enrollment().RenameFactor(self, &pb.RenameFactorRequest{UserId: "bob", FactorId: f2.GetId(), Name: "Backup key"}); err != nil {
		t.Fatal(err)
	}
	if n := listFactor(t, c, r, "bob", f2.GetId()).GetName(); n != "Backup key" {
		t.Fatalf("renamed to %q", n)
	}
	if _, err := r.enrollment().RemoveFactor(self, &pb.RemoveFactorRequest{UserId: "bob", FactorId: f1.GetId()}); err != nil {
		t.Fatal(err)
	}
	id, opts := waBegin(t, c, r, "bob")
	if strings.Contains(string(opts), base64.RawURLEncoding.EncodeToString(k1.Credentials()[0].ID)) {
		t.Fatal("a removed key is still in allowCredentials")
	}
	if _, err := k1.Assert(opts, waOrigin, softauthn.AssertOptions{}); err != softauthn.ErrNoCredential {
		t.Fatalf("removed key answered: %v", err)
	}
	got := waVerify(t, c, r, id, assertWith(t, k1, opts, softauthn.AssertOptions{CredentialID: k1.Credentials()[0].ID}))
	if got.GetResult() != pb.VerifyResult_VERIFY_RESULT_REJECTED || got.GetReason() != pb.RejectReason_REJECT_REASON_UNKNOWN_CREDENTIAL {
		t.Fatalf("removed key forced into the login: %v", got)
	}
}

// TestWebAuthnRefusals hands the service assertions it must refuse, one fault each,
// begun on one replica and answered on the other.
func TestWebAuthnRefusals(t *testing.T) {
	no := false
	zero := uint32(0)
	for _, tc := range []struct {
		name      string
		requireUV bool
		answer    func(t *testing.T, mine, foreign *softauthn.Authenticator, opts []byte) []byte
		want      pb.RejectReason
	}{
		{"wrong origin", false, func(t *testing.T, mine, _ *softauthn.Authenticator, opts []byte) []byte {
			return assertWith(t, mine, opts, softauthn.AssertOptions{Origin: "https://login.example.com.evil.test"})
		}, pb.RejectReason_REJECT_REASON_INVALID_ASSERTION},
		{"app origin not configured", false, func(t *testing.T, mine, _ *softauthn.Authenticator, opts []byte) []byte {
			return assertWith(t, mine, opts, softauthn.AssertOptions{Origin: "android:apk-key-hash:someoneelse"})
		}, pb.RejectReason_REJECT_REASON_INVALID_ASSERTION},
		{"wrong RP ID", false, func(t *testing.T, mine, _ *softauthn.Authenticator, opts []byte) []byte {
			return assertWith(t, mine, opts, softauthn.AssertOptions{RPID: "evil.test"})
		}, pb.RejectReason_REJECT_REASON_INVALID_ASSERTION},
		{"foreign credential", false, func(t *testing.T, _, foreign *softauthn.Authenticator, opts []byte) []byte {
			return assertWith(t, foreign, opts, softauthn.AssertOptions{CredentialID: foreign.Credentials()[0].ID})
		}, pb.RejectReason_REJECT_REASON_UNKNOWN_CREDENTIAL},
		{"missing UV when required", true, func(t *testing.T, mine, _ *softauthn.Authenticator, opts []byte) []byte {
			return assertWith(t, mine, opts, softauthn.AssertOptions{UV: &no})
		}, pb.RejectReason_REJECT_REASON_USER_VERIFICATION_REQUIRED},
		{"regressed counter", false, func(t *testing.T, mine, _ *softauthn.Authenticator, opts []byte) []byte {
			return assertWith(t, mine, opts, softauthn.AssertOptions{SignCount: &zero})
		}, pb.RejectReason_REJECT_REASON_CLONED_AUTHENTICATOR},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t)
			a, b := c.start(), c.start()
			mine, foreign := newSoftAuthn(t, softauthn.Options{}), newSoftAuthn(t, softauthn.Options{})
			f := waEnroll(t, c, a, b, "carol", "", mine, false)
			waEnroll(t, c, a, b, "mallory", "", foreign, false)
			// One good login, so the counter is above zero.
			id, opts := waBegin(t, c, a, "carol")
			if got := waVerify(t, c, b, id, assertWith(t, mine, opts, softauthn.AssertOptions{})); got.GetResult() != pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
				t.Fatalf("good login: %v", got)
			}
			c.waPolicy.set(webauthn.Policy{RequireUserVerification: tc.requireUV})

			id, opts = waBegin(t, c, a, "carol")
			got := waVerify(t, c, b, id, tc.answer(t, mine, foreign, opts))
			if got.GetResult() != pb.VerifyResult_VERIFY_RESULT_REJECTED || got.GetReason() != tc.want || got.GetUserId() != "carol" || got.GetRemainingAttempts() != 4 {
				t.Fatalf("got %v, want REJECTED %v for carol with 4 attempts left", got, tc.want)
			}

			if tc.want == pb.RejectReason_REJECT_REASON_CLONED_AUTHENTICATOR {
				if !strings.Contains(c.logs.String(), `"event":"webauthn.counter_regressed"`) {
					t.Fatal("no webauthn.counter_regressed audit record")
				}
				if d := listFactor(t, c, a, "carol", f.GetId()).GetWebauthn(); !d.GetCloneWarning() || d.GetSignCount() != 1 {
					t.Fatalf("factor after the regression: %v", d)
				}
				// The key stays refused, even with a growing counter.
				id, opts = waBegin(t, c, b, "carol")
				if got := waVerify(t, c, a, id, assertWith(t, mine, opts, softauthn.AssertOptions{})); got.GetReason() != pb.RejectReason_REJECT_REASON_CLONED_AUTHENTICATOR {
					t.Fatalf("login after the clone warning: %v", got)
				}
			}
		})
	}
}

// TestWebAuthnReplay: an accepted assertion sent again to its own challenge finds it
// used (EXPIRED), and sent to a fresh challenge fails the challenge check.
func TestWebAuthnReplay(t *testing.T) {
	c := newCluster(t)
	a, b := c.start(), c.start()
	key := newSoftAuthn(t, softauthn.Options{})
	waEnroll(t, c, a, b, "dave", "", key, false)
	id, opts := waBegin(t, c, a, "dave")
	assertion := assertWith(t, key, opts, softauthn.AssertOptions{})
	if got := waVerify(t, c, b, id, assertion); got.GetResult() != pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
		t.Fatalf("first use: %v", got)
	}
	for _, r := range []*replica{a, b} {
		if got := waVerify(t, c, r, id, assertion); got.GetResult() != pb.VerifyResult_VERIFY_RESULT_EXPIRED {
			t.Fatalf("replay on the used challenge: %v", got)
		}
	}
	fresh, _ := waBegin(t, c, a, "dave")
	if got := waVerify(t, c, b, fresh, assertion); got.GetResult() != pb.VerifyResult_VERIFY_RESULT_REJECTED || got.GetReason() != pb.RejectReason_REJECT_REASON_INVALID_ASSERTION {
		t.Fatalf("replay on a fresh challenge: %v", got)
	}

	// Concurrent copies of one assertion on both replicas: exactly one is accepted.
	id, opts = waBegin(t, c, a, "dave")
	assertion = assertWith(t, key, opts, softauthn.AssertOptions{})
	results := make([]*pb.VerifyChallengeResponse, 10)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			resp, err := []*replica{a, b}[i%2].challenges().VerifyChallenge(c.as("login"), &pb.VerifyChallengeRequest{
				ChallengeId: id, Response: &pb.VerifyChallengeRequest_WebauthnAssertionJson{WebauthnAssertionJson: string(assertion)},
			})
			if err != nil {
				t.Error(err)
			}
			results[i] = resp
		}(i)
	}
	wg.Wait()
	accepted := 0
	for _, r := range results {
		if r.GetResult() == pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
			accepted++
		} else if r.GetResult() != pb.VerifyResult_VERIFY_RESULT_EXPIRED {
			t.Errorf("a concurrent copy got %v, want EXPIRED", r)
		}
	}
	if accepted != 1 {
		t.Fatalf("%d concurrent copies accepted, want 1", accepted)
	}
	if strings.Contains(c.logs.String(), "webauthn.counter_regressed") {
		t.Fatal("a double submit was taken for a cloned key")
	}
}

// TestWebAuthnPasskeyLogin: a discoverable credential logs in without a user id; the
// policy decides whether it is a complete login.
func TestWebAuthnPasskeyLogin(t *testing.T) {
	c := newCluster(t)
	a, b := c.start(), c.start()
	pk := newSoftAuthn(t, softauthn.Options{Discoverable: true, UV: true, BackupEligible: true, BackedUp: true, Attachment: "platform", Transports: []string{"internal", "hybrid"}})
	f := waEnroll(t, c, a, b, "erin", "Phone", pk, true)
	if d := f.GetWebauthn(); !d.GetDiscoverable() || !d.GetBackedUp() {
		t.Fatalf("passkey details = %v", d)
	}
	nopin := newSoftAuthn(t, softauthn.Options{Discoverable: true})
	fn := waEnroll(t, c, a, b, "frank", "Key", nopin, true)

	begin := func(r *replica) (string, []byte) {
		resp, err := r.challenges().BeginChallenge(c.as("login"), &pb.BeginChallengeRequest{Method: pb.Method_METHOD_WEBAUTHN})
		if err != nil {
			t.Fatalf("BeginChallenge without user: %v", err)
		}
		if strings.Contains(resp.GetWebauthnRequestOptionsJson(), "allowCredentials") {
			t.Fatalf("a passkey login names credentials: %s", resp.GetWebauthnRequestOptionsJson())
		}
		return resp.GetChallengeId(), []byte(resp.GetWebauthnRequestOptionsJson())
	}
	for _, complete := range []bool{false, true} {
		c.waPolicy.set(webauthn.Policy{PasskeyCompleteLogin: complete})
		id, opts := begin(a)
		got := waVerify(t, c, b, id, assertWith(t, pk, opts, softauthn.AssertOptions{}))
		if got.GetResult() != pb.VerifyResult_VERIFY_RESULT_ACCEPTED || got.GetUserId() != "erin" || got.GetFactorId() != f.GetId() || got.GetCompleteLogin() != complete {
			t.Fatalf("passkey login (complete login policy %v): %v", complete, got)
		}
		// Without user verification a passkey is only a second factor.
		id, opts = begin(b)
		got = waVerify(t, c, a, id, assertWith(t, nopin, opts, softauthn.AssertOptions{}))
		if got.GetResult() != pb.VerifyResult_VERIFY_RESULT_ACCEPTED || got.GetUserId() != "frank" || got.GetFactorId() != fn.GetId() || got.GetCompleteLogin() {
			t.Fatalf("passkey without UV: %v", got)
		}
	}
	// An unknown credential on a passkey login names no user.
	stranger := newSoftAuthn(t, softauthn.Options{Discoverable: true})
	waEnroll(t, c, a, a, "gina", "", stranger, true)
	if _, err := a.enrollment().RemoveFactor(c.as("selfservice"), &pb.RemoveFactorRequest{UserId: "gina", FactorId: listOnly(t, c, a, "gina")}); err != nil {
		t.Fatal(err)
	}
	id, opts := begin(a)
	got := waVerify(t, c, b, id, assertWith(t, stranger, opts, softauthn.AssertOptions{}))
	if got.GetResult() != pb.VerifyResult_VERIFY_RESULT_REJECTED || got.GetReason() != pb.RejectReason_REJECT_REASON_UNKNOWN_CREDENTIAL || got.GetUserId() != "" {
		t.Fatalf("removed passkey: %v", got)
	}
}

func listOnly(t *testing.T, c *cluster, r *replica, user string) string {
	t.Helper()
	list, err := r.enrollment().ListFactors(c.as("selfservice"), &pb.ListFactorsRequest{UserId: user})
	if err != nil || len(list.GetFactors()) != 1 {
		t.Fatalf("factors of %s: %v, %v", user, list, err)
	}
	return list.GetFactors()[0].GetId()
}

// TestU2FImportAndAppIDLogin: a legacy U2F registration imported through the admin
// API logs in through the appid extension, on either replica.
func TestU2FImportAndAppIDLogin(t *testing.T) {
	c := newCluster(t)
	a, b := c.start(), c.start()
	k, err := softauthn.NewU2F(waAppID, nil)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	if _, err := a.admin().SetUserGroups(c.as("admin"), &pb.SetUserGroupsRequest{UserId: "admin-1", Groups: []string{"admin"}}); err != nil {
		t.Fatal(err)
	}
	req := &pb.ImportU2FRegistrationRequest{
		ActorId: "admin-1", UserId: "henry", AppId: waAppID, KeyHandle: b64(k.KeyHandle),
		PublicKey: base64.URLEncoding.EncodeToString(k.PublicKeyRaw), // padded, as some U2F libraries stored it
		Counter:   0, Name: "Old key",
	}
	// Only an admin, or an admin of one of the user's groups, may import keys for a user.
	stranger := proto.Clone(req).(*pb.ImportU2FRegistrationRequest)
	stranger.ActorId = "mallory"
	if _, err := a.admin().ImportU2FRegistration(c.as("admin"), stranger); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("import by a non-admin actor: %v, want PermissionDenied", err)
	}
	imp, err := a.admin().ImportU2FRegistration(c.as("admin"), req)
	if err != nil {
		t.Fatalf("ImportU2FRegistration: %v", err)
	}
	d := imp.GetFactor().GetWebauthn()
	if !d.GetLegacyU2F() || d.GetAttestationFormat() != "fido-u2f" || d.GetAlgorithm() != -7 || imp.GetFactor().GetState() != pb.FactorState_FACTOR_STATE_ACTIVE {
		t.Fatalf("imported factor = %v", imp.GetFactor())
	}
	if !strings.Contains(c.logs.String(), `"event":"factor.enrolled"`) || !strings.Contains(c.logs.String(), `"actor":"admin-1"`) {
		t.Fatal("the import left no factor.enrolled audit record naming the actor")
	}
	for i, pair := range [][2]*replica{{a, b}, {b, a}} {
		id, opts := waBegin(t, c, pair[0], "henry")
		if !strings.Contains(string(opts), `"appid":"`+waAppID+`"`) {
			t.Fatalf("request options lack the appid extension: %s", opts)
		}
		resp, err := k.AssertAppID(opts, waOrigin)
		if err != nil {
			t.Fatal(err)
		}
		if got := waVerify(t, c, pair[1], id, resp); got.GetResult() != pb.VerifyResult_VERIFY_RESULT_ACCEPTED || got.GetFactorId() != imp.GetFactor().GetId() {
			t.Fatalf("U2F login %d: %v", i, got)
		}
	}

	// Importing the same key again, and malformed requests, are refused naming the field.
	if _, err := b.admin().ImportU2FRegistration(c.as("admin"), req); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("second import: %v", err)
	}
	bad := bytes.Clone(k.PublicKeyRaw)
	bad[0] = 0x02
	for _, tc := range []struct {
		name  string
		edit  func(r *pb.ImportU2FRegistrationRequest)
		field string
	}{
		{"no actor", func(r *pb.ImportU2FRegistrationRequest) { r.ActorId = "" }, "actor_id"},
		{"no user", func(r *pb.ImportU2FRegistrationRequest) { r.UserId = "" }, "user_id"},
		{"no app id", func(r *pb.ImportU2FRegistrationRequest) { r.AppId = "" }, "app_id"},
		{"ftp app id", func(r *pb.ImportU2FRegistrationRequest) { r.AppId = "ftp://example.com" }, "app_id"},
		{"handle not base64", func(r *pb.ImportU2FRegistrationRequest) { r.KeyHandle = "not base64!" }, "key_handle"},
		{"handle too long", func(r *pb.ImportU2FRegistrationRequest) { r.KeyHandle = b64(make([]byte, 300)) }, "key_handle"},
		{"compressed key", func(r *pb.ImportU2FRegistrationRequest) { r.PublicKey = b64(bad) }, "public_key"},
		{"short key", func(r *pb.ImportU2FRegistrationRequest) { r.PublicKey = b64(k.PublicKeyRaw[:64]) }, "public_key"},
	} {
		r := &pb.ImportU2FRegistrationRequest{ActorId: "admin-1", UserId: "ivy", AppId: waAppID, KeyHandle: b64([]byte("another handle")), PublicKey: b64(k.PublicKeyRaw)}
		tc.edit(r)
		_, err := a.admin().ImportU2FRegistration(c.as("admin"), r)
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), tc.field+":") {
			t.Errorf("%s: %v %q, want InvalidArgument naming %s", tc.name, st.Code(), st.Message(), tc.field)
		}
	}
	if _, err := a.admin().ImportU2FRegistration(c.as("selfservice"), req); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("import with a selfservice key: %v", err)
	}
}

// TestWebAuthnMalformedInput: bad JSON is InvalidArgument naming the field and costs
// no attempt; an expired enrollment and a challenge past its lifetime are refused.
func TestWebAuthnMalformedInput(t *testing.T) {
	c := newCluster(t)
	r := c.start()
	key := newSoftAuthn(t, softauthn.Options{})
	waEnroll(t, c, r, r, "jack", "", key, false)
	id, opts := waBegin(t, c, r, "jack")
	for _, body := range []string{"{", `{"id":"x"}`, `"assertion"`} {
		_, err := r.challenges().VerifyChallenge(c.as("login"), &pb.VerifyChallengeRequest{
			ChallengeId: id, Response: &pb.VerifyChallengeRequest_WebauthnAssertionJson{WebauthnAssertionJson: body},
		})
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), "webauthn_assertion_json:") {
			t.Errorf("assertion %q: %v %q", body, st.Code(), st.Message())
		}
	}
	_, err := r.challenges().VerifyChallenge(c.as("login"), &pb.VerifyChallengeRequest{ChallengeId: id, Response: &pb.VerifyChallengeRequest_Code{Code: "123456"}})
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), "webauthn_assertion_json:") {
		t.Errorf("a code for a WebAuthn challenge: %v", err)
	}
	if got := waVerify(t, c, r, id, assertWith(t, key, opts, softauthn.AssertOptions{})); got.GetResult() != pb.VerifyResult_VERIFY_RESULT_ACCEPTED || got.GetRemainingAttempts() != 5 {
		t.Fatalf("after malformed answers: %v", got)
	}

	self := c.as("selfservice")
	begin, err := r.enrollment().BeginEnrollment(self, &pb.BeginEnrollmentRequest{UserId: "jack", Method: pb.Method_METHOD_WEBAUTHN})
	if err != nil {
		t.Fatal(err)
	}
	fin := func(proof string) error {
		_, err := r.enrollment().FinishEnrollment(self, &pb.FinishEnrollmentRequest{UserId: "jack", FactorId: begin.GetFactorId(),
			Proof: &pb.FinishEnrollmentRequest_WebauthnAttestationJson{WebauthnAttestationJson: proof}})
		return err
	}
	if st := status.Convert(fin("{}")); st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), "webauthn_attestation_json:") {
		t.Fatalf("malformed attestation: %v", st)
	}
	other := newSoftAuthn(t, softauthn.Options{})
	resp, _, err := other.Register([]byte(begin.GetWebauthn().GetCreationOptionsJson()), waOrigin)
	if err != nil {
		t.Fatal(err)
	}
	c.clock.Add(6 * time.Minute)
	if st := status.Convert(fin(string(resp))); st.Code() != codes.FailedPrecondition {
		t.Fatalf("finish after the timeout: %v", st)
	}
	if _, err := r.challenges().BeginChallenge(c.as("login"), &pb.BeginChallengeRequest{UserId: "nobody", Method: pb.Method_METHOD_WEBAUTHN}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("user without keys: %v", err)
	}
	id, opts = waBegin(t, c, r, "jack")
	c.clock.Add(6 * time.Minute)
	if got := waVerify(t, c, r, id, assertWith(t, key, opts, softauthn.AssertOptions{})); got.GetResult() != pb.VerifyResult_VERIFY_RESULT_EXPIRED {
		t.Fatalf("answer after the challenge's lifetime: %v", got)
	}
}

// TestWebAuthnFollowsStoredPolicy: what an admin sets with SetPolicy on one replica
// decides WebAuthn logins on the other, as authd wires it (server.WebAuthnPolicy):
// user verification required, and a passkey as a complete login.
func TestWebAuthnFollowsStoredPolicy(t *testing.T) {
	c := newCluster(t)
	c.storedPolicy = true
	a, b := c.start(), c.start()
	directory(t, c, a)
	nouv := newSoftAuthn(t, softauthn.Options{})
	waEnroll(t, c, a, b, "carol", "", nouv, false)
	pk := newSoftAuthn(t, softauthn.Options{Discoverable: true, UV: true})
	f := waEnroll(t, c, a, b, "erin", "Phone", pk, true)
	passkey := func(r1, r2 *replica) *pb.VerifyChallengeResponse {
		t.Helper()
		resp, err := r1.challenges().BeginChallenge(c.as("login"), &pb.BeginChallengeRequest{Method: pb.Method_METHOD_WEBAUTHN})
		if err != nil {
			t.Fatalf("BeginChallenge without user: %v", err)
		}
		return waVerify(t, c, r2, resp.GetChallengeId(), assertWith(t, pk, []byte(resp.GetWebauthnRequestOptionsJson()), softauthn.AssertOptions{}))
	}

	// The default policy: no user verification required, a passkey is a second factor.
	id, opts := waBegin(t, c, a, "carol")
	if got := waVerify(t, c, b, id, assertWith(t, nouv, opts, softauthn.AssertOptions{})); got.GetResult() != pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
		t.Fatalf("login without UV under the default policy: %v", got)
	}
	if got := passkey(a, b); got.GetResult() != pb.VerifyResult_VERIFY_RESULT_ACCEPTED || got.GetUserId() != "erin" || got.GetFactorId() != f.GetId() || got.GetCompleteLogin() {
		t.Fatalf("passkey login under the default policy: %v", got)
	}

	for _, tc := range []struct {
		name     string
		policy   *pb.Policy
		uvReason pb.RejectReason // for carol's key without UV
		complete bool            // erin's passkey
	}{
		{"user verification required", &pb.Policy{WebauthnRequireUserVerification: true}, pb.RejectReason_REJECT_REASON_USER_VERIFICATION_REQUIRED, false},
		{"passkey completes the login", &pb.Policy{PasskeyCompleteLogin: true}, pb.RejectReason_REJECT_REASON_UNSPECIFIED, true},
	} {
		if _, err := a.admin().SetPolicy(c.as("admin"), &pb.SetPolicyRequest{ActorId: "root", Policy: tc.policy}); err != nil {
			t.Fatalf("%s: SetPolicy: %v", tc.name, err)
		}
		id, opts := waBegin(t, c, b, "carol")
		got := waVerify(t, c, b, id, assertWith(t, nouv, opts, softauthn.AssertOptions{}))
		if tc.uvReason != pb.RejectReason_REJECT_REASON_UNSPECIFIED {
			if got.GetResult() != pb.VerifyResult_VERIFY_RESULT_REJECTED || got.GetReason() != tc.uvReason {
				t.Fatalf("%s: login without UV: %v, want REJECTED %v", tc.name, got, tc.uvReason)
			}
		} else if got.GetResult() != pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
			t.Fatalf("%s: login without UV: %v", tc.name, got)
		}
		if got := passkey(b, a); got.GetResult() != pb.VerifyResult_VERIFY_RESULT_ACCEPTED || got.GetCompleteLogin() != tc.complete {
			t.Fatalf("%s: passkey login: %v, want complete_login %v", tc.name, got, tc.complete)
		}
	}
}

// A group rule forbidding WebAuthn holds for a passkey login begun without a
// user too: BeginChallenge cannot apply it (no user yet), so the user the
// credential names is checked before the answer counts. Without that, a
// contractor whose group may not use WebAuthn signs in with the passkey they
// enrolled before the rule by leaving user_id out.
func TestWebAuthnPasskeyLoginFollowsGroupRules(t *testing.T) {
	c := newCluster(t)
	a, b := c.start(), c.start()
	directory(t, c, a)
	contractor := newSoftAuthn(t, softauthn.Options{Discoverable: true, UV: true})
	waEnroll(t, c, a, b, "frank", "Phone", contractor, true) // eng, contractors
	engineer := newSoftAuthn(t, softauthn.Options{Discoverable: true, UV: true})
	waEnroll(t, c, a, b, "alice", "Phone", engineer, true) // eng
	rules := []*pb.GroupMethodRule{{Group: "contractors", ForbiddenMethods: []pb.Method{pb.Method_METHOD_WEBAUTHN}}}
	if _, err := a.admin().SetPolicy(c.as("admin"), &pb.SetPolicyRequest{ActorId: "root", Policy: &pb.Policy{GroupRules: rules}}); err != nil {
		t.Fatalf("SetPolicy: %v", err)
	}
	_, err := a.challenges().BeginChallenge(c.as("login"), &pb.BeginChallengeRequest{UserId: "frank", Method: pb.Method_METHOD_WEBAUTHN})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("BeginChallenge naming the contractor: %v, want FailedPrecondition", err)
	}
	passkey := func(r1, r2 *replica, key *softauthn.Authenticator) (string, *pb.VerifyChallengeResponse, error) {
		t.Helper()
		begun, err := r1.challenges().BeginChallenge(c.as("login"), &pb.BeginChallengeRequest{Method: pb.Method_METHOD_WEBAUTHN})
		if err != nil {
			t.Fatalf("BeginChallenge without user: %v", err)
		}
		assertion := assertWith(t, key, []byte(begun.GetWebauthnRequestOptionsJson()), softauthn.AssertOptions{})
		got, err := r2.challenges().VerifyChallenge(c.as("login"), &pb.VerifyChallengeRequest{ChallengeId: begun.GetChallengeId(),
			Response: &pb.VerifyChallengeRequest_WebauthnAssertionJson{WebauthnAssertionJson: string(assertion)}})
		return begun.GetChallengeId(), got, err
	}
	id, got, err := passkey(a, b, contractor)
	if status.Code(err) != codes.FailedPrecondition || !strings.HasPrefix(status.Convert(err).Message(), "method:") {
		t.Fatalf("passkey login of the contractor: %v, %v; want FailedPrecondition naming the method", got, err)
	}
	if st, err := b.challenges().GetChallengeStatus(c.as("login"), &pb.GetChallengeStatusRequest{ChallengeId: id}); err != nil || st.GetRemainingAttempts() == 0 {
		t.Fatalf("challenge after the refusal: %v, %v", st, err)
	}
	if _, got, err := passkey(b, a, engineer); err != nil || got.GetResult() != pb.VerifyResult_VERIFY_RESULT_ACCEPTED || got.GetUserId() != "alice" {
		t.Fatalf("passkey login of an engineer: %v, %v", got, err)
	}
}
