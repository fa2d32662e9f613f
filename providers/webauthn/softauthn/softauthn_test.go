package softauthn_test

import (
	"bytes"
	"encoding/json"
	"errors"
	mrand "math/rand/v2"
	"strings"
	"testing"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/twofactor/twofactor/providers/webauthn/softauthn"
	"github.com/twofactor/twofactor/providers/webauthn/u2fkey"
)

const (
	rpID   = "login.example.com"
	origin = "https://login.example.com"
	appID  = "https://login.example.com"
)

// user is the smallest webauthn.User: an id and the credentials the RP stored.
type user struct {
	id    []byte
	name  string
	creds []webauthn.Credential
}

func (u *user) WebAuthnID() []byte                         { return u.id }
func (u *user) WebAuthnName() string                       { return u.name }
func (u *user) WebAuthnDisplayName() string                { return u.name }
func (u *user) WebAuthnCredentials() []webauthn.Credential { return u.creds }

func (u *user) update(c *webauthn.Credential) {
	for i := range u.creds {
		if bytes.Equal(u.creds[i].ID, c.ID) {
			u.creds[i] = *c
		}
	}
}

func newRP(t testing.TB) *webauthn.WebAuthn {
	t.Helper()

	rp, err := webauthn.New(&webauthn.Config{
		RPID:          rpID,
		RPDisplayName: "Example",
		RPOrigins:     []string{origin},
	})
	if err != nil {
		t.Fatalf("webauthn.New: %v", err)
	}

	return rp
}

func newUser(name string) *user {
	id := make([]byte, 32)
	copy(id, name)

	return &user{id: id, name: name}
}

func newAuthenticator(t testing.TB, opts softauthn.Options) *softauthn.Authenticator {
	t.Helper()

	a, err := softauthn.New(opts)
	if err != nil {
		t.Fatalf("softauthn.New: %v", err)
	}

	return a
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()

	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}

	return b
}

// register runs a whole registration ceremony and stores the credential on u.
func register(t testing.TB, rp *webauthn.WebAuthn, u *user, a *softauthn.Authenticator, opts ...webauthn.RegistrationOption) (*webauthn.Credential, *softauthn.Credential) {
	t.Helper()

	creation, session, err := rp.BeginRegistration(u, opts...)
	if err != nil {
		t.Fatalf("BeginRegistration: %v", err)
	}

	resp, held, err := a.Register(mustJSON(t, creation), origin)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}

	cred, err := finishRegistration(rp, u, session, resp)
	if err != nil {
		t.Fatalf("registration refused: %v", describe(err))
	}

	u.creds = append(u.creds, *cred)

	return cred, held
}

func finishRegistration(rp *webauthn.WebAuthn, u *user, session *webauthn.SessionData, resp []byte) (*webauthn.Credential, error) {
	parsed, err := protocol.ParseCredentialCreationResponseBody(bytes.NewReader(resp))
	if err != nil {
		return nil, err
	}

	return rp.CreateCredential(u, *session, parsed)
}

func validateLogin(rp *webauthn.WebAuthn, u *user, session *webauthn.SessionData, resp []byte) (*webauthn.Credential, error) {
	parsed, err := protocol.ParseCredentialRequestResponseBody(bytes.NewReader(resp))
	if err != nil {
		return nil, err
	}

	return rp.ValidateLogin(u, *session, parsed)
}

// login runs BeginLogin → Assert → ValidateLogin and records the new counter.
func login(t testing.TB, rp *webauthn.WebAuthn, u *user, a *softauthn.Authenticator, ao softauthn.AssertOptions, opts ...webauthn.LoginOption) *webauthn.Credential {
	t.Helper()

	assertion, session, err := rp.BeginLogin(u, opts...)
	if err != nil {
		t.Fatalf("BeginLogin: %v", err)
	}

	resp, err := a.Assert(mustJSON(t, assertion), origin, ao)
	if err != nil {
		t.Fatalf("Assert: %v", err)
	}

	cred, err := validateLogin(rp, u, session, resp)
	if err != nil {
		t.Fatalf("login refused: %v", describe(err))
	}

	u.update(cred)

	return cred
}

// describe adds go-webauthn's DevInfo, which says which check failed.
func describe(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return pe.Error() + ": " + pe.Details + " (" + pe.DevInfo + ")"
	}

	return err.Error()
}

