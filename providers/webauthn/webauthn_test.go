package webauthn_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twofactor/twofactor/providers/webauthn"
	"github.com/twofactor/twofactor/providers/webauthn/softauthn"
	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

const (
	rpID       = "login.example.com"
	origin     = "https://login.example.com"
	apkOrigin  = "android:apk-key-hash:2jmj7l5rSw0yVb_vlWAYkK_YBwk"
	appID      = "https://login.example.com"
	otherAppID = "https://old.example.com"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

type fixture struct {
	store *storage.Store
	p     *webauthn.Provider
	pol   *mutablePolicy
	now   time.Time
}

// mutablePolicy lets a test change the policy between ceremonies.
type mutablePolicy struct {
	mu sync.Mutex
	p  webauthn.Policy
}

func (m *mutablePolicy) WebAuthnPolicy(context.Context) (webauthn.Policy, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.p, nil
}

func (m *mutablePolicy) set(p webauthn.Policy) { m.mu.Lock(); m.p = p; m.mu.Unlock() }

func newFixture(t testing.TB) *fixture {
	t.Helper()
	fx := &fixture{store: storagetest.Open(t), pol: &mutablePolicy{}, now: t0}
	var err error
	fx.p, err = webauthn.New(fx.store, webauthn.Config{
		RPID: rpID, RPDisplayName: "Example", RPOrigins: []string{origin, apkOrigin},
	}, fx.pol, func() time.Time { return fx.now }, nil)
	if err != nil {
		t.Fatal(err)
	}
	return fx
}

func newAuth(t testing.TB, o softauthn.Options) *softauthn.Authenticator {
	t.Helper()
	a, err := softauthn.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (fx *fixture) register(t testing.TB, userID string, a *softauthn.Authenticator, discoverable bool) *storage.Factor {
	t.Helper()
	ctx := context.Background()
	pf, opts, err := fx.p.BeginRegistration(ctx, userID, userID+"@example.com", "", "", discoverable)
	if err != nil {
		t.Fatalf("BeginRegistration: %v", err)
	}
	resp, _, err := a.Register(opts, origin)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	f, err := fx.p.FinishRegistration(ctx, userID, pf.ID, resp)
	if err != nil {
		t.Fatalf("FinishRegistration: %v", err)
	}
	return f
}

func (fx *fixture) login(t testing.TB, userID string, a *softauthn.Authenticator, ao softauthn.AssertOptions, o string) (*webauthn.Result, error) {
	t.Helper()
	ctx := context.Background()
	var (
		session, opts []byte
		err           error
	)
	if userID == "" {
		session, opts, err = fx.p.BeginDiscoverableLogin(ctx)
	} else {
		session, opts, err = fx.p.BeginLogin(ctx, userID, "")
	}
	if err != nil {
		t.Fatalf("BeginLogin: %v", err)
	}
	resp, err := a.Assert(opts, o, ao)
	if err != nil {
		t.Fatalf("Assert: %v", err)
	}
	return fx.p.FinishLogin(ctx, session, userID, resp)
}

func TestRegisterAndLogin(t *testing.T) {
	aaguid := [16]byte{0xcb, 0x69, 0x48, 0x1e, 0x8f, 0xf7, 0x40, 0x39, 0x93, 0xec, 0x0a, 0x27, 0x29, 0xa1, 0x54, 0xa8}
	for _, tc := range []struct {
		name string
		opts softauthn.Options
		alg  int64
	}{
		{"ES256 none", softauthn.Options{Algorithm: softauthn.ES256, Attestation: softauthn.AttestationNone}, -7},
		{"ES256 packed", softauthn.Options{Algorithm: softauthn.ES256, Attestation: softauthn.AttestationPacked}, -7},
		{"EdDSA none", softauthn.Options{Algorithm: softauthn.EdDSA, Attestation: softauthn.AttestationNone}, -8},
		{"EdDSA packed", softauthn.Options{Algorithm: softauthn.EdDSA, Attestation: softauthn.AttestationPacked, UV: true, BackupEligible: true, BackedUp: true, Transports: []string{"internal", "hybrid"}}, -8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t)
			tc.opts.AAGUID = aaguid
			a := newAuth(t, tc.opts)
			f := fx.register(t, "alice", a, false)
			d, ok := webauthn.FactorDetails(f)
			if !ok || f.State != storage.FactorActive {
				t.Fatalf("factor not active: %+v", f)
			}
			held := a.Credentials()[0]
			if !bytes.Equal(d.CredentialID, held.ID) || !bytes.Equal(f.CredentialID, held.ID) {
				t.Fatal("stored credential id differs from the authenticator's")
			}
			if d.Algorithm != tc.alg || d.AAGUID != "cb69481e-8ff7-4039-93ec-0a2729a154a8" || d.AttestationFormat != tc.opts.Attestation ||
				d.BackupEligible != tc.opts.BackupEligible || d.BackedUp != tc.opts.BackedUp || d.Discoverable || d.LegacyU2F {
				t.Fatalf("details = %+v", d)
			}
			if tc.opts.Transports != nil && strings.Join(d.Transports, ",") != "internal,hybrid" {
				t.Fatalf("transports = %v", d.Transports)
			}
			for i := uint32(1); i <= 3; i++ {
				res, err := fx.login(t, "alice", a, softauthn.AssertOptions{}, origin)
				if err != nil {
					t.Fatalf("login %d: %v", i, err)
				}
				if res.UserID != "alice" || res.Factor.ID != f.ID || res.SignCount != i || res.CompleteLogin {
					t.Fatalf("login %d: %+v", i, res)
				}
			}
			got, _ := fx.store.GetFactor(context.Background(), "alice", f.ID)
			if d, _ := webauthn.FactorDetails(got); d.SignCount != 3 || got.LastUsedAt == nil {
				t.Fatalf("after 3 logins: sign count %d, last used %v", d.SignCount, got.LastUsedAt)
			}
		})
	}
}

