package server_test

import (
	"context"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"testing"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/otpcode"
	"github.com/twofactor/twofactor/providers/totp"
	"github.com/twofactor/twofactor/providers/webauthn/softauthn"
	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// failEpochs makes every move of a credentials epoch fail until the returned
// function runs: the table is renamed away and back (on SQLite and PostgreSQL
// alike).
func failEpochs(t *testing.T, st *storage.Store) (restore func()) {
	t.Helper()
	db := st.DB(context.Background())
	if err := db.Exec("ALTER TABLE credentials_epochs RENAME TO credentials_epochs_away").Error; err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if err := db.Exec("ALTER TABLE credentials_epochs_away RENAME TO credentials_epochs").Error; err != nil {
			t.Fatal(err)
		}
	}
}

// hasFactor tells whether user has an active factor of method (and, when id is
// not empty, that one).
func hasFactor(t *testing.T, c *cluster, r *replica, user string, method pb.Method, id string) bool {
	t.Helper()
	list, err := r.enrollment().ListFactors(c.as("selfservice"), &pb.ListFactorsRequest{UserId: user})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range list.GetFactors() {
		if f.GetMethod() == method && (id == "" || f.GetId() == id) && f.GetState() == pb.FactorState_FACTOR_STATE_ACTIVE {
			return true
		}
	}
	return false
}