func TestRegisterAndLogin(t *testing.T) {
	aaguid := [16]byte{0xf8, 0xa0, 0x11, 0xf3, 0x8c, 0x0a, 0x4d, 0x15, 0x80, 0x06, 0x17, 0x11, 0x1f, 0x9e, 0xdc, 0x7d}

	tests := []struct {
		name     string
		opts     softauthn.Options
		wantType string
	}{
		{"ES256 none", softauthn.Options{Algorithm: softauthn.ES256, Attestation: "none"}, "none"},
		{"ES256 packed", softauthn.Options{Algorithm: softauthn.ES256, Attestation: "packed"}, "basic_surrogate"},
		{"EdDSA none", softauthn.Options{Algorithm: softauthn.EdDSA, Attestation: "none"}, "none"},
		{"EdDSA packed", softauthn.Options{Algorithm: softauthn.EdDSA, Attestation: "packed"}, "basic_surrogate"},
		{"ES256 packed UV backed up", softauthn.Options{Attestation: "packed", UV: true, BackupEligible: true, BackedUp: true, Attachment: "platform", Transports: []string{"internal", "hybrid"}}, "basic_surrogate"},
		{"EdDSA discoverable backup eligible", softauthn.Options{Algorithm: softauthn.EdDSA, Discoverable: true, BackupEligible: true}, "none"},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.AAGUID = aaguid
			rp := newRP(t)
			u := newUser("alice")
			a := newAuthenticator(t, tc.opts)

			cred, held := register(t, rp, u, a)

			if !bytes.Equal(cred.ID, held.ID) || !bytes.Equal(cred.PublicKey, held.PublicKeyCOSE) {
				t.Fatal("the RP stored a different credential id or public key than the authenticator made")
			}

			if cred.AttestationType != tc.wantType {
				t.Errorf("AttestationType = %q, want %q", cred.AttestationType, tc.wantType)
			}

			if cred.AttestationFormat != tc.opts.Attestation && !(tc.opts.Attestation == "" && cred.AttestationFormat == "none") {
				t.Errorf("AttestationFormat = %q, want %q", cred.AttestationFormat, tc.opts.Attestation)
			}

			if !bytes.Equal(cred.Authenticator.AAGUID, aaguid[:]) {
				t.Errorf("AAGUID = %x", cred.Authenticator.AAGUID)
			}

			if cred.Flags.UserVerified != tc.opts.UV || cred.Flags.BackupEligible != tc.opts.BackupEligible || cred.Flags.BackupState != tc.opts.BackedUp || !cred.Flags.UserPresent {
				t.Errorf("flags = %+v", cred.Flags)
			}

			if !bytes.Equal(held.UserHandle, u.id) || held.RPID != rpID || held.Discoverable != tc.opts.Discoverable {
				t.Errorf("held credential = %+v", held)
			}

			wantAttachment := protocol.CrossPlatform
			if tc.opts.Attachment == "platform" {
				wantAttachment = protocol.Platform
			}

			if cred.Authenticator.Attachment != wantAttachment {
				t.Errorf("attachment = %q, want %q", cred.Authenticator.Attachment, wantAttachment)
			}

			var last uint32

			for i := range 3 {
				got := login(t, rp, u, a, softauthn.AssertOptions{})

				if got.Authenticator.SignCount <= last || got.Authenticator.SignCount != uint32(i+1) {
					t.Fatalf("login %d: sign count %d after %d", i, got.Authenticator.SignCount, last)
				}

				if got.Authenticator.CloneWarning {
					t.Fatalf("login %d: clone warning", i)
				}

				last = got.Authenticator.SignCount
			}

			if c := a.Credentials(); len(c) != 1 || c[0].SignCount != 3 {
				t.Fatalf("Credentials() = %+v", c)
			}
		})
	}
}

func TestOptionsBareAndWrapped(t *testing.T) {
	rp := newRP(t)
	u := newUser("bob")
	a := newAuthenticator(t, softauthn.Options{Attestation: "packed"})

	creation, session, err := rp.BeginRegistration(u)
	if err != nil {
		t.Fatal(err)
	}

	resp, _, err := a.Register(mustJSON(t, creation.Response), origin) // bare options
	if err != nil {
		t.Fatalf("Register(bare): %v", err)
	}

	cred, err := finishRegistration(rp, u, session, resp)
	if err != nil {
		t.Fatalf("bare registration refused: %v", describe(err))
	}

	u.creds = append(u.creds, *cred)

	assertion, lsession, err := rp.BeginLogin(u)
	if err != nil {
		t.Fatal(err)
	}

	resp, err = a.Assert(mustJSON(t, assertion.Response), origin, softauthn.AssertOptions{})
	if err != nil {
		t.Fatalf("Assert(bare): %v", err)
	}

	if _, err = validateLogin(rp, u, lsession, resp); err != nil {
		t.Fatalf("bare login refused: %v", describe(err))
	}
}

