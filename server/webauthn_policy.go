package server

import (
	"context"
	"errors"
	"sync/atomic"

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

// PolicyRef is a WebAuthn policy source whose policy provider is set once it
// exists: the policy is built from the factor registry, which holds the WebAuthn
// factor, so the WebAuthn provider is built first (see server/app).
type PolicyRef struct {
	p atomic.Pointer[policy.Provider]
}

// Set names the policy provider to read.
func (r *PolicyRef) Set(p *policy.Provider) { r.p.Store(p) }

// WebAuthnPolicy reads the stored policy (an error until Set).
func (r *PolicyRef) WebAuthnPolicy(ctx context.Context) (webauthn.Policy, error) {
	p := r.p.Load()
	if p == nil {
		return webauthn.Policy{}, errors.New("server: WebAuthn policy read before the policy was set")
	}
	return WebAuthnPolicy(p).WebAuthnPolicy(ctx)
}
