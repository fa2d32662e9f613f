package webauthn_test

import (
	"context"
	"errors"
	"testing"

	"github.com/twofactor/twofactor/providers/webauthn"
	"github.com/twofactor/twofactor/providers/webauthn/softauthn"
)

// FuzzFinishLogin feeds arbitrary assertion JSON to FinishLogin against a real
// session: it must never panic, never accept anything but the one genuine
// assertion, and only fail with the provider's own sentinels.
func FuzzFinishLogin(f *testing.F) {
	fx := newFixture(f)
	a := newAuth(f, softauthn.Options{})
	fx.register(f, "fuzz", a, false)
	ctx := context.Background()
	session, opts, err := fx.p.BeginLogin(ctx, "fuzz", "")
	if err != nil {
		f.Fatal(err)
	}
	genuine, err := a.Assert(opts, origin, softauthn.AssertOptions{})
	if err != nil {
		f.Fatal(err)
	}
	wrongOrigin, _ := a.Assert(opts, "https://evil.test", softauthn.AssertOptions{})
	f.Add(genuine)
	f.Add(wrongOrigin)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"id":"AA","rawId":"AA","type":"public-key","response":{}}`))
	f.Add([]byte(`null`))
	accepted := 0
	f.Fuzz(func(t *testing.T, body []byte) {
		_, err := fx.p.FinishLogin(ctx, session, "fuzz", body)
		if err == nil {
			accepted++
			if string(body) != string(genuine) || accepted > 1 {
				t.Fatalf("accepted %q", body)
			}
			return
		}
		for _, want := range []error{webauthn.ErrMalformed, webauthn.ErrInvalidAssertion, webauthn.ErrUnknownCredential, webauthn.ErrReplayed, webauthn.ErrCloned} {
			if errors.Is(err, want) {
				return
			}
		}
		t.Fatalf("FinishLogin(%q) failed with a non-sentinel error: %v", body, err)
	})
}

// FuzzParseRecord: stored data that is not a record is refused, never a panic.
func FuzzParseRecord(f *testing.F) {
	f.Add([]byte(`{"credential":{"id":"AQ==","publicKey":"AQ=="},"alg":-7}`))
	f.Add([]byte(`{"pending":true}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := webauthn.ParseRecord(data)
		if err == nil && (len(r.Credential.ID) == 0 || len(r.Credential.PublicKey) == 0) {
			t.Fatalf("ParseRecord(%q) accepted a record without a credential", data)
		}
	})
}

func BenchmarkLogin(b *testing.B) {
	for _, alg := range []softauthn.Alg{softauthn.ES256, softauthn.EdDSA} {
		b.Run(map[softauthn.Alg]string{softauthn.ES256: "ES256", softauthn.EdDSA: "EdDSA"}[alg], func(b *testing.B) {
			fx := newFixture(b)
			a := newAuth(b, softauthn.Options{Algorithm: alg})
			fx.register(b, "bench", a, false)
			ctx := context.Background()
			for b.Loop() {
				session, opts, err := fx.p.BeginLogin(ctx, "bench", "")
				if err != nil {
					b.Fatal(err)
				}
				resp, err := a.Assert(opts, origin, softauthn.AssertOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := fx.p.FinishLogin(ctx, session, "bench", resp); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