func TestResponseJSONShape(t *testing.T) {
	rp := newRP(t)
	u := newUser("carol")
	a := newAuthenticator(t, softauthn.Options{Discoverable: true})

	creation, _, err := rp.BeginRegistration(u, webauthn.WithExtensions(webauthn.WithExtensionCredProps()))
	if err != nil {
		t.Fatal(err)
	}

	resp, _, err := a.Register(mustJSON(t, creation), origin)
	if err != nil {
		t.Fatal(err)
	}

	var reg map[string]any
	if err = json.Unmarshal(resp, &reg); err != nil {
		t.Fatal(err)
	}

	if reg["type"] != "public-key" || reg["id"] != reg["rawId"] || reg["authenticatorAttachment"] != "cross-platform" {
		t.Fatalf("registration response = %s", resp)
	}

	r := reg["response"].(map[string]any)
	for _, k := range []string{"clientDataJSON", "attestationObject", "authenticatorData", "publicKey", "transports", "publicKeyAlgorithm"} {
		if _, ok := r[k]; !ok {
			t.Errorf("response lacks %q", k)
		}
	}

	if got := mustJSON(t, reg["clientExtensionResults"]); string(got) != `{"credProps":{"rk":true}}` {
		t.Errorf("clientExtensionResults = %s", got)
	}

	parsed, err := protocol.ParseCredentialCreationResponseBody(bytes.NewReader(resp))
	if err != nil {
		t.Fatal(err)
	}

	cd := parsed.Response.CollectedClientData
	if cd.Type != protocol.CreateCeremony || cd.Origin != origin || cd.Challenge != creation.Response.Challenge.String() {
		t.Fatalf("clientData = %+v", cd)
	}

	if !strings.HasPrefix(string(parsed.Raw.AttestationResponse.ClientDataJSON), `{"type":"webauthn.create","challenge":`) {
		t.Fatalf("clientDataJSON member order: %s", parsed.Raw.AttestationResponse.ClientDataJSON)
	}
}