func TestCreationOptionsAreStandardJSON(t *testing.T) {
	fx := newFixture(t)
	a := newAuth(t, softauthn.Options{})
	fx.register(t, "bob", a, false)
	_, opts, err := fx.p.BeginRegistration(context.Background(), "bob", "bob@example.com", "Bob", "Second key", false)
	if err != nil {
		t.Fatal(err)
	}
	var o struct {
		RP        map[string]string `json:"rp"`
		User      map[string]string `json:"user"`
		Challenge string            `json:"challenge"`
		Exclude   []map[string]any  `json:"excludeCredentials"`
		Params    []map[string]any  `json:"pubKeyCredParams"`
		Timeout   int               `json:"timeout"`
	}
	if err := json.Unmarshal(opts, &o); err != nil {
		t.Fatal(err)
	}
	if o.RP["id"] != rpID || o.RP["name"] != "Example" || o.User["name"] != "bob@example.com" || o.User["displayName"] != "Bob" ||
		len(o.Challenge) < 43 || len(o.Exclude) != 1 || len(o.Params) == 0 || o.Timeout != 300000 {
		t.Fatalf("creation options = %s", opts)
	}
	if strings.Contains(string(opts), "publicKey\"") || strings.Contains(o.User["id"], "bob") || len(o.User["id"]) != 86 {
		t.Fatalf("user.id must be a 64-byte random handle in base64url and the options unwrapped: %s", opts)
	}
	// The same authenticator cannot enroll twice.
	if _, _, err := a.Register(opts, origin); !errors.Is(err, softauthn.ErrExcluded) {
		t.Fatalf("second registration of one authenticator: %v", err)
	}
}

func TestAndroidOrigin(t *testing.T) {
	fx := newFixture(t)
	a := newAuth(t, softauthn.Options{})
	fx.register(t, "carol", a, false)
	if _, err := fx.login(t, "carol", a, softauthn.AssertOptions{}, apkOrigin); err != nil {
		t.Fatalf("login from the Android app origin: %v", err)
	}
	if _, err := fx.login(t, "carol", a, softauthn.AssertOptions{}, "android:apk-key-hash:other"); !errors.Is(err, webauthn.ErrInvalidAssertion) {
		t.Fatalf("login from another app: %v", err)
	}
}