// A credentials change and the move of the user's credentials epoch commit in
// one transaction: when the move fails, the answer is an error and the change is
// not stored (the remembered devices live on, a push enrollment's token is still
// good), and the same request succeeds once the store works again, killing the
// remembered devices. Old code: the change committed first, so it was stored
// (the push token spent) behind the error, and the remembered devices stayed valid.
func TestCredentialsChangeAndEpochCommitTogether(t *testing.T) {
	c := newCluster(t)
	r := c.start()
	allowRemember(t, c, r, nil)
	self, adm := c.as("selfservice"), c.as("admin")
	_, seed, params := enrollTOTP(t, c, r, "alice")
	st := storagetest.OpenURL(t, c.url)
	cases := []struct {
		name string
		// prepare runs with the store whole; do makes the change, stored tells
		// whether it is there.
		prepare func() (do func() error, stored func() bool)
	}{
		{"TOTP enrollment finished", func() (func() error, func() bool) {
			begin, err := r.enrollment().BeginEnrollment(self, &pb.BeginEnrollmentRequest{UserId: "alice", Method: pb.Method_METHOD_TOTP, Name: "Second",
				Options: &pb.BeginEnrollmentRequest_Totp{Totp: &pb.TotpEnrollmentOptions{AccountName: "alice@example.com"}}})
			if err != nil {
				t.Fatal(err)
			}
			tp := begin.GetTotp()
			s, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(tp.GetSecret())
			if err != nil {
				t.Fatal(err)
			}
			p := totp.Params{Algorithm: tp.GetAlgorithm(), Digits: int(tp.GetDigits()), Period: uint(tp.GetPeriodSeconds())}
			return func() error {
					code, _ := totp.CodeAt(s, p, c.clock.Now())
					_, err := r.enrollment().FinishEnrollment(self, &pb.FinishEnrollmentRequest{UserId: "alice", FactorId: begin.GetFactorId(),
						Proof: &pb.FinishEnrollmentRequest_Code{Code: code}})
					return err
				}, func() bool {
					return hasFactor(t, c, r, "alice", pb.Method_METHOD_TOTP, begin.GetFactorId())
				}
		}},
		{"WebAuthn enrollment finished", func() (func() error, func() bool) {
			a := newSoftAuthn(t, softauthn.Options{})
			begin, err := r.enrollment().BeginEnrollment(self, &pb.BeginEnrollmentRequest{UserId: "alice", Method: pb.Method_METHOD_WEBAUTHN, Name: "Key",
				Options: &pb.BeginEnrollmentRequest_Webauthn{Webauthn: &pb.WebAuthnEnrollmentOptions{UserName: "alice@example.com", DisplayName: "ALICE"}}})
			if err != nil {
				t.Fatal(err)
			}
			att, _, err := a.Register([]byte(begin.GetWebauthn().GetCreationOptionsJson()), waOrigin)
			if err != nil {
				t.Fatal(err)
			}
			return func() error {
					_, err := r.enrollment().FinishEnrollment(self, &pb.FinishEnrollmentRequest{UserId: "alice", FactorId: begin.GetFactorId(),
						Proof: &pb.FinishEnrollmentRequest_WebauthnAttestationJson{WebauthnAttestationJson: string(att)}})
					return err
				}, func() bool {
					return hasFactor(t, c, r, "alice", pb.Method_METHOD_WEBAUTHN, begin.GetFactorId())
				}
		}},
		{"push device enrolled", func() (func() error, func() bool) {
			token, d := pushToken(t, c, r, "alice")
			return func() error {
					// The same token both times: the failed enrollment did not spend it.
					return d.Enroll(context.Background(), r.devices(), token, "Phone", "android", nil)
				}, func() bool {
					return hasFactor(t, c, r, "alice", pb.Method_METHOD_PUSH, "")
				}
		}},
		{"U2F key imported", func() (func() error, func() bool) {
			k, err := softauthn.NewU2F(waAppID, nil)
			if err != nil {
				t.Fatal(err)
			}
			return func() error {
					_, err := r.admin().ImportU2FRegistration(adm, &pb.ImportU2FRegistrationRequest{ActorId: "root", UserId: "alice", AppId: waAppID,
						KeyHandle: base64.RawURLEncoding.EncodeToString(k.KeyHandle), PublicKey: base64.RawURLEncoding.EncodeToString(k.PublicKeyRaw)})
					return err
				}, func() bool {
					list, err := r.enrollment().ListFactors(self, &pb.ListFactorsRequest{UserId: "alice"})
					if err != nil {
						t.Fatal(err)
					}
					for _, f := range list.GetFactors() {
						if f.GetWebauthn().GetLegacyU2F() {
							return true
						}
					}
					return false
				}
		}},
		{"backup codes issued", func() (func() error, func() bool) {
			return func() error {
					_, err := r.enrollment().IssueBackupCodes(self, &pb.IssueBackupCodesRequest{UserId: "alice"})
					return err
				}, func() bool {
					s, err := r.enrollment().GetBackupCodesStatus(self, &pb.GetBackupCodesStatusRequest{UserId: "alice"})
					if err != nil {
						t.Fatal(err)
					}
					return s.GetEnabled()
				}
		}},
		{"admin code issued", func() (func() error, func() bool) {
			return func() error {
					_, err := r.admin().IssueAdminBackupCode(adm, &pb.IssueAdminBackupCodeRequest{ActorId: "root", UserId: "alice"})
					return err
				}, func() bool {
					_, err := st.GetAdminCode(context.Background(), "alice")
					if err != nil && !errors.Is(err, storage.ErrNotFound) {
						t.Fatal(err)
					}
					return err == nil
				}
		}},
		{"factor removed", func() (func() error, func() bool) {
			fid, _, _ := enrollTOTP(t, c, r, "alice")
			return func() error {
					_, err := r.enrollment().RemoveFactor(self, &pb.RemoveFactorRequest{UserId: "alice", FactorId: fid})
					return err
				}, func() bool {
					return !hasFactor(t, c, r, "alice", pb.Method_METHOD_TOTP, fid)
				}
		}},
		{"factor reset", func() (func() error, func() bool) {
			fid, _, _ := enrollTOTP(t, c, r, "alice")
			return func() error {
					_, err := r.admin().ResetFactors(adm, &pb.ResetFactorsRequest{ActorId: "root", UserId: "alice", FactorId: fid})
					return err
				}, func() bool {
					return !hasFactor(t, c, r, "alice", pb.Method_METHOD_TOTP, fid)
				}
		}},
	}
	for _, tc := range cases {
		do, stored := tc.prepare() // before the device is remembered: it may change credentials itself
		tok := loginRemember(t, c, r, "alice", seed, params).GetDeviceToken()
		restore := failEpochs(t, st)
		err := do()
		restore()
		if err == nil {
			t.Fatalf("%s: answered OK although the epoch did not move", tc.name)
		}
		if stored() {
			t.Errorf("%s: the change is stored although the epoch did not move (%v)", tc.name, err)
			continue
		}
		alive := checkDevice(t, c, r, "alice", tok, false)
		wantRemembered(t, alive, pb.RememberedResult_REMEMBERED_RESULT_REMEMBERED)
		if err := do(); err != nil {
			t.Fatalf("%s: retried: %v", tc.name, err)
		}
		if !stored() {
			t.Fatalf("%s: retried, yet not stored", tc.name)
		}
		wantRemembered(t, checkDevice(t, c, r, "alice", alive.GetDeviceToken(), false), pb.RememberedResult_REMEMBERED_RESULT_NOT_REMEMBERED)
	}
	if t.Failed() {
		return
	}
	if n, ok := len(c.auditOf("device.revoked")), len(cases); n != ok {
		t.Fatalf("%d device.revoked events, want %d (one per change that committed)", n, ok)
	}
}

