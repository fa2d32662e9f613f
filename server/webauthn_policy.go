package server

import (
	"context"

	"github.com/twofactor/twofactor/providers/policy"
	"github.com/twofactor/twofactor/providers/webauthn"
)

// WebAuthnPolicy lets the WebAuthn provider read the stored policy, so that an
// admin's SetPolicy applies to the next login on every replica.
func WebAuthnPolicy(p *policy.Provider) webauthn.PolicySource { return webauthnPolicy{p} }

type webauthnPolicy struct{ p *policy.Provider }

func (w webauthnPolicy) WebAuthnPolicy(ctx context.Context) (webauthn.Policy, error) {
	pol, err := w.p.Get(ctx)
	if err != nil {
		return webauthn.Policy{}, err
	}
	return webauthn.Policy{
		RequireUserVerification: pol.WebAuthnRequireUserVerification,
		PasskeyCompleteLogin:    pol.PasskeyCompleteLogin,
	}, nil
}