func TestLoginRefused(t *testing.T) {
	f := false
	zero := uint32(0)
	for _, tc := range []struct {
		name string
		ao   softauthn.AssertOptions
		uv   bool
		want error
	}{
		{"wrong origin", softauthn.AssertOptions{Origin: "https://login.example.com.evil.test"}, false, webauthn.ErrInvalidAssertion},
		{"wrong RP ID", softauthn.AssertOptions{RPID: "evil.test"}, false, webauthn.ErrInvalidAssertion},
		{"wrong challenge", softauthn.AssertOptions{Challenge: bytes.Repeat([]byte{7}, 32)}, false, webauthn.ErrInvalidAssertion},
		{"no UV when required", softauthn.AssertOptions{UV: &f}, true, webauthn.ErrUserVerification},
		{"regressed counter", softauthn.AssertOptions{SignCount: &zero}, false, webauthn.ErrCloned},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t)
			a := newAuth(t, softauthn.Options{})
			fac := fx.register(t, "dave", a, false)
			if _, err := fx.login(t, "dave", a, softauthn.AssertOptions{}, origin); err != nil {
				t.Fatal(err)
			}
			fx.pol.set(webauthn.Policy{RequireUserVerification: tc.uv})
			res, err := fx.login(t, "dave", a, tc.ao, origin)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.want == webauthn.ErrCloned {
				if res == nil || res.StoredSignCount != 1 || res.SignCount != 0 || res.Factor.ID != fac.ID {
					t.Fatalf("result of a regression = %+v", res)
				}
				got, _ := fx.store.GetFactor(context.Background(), "dave", fac.ID)
				if d, _ := webauthn.FactorDetails(got); !d.CloneWarning || d.SignCount != 1 {
					t.Fatalf("the clone warning was not stored: %+v", d)
				}
				// Every later login with the credential is refused, even a good one.
				if _, err := fx.login(t, "dave", a, softauthn.AssertOptions{}, origin); !errors.Is(err, webauthn.ErrCloned) {
					t.Fatalf("login after the clone warning: %v", err)
				}
			}
		})
	}
}

func TestForeignCredential(t *testing.T) {
	fx := newFixture(t)
	alice, mallory := newAuth(t, softauthn.Options{}), newAuth(t, softauthn.Options{})
	fx.register(t, "alice", alice, false)
	fx.register(t, "mallory", mallory, false)
	ctx := context.Background()
	session, opts, err := fx.p.BeginLogin(ctx, "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := mallory.Assert(opts, origin, softauthn.AssertOptions{CredentialID: mallory.Credentials()[0].ID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fx.p.FinishLogin(ctx, session, "alice", resp); !errors.Is(err, webauthn.ErrUnknownCredential) {
		t.Fatalf("mallory's credential on alice's challenge: %v", err)
	}
	if _, err := fx.p.FinishLogin(ctx, session, "alice", []byte(`{"id":`)); !errors.Is(err, webauthn.ErrMalformed) {
		t.Fatalf("malformed assertion: %v", err)
	}
	if _, _, err := fx.p.BeginLogin(ctx, "nobody", ""); !errors.Is(err, webauthn.ErrNoCredentials) {
		t.Fatalf("user without credentials: %v", err)
	}
}

// TestConcurrentSameAssertion: the same assertion verified twice at once (a double
// submit) advances the credential once and is not mistaken for a clone.
func TestConcurrentSameAssertion(t *testing.T) {
	fx := newFixture(t)
	a := newAuth(t, softauthn.Options{})
	fac := fx.register(t, "erin", a, false)
	ctx := context.Background()
	session, opts, err := fx.p.BeginLogin(ctx, "erin", "")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := a.Assert(opts, origin, softauthn.AssertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	errs := make([]error, 8)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, errs[i] = fx.p.FinishLogin(ctx, session, "erin", resp)
		}(i)
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, webauthn.ErrReplayed):
			t.Fatalf("concurrent copy refused with %v, want ErrReplayed", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d verifications of one assertion succeeded, want 1", ok)
	}
	got, _ := fx.store.GetFactor(ctx, "erin", fac.ID)
	if d, _ := webauthn.FactorDetails(got); d.CloneWarning || d.SignCount != 1 {
		t.Fatalf("after a double submit: %+v", d)
	}
}

