package server

import (
	"context"
	"errors"
	"strconv"

	"github.com/twofactor/twofactor/notify"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/webauthn"
	"github.com/twofactor/twofactor/server/challenge"
)

// WebAuthnFactor registers WebAuthn: security keys, passkeys and imported U2F keys.
func WebAuthnFactor(p *webauthn.Provider) Factor {
	return Factor{
		Name: webauthn.Method, Method: pb.Method_METHOD_WEBAUTHN, Enrollable: true, Unguessable: true, FindsUser: true,
		Challenge: webauthnMethod{p}, Enroll: webauthnEnroller{p}, Details: webauthnDetails, Status: webauthnStatus,
	}
}

// webauthnMethod runs WebAuthn challenges: security keys, passkeys (also without a
// user id, the user being found from the credential) and imported U2F keys.
type webauthnMethod struct{ p *webauthn.Provider }

func (m webauthnMethod) Begin(ctx context.Context, in BeginInput) (BeginOutput, error) {
	if in.UserID == "" {
		if in.FactorID != "" {
			return BeginOutput{}, invalid("factor_id", "needs user_id; a passkey login without user_id cannot name a factor")
		}
		session, opts, err := m.p.BeginDiscoverableLogin(ctx)
		if err != nil {
			return BeginOutput{}, err
		}
		return BeginOutput{Session: session, OptionsJSON: string(opts)}, nil
	}
	session, opts, err := m.p.BeginLogin(ctx, in.UserID, in.FactorID)
	if errors.Is(err, webauthn.ErrNoCredentials) {
		return BeginOutput{}, ErrNoFactor
	}
	if err != nil {
		return BeginOutput{}, err
	}
	return BeginOutput{FactorID: in.FactorID, Session: session, OptionsJSON: string(opts)}, nil
}

func (m webauthnMethod) Verify(ctx context.Context, ch *challenge.Challenge, ans Answer) (Verdict, error) {
	if ans.AssertionJSON == "" {
		return Verdict{}, invalid("webauthn_assertion_json", "is required for a WebAuthn challenge")
	}
	res, err := m.p.FinishLogin(ctx, ch.Session, ch.UserID, []byte(ans.AssertionJSON))
	var v Verdict
	if res != nil {
		v.UserID, v.FactorID = res.UserID, res.Factor.ID
	}
	switch {
	case err == nil:
		v.Accepted, v.CompleteLogin = true, res.CompleteLogin
		return v, nil
	case errors.Is(err, webauthn.ErrMalformed):
		return Verdict{}, invalid("webauthn_assertion_json", "%v", err)
	case errors.Is(err, webauthn.ErrUnknownCredential):
		v.Reason = pb.RejectReason_REJECT_REASON_UNKNOWN_CREDENTIAL
	case errors.Is(err, webauthn.ErrInvalidAssertion):
		v.Reason = pb.RejectReason_REJECT_REASON_INVALID_ASSERTION
	case errors.Is(err, webauthn.ErrUserVerification):
		v.Reason = pb.RejectReason_REJECT_REASON_USER_VERIFICATION_REQUIRED
	case errors.Is(err, webauthn.ErrReplayed):
		v.Reason = pb.RejectReason_REJECT_REASON_REPLAYED
	case errors.Is(err, webauthn.ErrCloned):
		v.Reason = pb.RejectReason_REJECT_REASON_CLONED_AUTHENTICATOR
		if res != nil && res.SignCount <= res.StoredSignCount && !(res.SignCount == 0 && res.StoredSignCount == 0) {
			v.Audit = append(v.Audit, AuditEvent{Event: notify.EventWebAuthnCounterRegressed, UserID: res.UserID, Method: webauthn.Method,
				Result: "refused", Details: map[string]string{
					"challenge_id": ch.ID, "factor_id": res.Factor.ID,
					"stored_sign_count": strconv.FormatUint(uint64(res.StoredSignCount), 10),
					"sign_count":        strconv.FormatUint(uint64(res.SignCount), 10),
				}})
		}
	default:
		return Verdict{}, err
	}
	// A refused passkey login (begun without a user) does not tell the caller whose
	// credential was presented; the audit record has it.
	if ch.UserID == "" {
		v.UserID, v.FactorID = "", ""
	}
	return v, nil
}