// TestRefusedByRelyingParty hands go-webauthn responses it must refuse, one fault each.
func TestRefusedByRelyingParty(t *testing.T) {
	f := false
	regressed := uint32(0)

	tests := []struct {
		name string
		// ao builds the assertion options from the id of the user's second
		// credential, which the "not in allowCredentials" case leaves out.
		ao        func(other []byte) softauthn.AssertOptions
		loginOpts func(first []byte) []webauthn.LoginOption
		want      string
	}{
		{
			name: "wrong origin",
			ao: func([]byte) softauthn.AssertOptions {
				return softauthn.AssertOptions{Origin: "https://login.example.com.evil.test"}
			},
			want: "Error validating origin",
		},
		{
			name: "wrong RP ID",
			ao:   func([]byte) softauthn.AssertOptions { return softauthn.AssertOptions{RPID: "evil.test"} },
			want: "RP Hash mismatch",
		},
		{
			name: "wrong challenge",
			ao: func([]byte) softauthn.AssertOptions {
				return softauthn.AssertOptions{Challenge: []byte("0123456789abcdef0123456789abcdef")}
			},
			want: "Error validating challenge",
		},
		{
			name: "missing UV when required",
			ao:   func([]byte) softauthn.AssertOptions { return softauthn.AssertOptions{UV: &f} },
			loginOpts: func([]byte) []webauthn.LoginOption {
				return []webauthn.LoginOption{webauthn.WithUserVerification(protocol.VerificationRequired)}
			},
			want: "User verification required",
		},
		{
			name: "credential not in allowCredentials",
			ao:   func(other []byte) softauthn.AssertOptions { return softauthn.AssertOptions{CredentialID: other} },
			loginOpts: func(first []byte) []webauthn.LoginOption {
				return []webauthn.LoginOption{webauthn.WithAllowedCredentials([]protocol.CredentialDescriptor{{Type: protocol.PublicKeyCredentialType, CredentialID: first}})}
			},
			want: "not in the sessions allowed credential list",
		},
		{
			name: "appid claimed for a WebAuthn credential",
			ao:   func([]byte) softauthn.AssertOptions { return softauthn.AssertOptions{UseAppID: true} },
			want: "RP Hash mismatch",
		},
		{
			name: "regressed counter is accepted with a clone warning",
			ao:   func([]byte) softauthn.AssertOptions { return softauthn.AssertOptions{SignCount: &regressed} },
			want: "", // go-webauthn leaves the decision to the RP; see below
		},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rp := newRP(t)
			u := newUser("dave")
			a := newAuthenticator(t, softauthn.Options{})
			first, _ := register(t, rp, u, a)
			second, _ := register(t, rp, u, a)

			// One good login so the counter is above zero.
			login(t, rp, u, a, softauthn.AssertOptions{CredentialID: first.ID})

			var opts []webauthn.LoginOption
			if tc.loginOpts != nil {
				opts = tc.loginOpts(first.ID)
			}

			if tc.name == "appid claimed for a WebAuthn credential" {
				// The user also has an imported U2F key, so BeginLogin keeps the appid.
				k, err := softauthn.NewU2F(appID, nil)
				if err != nil {
					t.Fatal(err)
				}

				imported, err := u2fkey.ImportCredential(k.KeyHandle, k.PublicKeyRaw, 0)
				if err != nil {
					t.Fatal(err)
				}

				u.creds = append(u.creds, imported)
				opts = append(opts, webauthn.WithAppIdExtension(appID))
			}

			assertion, session, err := rp.BeginLogin(u, opts...)
			if err != nil {
				t.Fatal(err)
			}

			ao := tc.ao(second.ID)
			if ao.CredentialID == nil {
				ao.CredentialID = first.ID
			}

			resp, err := a.Assert(mustJSON(t, assertion), origin, ao)
			if err != nil {
				t.Fatalf("Assert: %v", err)
			}

			cred, err := validateLogin(rp, u, session, resp)

			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", describe(err))
				}

				if !cred.Authenticator.CloneWarning {
					t.Fatal("a regressed counter must raise CloneWarning")
				}

				return
			}

			if err == nil {
				t.Fatal("go-webauthn accepted the assertion")
			}

			if !strings.Contains(describe(err), tc.want) {
				t.Fatalf("refused for another reason: %v (want %q)", describe(err), tc.want)
			}
		})
	}
}