func TestDiscoverableLogin(t *testing.T) {
	fx := newFixture(t)
	alice := newAuth(t, softauthn.Options{Discoverable: true, UV: true, Algorithm: softauthn.EdDSA, BackupEligible: true})
	bob := newAuth(t, softauthn.Options{Discoverable: true, UV: false})
	fa := fx.register(t, "alice", alice, true)
	fb := fx.register(t, "bob", bob, true)
	if d, _ := webauthn.FactorDetails(fa); !d.Discoverable {
		t.Fatalf("passkey not recorded as discoverable: %+v", d)
	}
	for _, pol := range []webauthn.Policy{{}, {PasskeyCompleteLogin: true}} {
		fx.pol.set(pol)
		for _, tc := range []struct {
			a        *softauthn.Authenticator
			user     string
			factor   string
			complete bool
		}{{alice, "alice", fa.ID, pol.PasskeyCompleteLogin}, {bob, "bob", fb.ID, false}} {
			res, err := fx.login(t, "", tc.a, softauthn.AssertOptions{}, origin)
			if err != nil {
				t.Fatalf("%s passkey login: %v", tc.user, err)
			}
			if res.UserID != tc.user || res.Factor.ID != tc.factor || !res.Usernameless || res.CompleteLogin != tc.complete {
				t.Fatalf("%s passkey login (policy %+v): %+v", tc.user, pol, res)
			}
		}
	}
	// A non-discoverable key cannot answer a login without a user.
	plain := newAuth(t, softauthn.Options{})
	fx.register(t, "carol", plain, false)
	ctx := context.Background()
	session, opts, err := fx.p.BeginDiscoverableLogin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := plain.Assert(opts, origin, softauthn.AssertOptions{CredentialID: plain.Credentials()[0].ID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fx.p.FinishLogin(ctx, session, "", resp); !errors.Is(err, webauthn.ErrInvalidAssertion) {
		t.Fatalf("assertion without user handle on a discoverable login: %v", err)
	}
}

func TestRegistrationRefused(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		opts   softauthn.Options
		origin string
		uv     bool
		want   error
	}{
		{"wrong origin", softauthn.Options{}, "https://evil.test", false, webauthn.ErrInvalidAttestation},
		{"no UV when required", softauthn.Options{}, origin, true, webauthn.ErrUserVerification},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t)
			fx.pol.set(webauthn.Policy{RequireUserVerification: tc.uv})
			pf, opts, err := fx.p.BeginRegistration(ctx, "frank", "", "", "", false)
			if err != nil {
				t.Fatal(err)
			}
			resp, _, err := newAuth(t, tc.opts).Register(opts, tc.origin)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := fx.p.FinishRegistration(ctx, "frank", pf.ID, resp); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			// The pending enrollment is used up.
			if _, err := fx.p.FinishRegistration(ctx, "frank", pf.ID, resp); !errors.Is(err, webauthn.ErrNotPending) {
				t.Fatalf("second finish: %v", err)
			}
		})
	}
	t.Run("expired", func(t *testing.T) {
		fx := newFixture(t)
		pf, opts, _ := fx.p.BeginRegistration(ctx, "gina", "", "", "", false)
		resp, _, _ := newAuth(t, softauthn.Options{}).Register(opts, origin)
		fx.now = fx.now.Add(6 * time.Minute)
		if _, err := fx.p.FinishRegistration(ctx, "gina", pf.ID, resp); !errors.Is(err, webauthn.ErrEnrollmentExpired) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("another user's pending factor", func(t *testing.T) {
		fx := newFixture(t)
		pf, opts, _ := fx.p.BeginRegistration(ctx, "hank", "", "", "", false)
		resp, _, _ := newAuth(t, softauthn.Options{}).Register(opts, origin)
		if _, err := fx.p.FinishRegistration(ctx, "ivan", pf.ID, resp); !errors.Is(err, webauthn.ErrNotPending) {
			t.Fatalf("err = %v", err)
		}
		if _, err := fx.p.FinishRegistration(ctx, "hank", pf.ID, []byte("{}")); !errors.Is(err, webauthn.ErrMalformed) {
			t.Fatalf("malformed: %v", err)
		}
	})
	t.Run("credential already registered", func(t *testing.T) {
		fx := newFixture(t)
		a := newAuth(t, softauthn.Options{})
		fx.register(t, "jane", a, false)
		k, _ := softauthn.NewU2F(appID, nil)
		if _, err := fx.p.ImportU2F(ctx, "jane", appID, k.KeyHandle, k.PublicKeyRaw, 0, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := fx.p.ImportU2F(ctx, "kim", appID, k.KeyHandle, k.PublicKeyRaw, 0, ""); !errors.Is(err, webauthn.ErrCredentialExists) {
			t.Fatalf("same key handle for another user: %v", err)
		}
	})
}

func TestU2FImportAndLogin(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	k, err := softauthn.NewU2F(appID, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := fx.p.ImportU2F(ctx, "nextcloud", appID, k.KeyHandle, k.PublicKeyRaw, 0, "Old YubiKey")
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := webauthn.FactorDetails(f); !ok || !d.LegacyU2F || d.Algorithm != -7 || d.AttestationFormat != "fido-u2f" || f.Name != "Old YubiKey" {
		t.Fatalf("imported factor: %+v %+v", f, d)
	}
	// A WebAuthn key beside it: the request carries both, and the appid.
	a := newAuth(t, softauthn.Options{})
	fx.register(t, "nextcloud", a, false)
	for i := uint32(1); i <= 2; i++ {
		session, opts, err := fx.p.BeginLogin(ctx, "nextcloud", "")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(opts), `"appid":"`+appID+`"`) {
			t.Fatalf("request options lack the appid extension: %s", opts)
		}
		resp, err := k.AssertAppID(opts, origin)
		if err != nil {
			t.Fatal(err)
		}
		res, err := fx.p.FinishLogin(ctx, session, "nextcloud", resp)
		if err != nil || res.Factor.ID != f.ID || !res.LegacyU2F || res.SignCount != i {
			t.Fatalf("U2F login %d: %+v, %v", i, res, err)
		}
	}
	if _, err := fx.login(t, "nextcloud", a, softauthn.AssertOptions{}, origin); err != nil {
		t.Fatalf("the WebAuthn key beside the U2F key: %v", err)
	}
	// Registering another key excludes the U2F key through appidExclude.
	_, opts, err := fx.p.BeginRegistration(ctx, "nextcloud", "", "", "", false)
	if err != nil || !strings.Contains(string(opts), `"appidExclude":"`+appID+`"`) {
		t.Fatalf("creation options lack appidExclude: %s, %v", opts, err)
	}
}

func TestU2FImportValidation(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	k, _ := softauthn.NewU2F(appID, nil)
	bad := bytes.Clone(k.PublicKeyRaw)
	bad[64] ^= 1
	for _, tc := range []struct {
		name   string
		appID  string
		handle []byte
		pub    []byte
		want   error
	}{
		{"http app id", "http://example.com", k.KeyHandle, k.PublicKeyRaw, webauthn.ErrAppID},
		{"no app id", "", k.KeyHandle, k.PublicKeyRaw, webauthn.ErrAppID},
		{"empty handle", appID, nil, k.PublicKeyRaw, webauthn.ErrKeyHandle},
		{"long handle", appID, make([]byte, 256), k.PublicKeyRaw, webauthn.ErrKeyHandle},
		{"point off the curve", appID, k.KeyHandle, bad, webauthn.ErrPublicKey},
		{"compressed point", appID, k.KeyHandle, k.PublicKeyRaw[:33], webauthn.ErrPublicKey},
	} {
		if _, err := fx.p.ImportU2F(ctx, "u", tc.appID, tc.handle, tc.pub, 0, ""); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := fx.p.ImportU2F(ctx, "u", "http://localhost:8080", k.KeyHandle, k.PublicKeyRaw, 0, ""); err != nil {
		t.Errorf("http://localhost app id: %v", err)
	}
	// A U2F key registered for another AppID signs over that AppID, which the request
	// does not name: refused.
	other, _ := softauthn.NewU2F(otherAppID, nil)
	if _, err := fx.p.ImportU2F(ctx, "v", appID, other.KeyHandle, other.PublicKeyRaw, 0, ""); err != nil {
		t.Fatal(err)
	}
	_, opts, _ := fx.p.BeginLogin(ctx, "v", "")
	if _, err := other.AssertAppID(opts, origin); !errors.Is(err, softauthn.ErrAppID) {
		t.Fatalf("key of another AppID: %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	s := storagetest.Open(t)
	for _, tc := range []struct {
		name string
		cfg  webauthn.Config
		want string
	}{
		{"bad uv", webauthn.Config{UserVerification: "always"}, "user verification"},
		{"bad attestation", webauthn.Config{Attestation: "full"}, "attestation"},
		{"short timeout", webauthn.Config{Timeout: time.Second}, "timeout"},
		{"ip rp id", webauthn.Config{RPID: "127.0.0.1"}, "rp id"},
		{"only app origins", webauthn.Config{RPOrigins: []string{apkOrigin}}, "origins"},
	} {
		if _, err := webauthn.New(s, tc.cfg, nil, nil, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one naming %q", tc.name, err, tc.want)
		}
	}
	p, err := webauthn.New(s, webauthn.Config{}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c := p.Config(); c.RPID != "localhost" || c.RPOrigins[0] != "http://localhost:8080" || c.Timeout != 5*time.Minute {
		t.Fatalf("defaults = %+v", c)
	}
	// The defaults work end to end.
	pf, opts, err := p.BeginRegistration(context.Background(), "local", "", "", "", false)
	if err != nil {
		t.Fatal(err)
	}
	resp, _, err := newAuth(t, softauthn.Options{}).Register(opts, "http://localhost:8080")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.FinishRegistration(context.Background(), "local", pf.ID, resp); err != nil {
		t.Fatalf("registration with default settings: %v", err)
	}
}
