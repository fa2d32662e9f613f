package softauthn_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/twofactor/twofactor/providers/webauthn/softauthn"
	"github.com/twofactor/twofactor/providers/webauthn/u2fkey"
)

// importU2F stores a U2F registration on u the way an importer of U2F-era data would:
// from nothing but the key handle and the raw public key.
func importU2F(t testing.TB, u *user, k *softauthn.U2FKey) {
	t.Helper()

	cred, err := u2fkey.ImportCredential(k.KeyHandle, k.PublicKeyRaw, 0)
	if err != nil {
		t.Fatalf("ImportCredential: %v", err)
	}

	u.creds = append(u.creds, cred)
}

func TestU2FLoginWithAppID(t *testing.T) {
	rp := newRP(t)
	u := newUser("nextcloud-user")

	k, err := softauthn.NewU2F(appID, nil)
	if err != nil {
		t.Fatal(err)
	}

	if len(k.PublicKeyRaw) != u2fkey.RawPublicKeyLen || k.PublicKeyRaw[0] != 0x04 || len(k.KeyHandle) != 64 {
		t.Fatalf("U2F key shape: handle %d bytes, public key %d bytes", len(k.KeyHandle), len(k.PublicKeyRaw))
	}

	importU2F(t, u, k)

	for i := uint32(1); i <= 3; i++ {
		assertion, session, err := rp.BeginLogin(u, webauthn.WithAppIdExtension(appID))
		if err != nil {
			t.Fatal(err)
		}

		if assertion.Response.Extensions.AppID != appID {
			t.Fatalf("BeginLogin dropped the appid extension: %+v", assertion.Response.Extensions)
		}

		resp, err := k.AssertAppID(mustJSON(t, assertion), origin)
		if err != nil {
			t.Fatalf("AssertAppID: %v", err)
		}

		parsed, err := protocol.ParseCredentialRequestResponseBody(strings.NewReader(string(resp)))
		if err != nil {
			t.Fatal(err)
		}

		if a := parsed.ClientExtensionResults.AppID; a == nil || !*a {
			t.Fatal(`response lacks "appid": true`)
		}

		cred, err := rp.ValidateLogin(u, *session, parsed)
		if err != nil {
			t.Fatalf("U2F login %d refused: %v", i, describe(err))
		}

		if cred.Authenticator.SignCount != i || cred.Authenticator.CloneWarning {
			t.Fatalf("login %d: sign count %d, clone warning %v", i, cred.Authenticator.SignCount, cred.Authenticator.CloneWarning)
		}

		u.update(cred)
	}

	if k.Counter() != 3 {
		t.Fatalf("key counter = %d", k.Counter())
	}
}

// TestU2FCOSEStoredKeyFailsAppIDPath pins a go-webauthn v0.18.2 behaviour the provider
// must respect: on the appid path it reads the stored public key as a raw point, so a
// U2F credential whose PublicKey was converted to COSE is refused, and converting it
// back with COSEToU2F makes it work.
func TestU2FCOSEStoredKeyFailsAppIDPath(t *testing.T) {
	rp := newRP(t)
	u := newUser("converted")

	k, err := softauthn.NewU2F(appID, nil)
	if err != nil {
		t.Fatal(err)
	}

	cose, err := u2fkey.U2FToCOSE(k.PublicKeyRaw)
	if err != nil {
		t.Fatal(err)
	}

	u.creds = []webauthn.Credential{{
		ID:                k.KeyHandle,
		PublicKey:         cose,
		AttestationType:   "fido-u2f",
		AttestationFormat: "fido-u2f",
	}}

	try := func() error {
		assertion, session, err := rp.BeginLogin(u, webauthn.WithAppIdExtension(appID))
		if err != nil {
			t.Fatal(err)
		}

		resp, err := k.AssertAppID(mustJSON(t, assertion), origin)
		if err != nil {
			t.Fatal(err)
		}

		_, err = validateLogin(rp, u, session, resp)

		return err
	}

	if err := try(); err == nil || !strings.Contains(describe(err), "Error parsing the assertion public key") {
		t.Fatalf("COSE-stored U2F key: err = %v, want a public key parse failure", err)
	}

	raw, err := u2fkey.COSEToU2F(cose)
	if err != nil {
		t.Fatal(err)
	}

	u.creds[0].PublicKey = raw

	if err := try(); err != nil {
		t.Fatalf("after COSEToU2F: %v", describe(err))
	}
}

func TestU2FRefused(t *testing.T) {
	t.Run("wrong origin", func(t *testing.T) {
		rp := newRP(t)
		u := newUser("o")
		k, _ := softauthn.NewU2F(appID, nil)
		importU2F(t, u, k)

		assertion, session, err := rp.BeginLogin(u, webauthn.WithAppIdExtension(appID))
		if err != nil {
			t.Fatal(err)
		}

		resp, err := k.AssertAppID(mustJSON(t, assertion), "https://evil.test")
		if err != nil {
			t.Fatal(err)
		}

		if _, err = validateLogin(rp, u, session, resp); err == nil || !strings.Contains(describe(err), "Error validating origin") {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("RP did not request appid", func(t *testing.T) {
		rp := newRP(t)
		u := newUser("p")
		k, _ := softauthn.NewU2F(appID, nil)
		importU2F(t, u, k)

		assertion, _, err := rp.BeginLogin(u)
		if err != nil {
			t.Fatal(err)
		}

		if _, err = k.AssertAppID(mustJSON(t, assertion), origin); !errors.Is(err, softauthn.ErrNoAppID) {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("key registered for another AppID", func(t *testing.T) {
		rp := newRP(t)
		u := newUser("q")
		k, _ := softauthn.NewU2F("https://old.example.com", nil)
		importU2F(t, u, k)

		assertion, _, err := rp.BeginLogin(u, webauthn.WithAppIdExtension(appID))
		if err != nil {
			t.Fatal(err)
		}

		if _, err = k.AssertAppID(mustJSON(t, assertion), origin); !errors.Is(err, softauthn.ErrAppID) {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("key handle not allowed", func(t *testing.T) {
		rp := newRP(t)
		u := newUser("r")
		k, _ := softauthn.NewU2F(appID, nil)
		other, _ := softauthn.NewU2F(appID, nil)
		importU2F(t, u, k)

		assertion, _, err := rp.BeginLogin(u, webauthn.WithAppIdExtension(appID))
		if err != nil {
			t.Fatal(err)
		}

		if _, err = other.AssertAppID(mustJSON(t, assertion), origin); !errors.Is(err, softauthn.ErrNoCredential) {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("UV required", func(t *testing.T) {
		rp := newRP(t)
		u := newUser("s")
		k, _ := softauthn.NewU2F(appID, nil)
		importU2F(t, u, k)

		assertion, session, err := rp.BeginLogin(u, webauthn.WithAppIdExtension(appID), webauthn.WithUserVerification(protocol.VerificationRequired))
		if err != nil {
			t.Fatal(err)
		}

		resp, err := k.AssertAppID(mustJSON(t, assertion), origin)
		if err != nil {
			t.Fatal(err)
		}

		if _, err = validateLogin(rp, u, session, resp); err == nil || !strings.Contains(describe(err), "User verification required") {
			t.Fatalf("err = %v", err)
		}
	})

	if _, err := softauthn.NewU2F("", nil); !errors.Is(err, softauthn.ErrConfig) {
		t.Fatalf("NewU2F(\"\") err = %v", err)
	}
}
