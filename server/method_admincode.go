package server

import (
	"context"
	"errors"

	"github.com/twofactor/twofactor/notify"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/admincodes"
	"github.com/twofactor/twofactor/server/challenge"
)

// adminCodeMethod lets a locked-out user pass the second factor with the one-time
// code an admin issued for them.
type adminCodeMethod struct{ p *admincodes.Provider }

func (m adminCodeMethod) Begin(ctx context.Context, in BeginInput) (BeginOutput, error) {
	if in.FactorID != "" {
		return BeginOutput{}, ErrNoFactor // an admin code is not a factor with an id
	}
	st, err := m.p.State(ctx, in.UserID)
	if err != nil {
		return BeginOutput{}, err
	}
	if !st.Usable {
		return BeginOutput{}, ErrNoFactor
	}
	return BeginOutput{}, nil
}

func (m adminCodeMethod) Verify(ctx context.Context, ch *challenge.Challenge, ans Answer) (Verdict, error) {
	if ans.Code == "" {
		return Verdict{}, invalid("code", "is required for an admin code challenge")
	}
	used, err := m.p.Verify(ctx, ch.UserID, ans.Code)
	switch {
	case err == nil:
		return Verdict{Accepted: true, Audit: []AuditEvent{{Event: notify.EventAdminCodeUsed, UserID: ch.UserID, Method: admincodes.Method, Result: "accepted",
			Details: map[string]string{"issued_by": used.IssuedBy, "issued_at": used.IssuedAt.UTC().Format("2006-01-02T15:04:05Z")}}}}, nil
	case errors.Is(err, admincodes.ErrMalformed):
		return Verdict{}, invalid("code", "is not an admin code (16 characters, e.g. XXXX-XXXX-XXXX-XXXX)")
	case errors.Is(err, admincodes.ErrWrongCode), errors.Is(err, admincodes.ErrNoCode), errors.Is(err, admincodes.ErrExpired):
		v := Verdict{Reason: pb.RejectReason_REJECT_REASON_WRONG_CODE}
		// An expired code is told apart only in the audit trail, not to the caller.
		if errors.Is(err, admincodes.ErrExpired) {
			v.Audit = []AuditEvent{{Event: notify.EventAdminCodeExpired, UserID: ch.UserID, Method: admincodes.Method, Result: "rejected"}}
		}
		return v, nil
	case errors.Is(err, admincodes.ErrUsed):
		return Verdict{Reason: pb.RejectReason_REJECT_REASON_REPLAYED}, nil
	}
	return Verdict{}, err
}

// AdminCodeFactor registers the one-time codes admins issue to locked-out users.
func AdminCodeFactor(p *admincodes.Provider) Factor {
	return Factor{Name: admincodes.Method, Method: pb.Method_METHOD_ADMIN_CODE, AdminIssued: true, LowEntropy: true, Unguessable: true,
		Challenge: adminCodeMethod{p}, Usable: func(ctx context.Context, userID string) (bool, error) {
			st, err := p.State(ctx, userID)
			return st.Usable, err
		}}
}
