package server

import (
	"context"
	"errors"

	"github.com/twofactor/twofactor/notify"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/admincodes"
	"github.com/twofactor/twofactor/storage"
)

// adminCodeMethod lets a locked-out user pass the second factor with the one-time
// code an admin issued for them.
type adminCodeMethod struct{ s *Server }

func (m adminCodeMethod) begin(ctx context.Context, in beginInput) (beginOutput, error) {
	if in.FactorID != "" {
		return beginOutput{}, errNoFactor // an admin code is not a factor with an id
	}
	st, err := m.s.adminCodes.State(ctx, in.UserID)
	if err != nil {
		return beginOutput{}, err
	}
	if !st.Usable {
		return beginOutput{}, errNoFactor
	}
	return beginOutput{}, nil
}

func (m adminCodeMethod) verify(ctx context.Context, ch *storage.Challenge, ans answer) (verdict, error) {
	if ans.Code == "" {
		return verdict{}, invalid("code", "is required for an admin code challenge")
	}
	used, err := m.s.adminCodes.Verify(ctx, ch.UserID, ans.Code)
	switch {
	case err == nil:
		return verdict{Accepted: true, Audit: []AuditEvent{{Event: notify.EventAdminCodeUsed, UserID: ch.UserID, Method: admincodes.Method, Result: "accepted",
			Details: map[string]string{"issued_by": used.IssuedBy, "issued_at": used.IssuedAt.UTC().Format("2006-01-02T15:04:05Z")}}}}, nil
	case errors.Is(err, admincodes.ErrMalformed):
		return verdict{}, invalid("code", "is not an admin code (16 characters, e.g. XXXX-XXXX-XXXX-XXXX)")
	case errors.Is(err, admincodes.ErrWrongCode), errors.Is(err, admincodes.ErrNoCode), errors.Is(err, admincodes.ErrExpired):
		v := verdict{Reason: pb.RejectReason_REJECT_REASON_WRONG_CODE}
		// An expired code is told apart only in the audit trail, not to the caller.
		if errors.Is(err, admincodes.ErrExpired) {
			v.Audit = []AuditEvent{{Event: notify.EventAdminCodeExpired, UserID: ch.UserID, Method: admincodes.Method, Result: "rejected"}}
		}
		return v, nil
	case errors.Is(err, admincodes.ErrUsed):
		return verdict{Reason: pb.RejectReason_REJECT_REASON_REPLAYED}, nil
	}
	return verdict{}, err
}