func TestRegistrationRefused(t *testing.T) {
	tests := []struct {
		name   string
		opts   softauthn.Options
		origin string
		reg    []webauthn.RegistrationOption
		want   string
	}{
		{"wrong origin", softauthn.Options{}, "https://evil.test", nil, "Error validating origin"},
		{
			"missing UV when required", softauthn.Options{UV: false}, origin,
			[]webauthn.RegistrationOption{webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{UserVerification: protocol.VerificationRequired})},
			"User verification required",
		},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rp := newRP(t)
			u := newUser("erin")
			a := newAuthenticator(t, tc.opts)

			creation, session, err := rp.BeginRegistration(u, tc.reg...)
			if err != nil {
				t.Fatal(err)
			}

			resp, _, err := a.Register(mustJSON(t, creation), tc.origin)
			if err != nil {
				t.Fatal(err)
			}

			_, err = finishRegistration(rp, u, session, resp)
			if err == nil || !strings.Contains(describe(err), tc.want) {
				t.Fatalf("CreateCredential error = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestReplay shows what go-webauthn does with a captured assertion. Against a new
// session the challenge differs and it is refused. Against the session it was made
// for, go-webauthn has no memory and accepts it again, only flagging CloneWarning
// because the counter did not grow: the RP must consume the session exactly once.
func TestReplay(t *testing.T) {
	rp := newRP(t)
	u := newUser("frank")
	a := newAuthenticator(t, softauthn.Options{})
	register(t, rp, u, a)

	assertion, session, err := rp.BeginLogin(u)
	if err != nil {
		t.Fatal(err)
	}

	resp, err := a.Assert(mustJSON(t, assertion), origin, softauthn.AssertOptions{})
	if err != nil {
		t.Fatal(err)
	}

	cred, err := validateLogin(rp, u, session, resp)
	if err != nil {
		t.Fatalf("first use refused: %v", describe(err))
	}

	u.update(cred)

	_, fresh, err := rp.BeginLogin(u)
	if err != nil {
		t.Fatal(err)
	}

	if _, err = validateLogin(rp, u, fresh, resp); err == nil || !strings.Contains(describe(err), "Error validating challenge") {
		t.Fatalf("replay on a new session: err = %v, want a challenge mismatch", err)
	}

	again, err := validateLogin(rp, u, session, resp)
	if err != nil {
		t.Fatalf("replay on the consumed session: %v", describe(err))
	}

	if !again.Authenticator.CloneWarning {
		t.Fatal("replay on the consumed session did not even raise CloneWarning")
	}
}

func TestDiscoverableLogin(t *testing.T) {
	rp := newRP(t)
	alice, bob := newUser("alice"), newUser("bob")
	users := map[string]*user{string(alice.id): alice, string(bob.id): bob}

	a := newAuthenticator(t, softauthn.Options{Discoverable: true, UV: true, Algorithm: softauthn.EdDSA})
	b := newAuthenticator(t, softauthn.Options{Discoverable: true, UV: true})

	required := webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementRequired)
	register(t, rp, alice, a, required)
	register(t, rp, bob, b, required)

	for _, tc := range []struct {
		auth *softauthn.Authenticator
		want *user
	}{{a, alice}, {b, bob}} {
		assertion, session, err := rp.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
		if err != nil {
			t.Fatal(err)
		}

		if len(assertion.Response.AllowedCredentials) != 0 {
			t.Fatal("discoverable login sent allowCredentials")
		}

		resp, err := tc.auth.Assert(mustJSON(t, assertion), origin, softauthn.AssertOptions{})
		if err != nil {
			t.Fatalf("Assert: %v", err)
		}

		parsed, err := protocol.ParseCredentialRequestResponseBody(bytes.NewReader(resp))
		if err != nil {
			t.Fatal(err)
		}

		var found *user

		cred, err := rp.ValidateDiscoverableLogin(func(rawID, userHandle []byte) (webauthn.User, error) {
			u, ok := users[string(userHandle)]
			if !ok {
				return nil, errors.New("unknown user handle")
			}

			found = u

			return u, nil
		}, *session, parsed)
		if err != nil {
			t.Fatalf("ValidateDiscoverableLogin: %v", describe(err))
		}

		if found != tc.want || cred.Authenticator.SignCount != 1 {
			t.Fatalf("found %v with sign count %d, want %s", found, cred.Authenticator.SignCount, tc.want.name)
		}
	}
}

func TestAuthenticatorRefuses(t *testing.T) {
	rp := newRP(t)
	u := newUser("gina")

	t.Run("algorithm not offered", func(t *testing.T) {
		a := newAuthenticator(t, softauthn.Options{Algorithm: softauthn.EdDSA})

		creation, _, err := rp.BeginRegistration(u, webauthn.WithCredentialParameters([]protocol.CredentialParameter{{Type: protocol.PublicKeyCredentialType, Algorithm: -7}}))
		if err != nil {
			t.Fatal(err)
		}

		if _, _, err = a.Register(mustJSON(t, creation), origin); !errors.Is(err, softauthn.ErrUnsupportedAlgorithm) {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("excluded credential", func(t *testing.T) {
		a := newAuthenticator(t, softauthn.Options{})
		cred, _ := register(t, rp, u, a)

		creation, _, err := rp.BeginRegistration(u, webauthn.WithExclusions([]protocol.CredentialDescriptor{cred.Descriptor()}))
		if err != nil {
			t.Fatal(err)
		}

		if _, _, err = a.Register(mustJSON(t, creation), origin); !errors.Is(err, softauthn.ErrExcluded) {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("resident key required", func(t *testing.T) {
		a := newAuthenticator(t, softauthn.Options{})

		creation, _, err := rp.BeginRegistration(u, webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementRequired))
		if err != nil {
			t.Fatal(err)
		}

		if _, _, err = a.Register(mustJSON(t, creation), origin); !errors.Is(err, softauthn.ErrResidentKey) {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("no discoverable credential", func(t *testing.T) {
		a := newAuthenticator(t, softauthn.Options{})
		register(t, rp, newUser("hank"), a)

		assertion, _, err := rp.BeginDiscoverableLogin()
		if err != nil {
			t.Fatal(err)
		}

		if _, err = a.Assert(mustJSON(t, assertion), origin, softauthn.AssertOptions{}); !errors.Is(err, softauthn.ErrNoCredential) {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("credential of another authenticator", func(t *testing.T) {
		v := newUser("ivan")
		register(t, rp, v, newAuthenticator(t, softauthn.Options{}))

		assertion, _, err := rp.BeginLogin(v)
		if err != nil {
			t.Fatal(err)
		}

		if _, err = newAuthenticator(t, softauthn.Options{}).Assert(mustJSON(t, assertion), origin, softauthn.AssertOptions{}); !errors.Is(err, softauthn.ErrNoCredential) {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("appid not requested", func(t *testing.T) {
		a := newAuthenticator(t, softauthn.Options{})
		v := newUser("judy")
		register(t, rp, v, a)

		assertion, _, err := rp.BeginLogin(v)
		if err != nil {
			t.Fatal(err)
		}

		if _, err = a.Assert(mustJSON(t, assertion), origin, softauthn.AssertOptions{UseAppID: true}); !errors.Is(err, softauthn.ErrNoAppID) {
			t.Fatalf("err = %v", err)
		}
	})

	for _, bad := range []string{``, `[]`, `{"publicKey":{"challenge":5}}`, `{"publicKey":{"challenge":"!!"}}`} {
		a := newAuthenticator(t, softauthn.Options{})

		if _, _, err := a.Register([]byte(bad), origin); !errors.Is(err, softauthn.ErrOptions) {
			t.Errorf("Register(%q) err = %v", bad, err)
		}

		if _, err := a.Assert([]byte(bad), origin, softauthn.AssertOptions{}); !errors.Is(err, softauthn.ErrOptions) {
			t.Errorf("Assert(%q) err = %v", bad, err)
		}
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	for _, o := range []softauthn.Options{
		{Algorithm: -35},
		{Attestation: "tpm"},
		{BackedUp: true},
		{Attachment: "usb"},
	} {
		if _, err := softauthn.New(o); !errors.Is(err, softauthn.ErrConfig) {
			t.Errorf("New(%+v) err = %v", o, err)
		}
	}
}

func TestDeterministicWithSeededRand(t *testing.T) {
	for _, alg := range []softauthn.Alg{softauthn.ES256, softauthn.EdDSA} {
		var creds [2]softauthn.Credential

		for i := range creds {
			a := newAuthenticator(t, softauthn.Options{Algorithm: alg, Rand: mrand.NewChaCha8([32]byte{1, 2, 3})})
			_, c := register(t, newRP(t), newUser("kim"), a)
			creds[i] = *c
		}

		if !bytes.Equal(creds[0].ID, creds[1].ID) || !bytes.Equal(creds[0].PublicKeyCOSE, creds[1].PublicKeyCOSE) {
			t.Fatalf("alg %d: same seed, different credentials", alg)
		}
	}
}

func TestConcurrentAssertions(t *testing.T) {
	rp := newRP(t)
	u := newUser("lena")
	a := newAuthenticator(t, softauthn.Options{})
	register(t, rp, u, a)

	assertion, _, err := rp.BeginLogin(u)
	if err != nil {
		t.Fatal(err)
	}

	opts := mustJSON(t, assertion)
	done := make(chan error)

	for range 8 {
		go func() {
			_, err := a.Assert(opts, origin, softauthn.AssertOptions{})
			done <- err
		}()
	}

	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}

	if got := a.Credentials()[0].SignCount; got != 8 {
		t.Fatalf("sign count after 8 assertions = %d", got)
	}
}

func BenchmarkRegister(b *testing.B) {
	for _, alg := range []softauthn.Alg{softauthn.ES256, softauthn.EdDSA} {
		b.Run(map[softauthn.Alg]string{softauthn.ES256: "ES256", softauthn.EdDSA: "EdDSA"}[alg], func(b *testing.B) {
			rp := newRP(b)
			u := newUser("bench")

			creation, _, err := rp.BeginRegistration(u)
			if err != nil {
				b.Fatal(err)
			}

			opts := mustJSON(b, creation)
			a := newAuthenticator(b, softauthn.Options{Algorithm: alg, Attestation: "packed"})

			for b.Loop() {
				if _, _, err := a.Register(opts, origin); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAssert(b *testing.B) {
	for _, alg := range []softauthn.Alg{softauthn.ES256, softauthn.EdDSA} {
		b.Run(map[softauthn.Alg]string{softauthn.ES256: "ES256", softauthn.EdDSA: "EdDSA"}[alg], func(b *testing.B) {
			rp := newRP(b)
			u := newUser("bench")
			a := newAuthenticator(b, softauthn.Options{Algorithm: alg})
			register(b, rp, u, a)

			assertion, _, err := rp.BeginLogin(u)
			if err != nil {
				b.Fatal(err)
			}

			opts := mustJSON(b, assertion)

			for b.Loop() {
				if _, err := a.Assert(opts, origin, softauthn.AssertOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
