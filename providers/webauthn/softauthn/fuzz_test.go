package softauthn_test

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/go-webauthn/webauthn/protocol"

	"github.com/twofactor/twofactor/providers/webauthn/softauthn"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()

	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}

	return b
}

// TestRecordedOptions answers options recorded from go-webauthn v0.18.2 (testdata/),
// wrapped and bare, and checks that the challenge and the requested extension come
// back as the library will read them.
func TestRecordedOptions(t *testing.T) {
	wrapped := readTestdata(t, "creation_options.json")

	var w struct {
		PublicKey json.RawMessage `json:"publicKey"`
	}

	if err := json.Unmarshal(wrapped, &w); err != nil {
		t.Fatal(err)
	}

	for name, opts := range map[string][]byte{"wrapped": wrapped, "bare": w.PublicKey} {
		t.Run(name, func(t *testing.T) {
			a := newAuthenticator(t, softauthn.Options{Discoverable: true})

			resp, cred, err := a.Register(opts, origin)
			if err != nil {
				t.Fatal(err)
			}

			parsed, err := protocol.ParseCredentialCreationResponseBody(bytes.NewReader(resp))
			if err != nil {
				t.Fatal(err)
			}

			if got := parsed.Response.CollectedClientData.Challenge; got != "PIq8sHym_L97znqrglXYwgVpI9ptlTzLVyrldfP40p0" {
				t.Errorf("challenge = %q", got)
			}

			if rk := parsed.ClientExtensionResults.CredProps; rk == nil || rk.RK == nil || !*rk.RK {
				t.Errorf("credProps = %+v", parsed.ClientExtensionResults)
			}

			if string(cred.UserHandle[:5]) != "alice" || cred.RPID != rpID {
				t.Errorf("credential = %+v", cred)
			}
		})
	}

	// The recorded request allows a credential this authenticator does not hold.
	a := newAuthenticator(t, softauthn.Options{})
	if _, err := a.Assert(readTestdata(t, "request_options.json"), origin, softauthn.AssertOptions{UseAppID: true}); err != softauthn.ErrNoCredential {
		t.Fatalf("err = %v", err)
	}
}

// TestTamperedResponses checks that go-webauthn really verifies what the authenticator
// signs: changing one signed byte after the fact makes it refuse.
func TestTamperedResponses(t *testing.T) {
	for _, alg := range []softauthn.Alg{softauthn.ES256, softauthn.EdDSA} {
		rp := newRP(t)
		u := newUser("mallory")
		a := newAuthenticator(t, softauthn.Options{Algorithm: alg, Attestation: "packed"})

		// Registration: the packed self-attestation signature covers the UV flag.
		creation, session, err := rp.BeginRegistration(u)
		if err != nil {
			t.Fatal(err)
		}

		resp, _, err := a.Register(mustJSON(t, creation), origin)
		if err != nil {
			t.Fatal(err)
		}

		_, err = finishRegistration(rp, u, session, flipSignatureBit(t, resp, "attestationObject"))
		if err == nil || !strings.Contains(describe(err), "ignature") {
			t.Fatalf("alg %d: tampered attestation: err = %v", alg, err)
		}

		register(t, rp, u, a)

		assertion, lsession, err := rp.BeginLogin(u)
		if err != nil {
			t.Fatal(err)
		}

		resp, err = a.Assert(mustJSON(t, assertion), origin, softauthn.AssertOptions{})
		if err != nil {
			t.Fatal(err)
		}

		_, err = validateLogin(rp, u, lsession, flipSignatureBit(t, resp, "signature"))
		if err == nil || !strings.Contains(describe(err), "signature") {
			t.Fatalf("alg %d: tampered assertion: err = %v", alg, err)
		}
	}
}

// flipSignatureBit flips the last bit of the signature inside response.field (for an
// attestation object the signature sits just before authData in the CBOR map, so the
// byte flipped is inside "sig"; the statement stays well-formed CBOR).
func flipSignatureBit(t *testing.T, resp []byte, field string) []byte {
	t.Helper()

	var m map[string]any
	if err := json.Unmarshal(resp, &m); err != nil {
		t.Fatal(err)
	}

	r := m["response"].(map[string]any)

	var b protocol.URLEncodedBase64
	if err := b.UnmarshalJSON([]byte(`"` + r[field].(string) + `"`)); err != nil {
		t.Fatal(err)
	}

	if field == "signature" {
		b[len(b)-1] ^= 0x01
	} else {
		i := bytes.Index(b, []byte("sig"))
		if i < 0 {
			t.Fatal("no sig in attestation object")
		}

		// "sig" then a byte string header (0x58 len) then the signature.
		b[i+3+2] ^= 0x01
	}

	enc, _ := b.MarshalJSON()
	r[field] = strings.Trim(string(enc), `"`)

	return mustJSON(t, m)
}

// FuzzOptions feeds arbitrary JSON to both ceremonies: the authenticator must never
// panic, and any registration it does produce must parse in go-webauthn.
func FuzzOptions(f *testing.F) {
	f.Add(readTestdata(f, "creation_options.json"))
	f.Add(readTestdata(f, "request_options.json"))
	f.Add([]byte(`{"publicKey":null,"challenge":"AAAA","rpId":"a"}`))
	f.Add([]byte(`{"challenge":"AAAA","rp":{"id":"x"},"user":{"id":"AA"},"pubKeyCredParams":[]}`))

	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := softauthn.New(softauthn.Options{Discoverable: true})
		if err != nil {
			t.Fatal(err)
		}

		if resp, _, err := a.Register(data, origin); err == nil {
			if _, err = protocol.ParseCredentialCreationResponseBody(bytes.NewReader(resp)); err != nil {
				t.Fatalf("produced an unparseable registration: %v", err)
			}

			_, _ = a.Assert(data, origin, softauthn.AssertOptions{})
		}

		_, _ = a.Assert(data, origin, softauthn.AssertOptions{UseAppID: true})
	})
}