// A code-channel enrollment that replaces a destination moves the epoch in the
// activation's transaction, before the notice to the old destination is handed
// over: when the move fails, nothing is sent, the old factor stays, the new one
// stays pending with its code good, and the remembered devices live on. Old
// code: the replacement and its notice were done, the devices alive.
func TestOTPCodeReplacementUndoneWhenTheEpochCannotMove(t *testing.T) {
	c, out, _ := otpCluster(t, otpcode.Config{})
	r := c.start()
	allowRemember(t, c, r, nil)
	ctx := c.as("selfservice")
	_, seed, params := enrollTOTP(t, c, r, "alice")
	old := enrollOTP(t, c, r, out, "alice", pb.Method_METHOD_EMAIL, "alice@example.com")
	b, err := r.enrollment().BeginEnrollment(ctx, &pb.BeginEnrollmentRequest{UserId: "alice", Method: pb.Method_METHOD_EMAIL,
		Options: &pb.BeginEnrollmentRequest_OutOfBand{OutOfBand: &pb.OutOfBandEnrollmentOptions{Destination: "bob@example.org", ReplacesFactorId: old}}})
	if err != nil {
		t.Fatal(err)
	}
	code, sent := out.last(t).Code, out.count()
	finish := func() error {
		_, err := r.enrollment().FinishEnrollment(ctx, &pb.FinishEnrollmentRequest{UserId: "alice", FactorId: b.GetFactorId(),
			Proof: &pb.FinishEnrollmentRequest_Code{Code: code}})
		return err
	}
	tok := loginRemember(t, c, r, "alice", seed, params).GetDeviceToken()
	st := storagetest.OpenURL(t, c.url)
	restore := failEpochs(t, st)
	err = finish()
	restore()
	if err == nil {
		t.Fatal("answered OK although the epoch did not move")
	}
	if out.count() != sent || !hasFactor(t, c, r, "alice", pb.Method_METHOD_EMAIL, old) || hasFactor(t, c, r, "alice", pb.Method_METHOD_EMAIL, b.GetFactorId()) {
		t.Fatalf("after the failed move: %d sends (want %d), the old factor active %v, the new one active %v", out.count(), sent,
			hasFactor(t, c, r, "alice", pb.Method_METHOD_EMAIL, old), hasFactor(t, c, r, "alice", pb.Method_METHOD_EMAIL, b.GetFactorId()))
	}
	alive := checkDevice(t, c, r, "alice", tok, false)
	wantRemembered(t, alive, pb.RememberedResult_REMEMBERED_RESULT_REMEMBERED)
	if err := finish(); err != nil {
		t.Fatalf("retried: %v", err)
	}
	if n := out.last(t); out.count() != sent+1 || n.Kind != otpcode.KindNotice || n.Destination != "alice@example.com" ||
		hasFactor(t, c, r, "alice", pb.Method_METHOD_EMAIL, old) || !hasFactor(t, c, r, "alice", pb.Method_METHOD_EMAIL, b.GetFactorId()) {
		t.Fatalf("retried: %d sends, last %v", out.count(), n)
	}
	wantRemembered(t, checkDevice(t, c, r, "alice", alive.GetDeviceToken(), false), pb.RememberedResult_REMEMBERED_RESULT_NOT_REMEMBERED)
}
