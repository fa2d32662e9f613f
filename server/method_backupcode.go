package server

import (
	"context"
	"errors"
	"strconv"

	"github.com/twofactor/twofactor/notify"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/backupcodes"
	"github.com/twofactor/twofactor/storage"
)

// backupCodeMethod lets a user pass the second factor with one of their own
// backup codes.
type backupCodeMethod struct{ s *Server }

func (m backupCodeMethod) begin(ctx context.Context, in beginInput) (beginOutput, error) {
	if in.FactorID != "" {
		return beginOutput{}, errNoFactor // backup codes are not factors with ids
	}
	ok, err := m.s.backupCodes.Usable(ctx, in.UserID)
	if err != nil {
		return beginOutput{}, err
	}
	if !ok {
		return beginOutput{}, errNoFactor
	}
	return beginOutput{}, nil
}

func (m backupCodeMethod) verify(ctx context.Context, ch *storage.Challenge, ans answer) (verdict, error) {
	if ans.Code == "" {
		return verdict{}, invalid("code", "is required for a backup code challenge")
	}
	res, err := m.s.backupCodes.Verify(ctx, ch.UserID, ans.Code)
	switch {
	case err == nil:
		v := verdict{Accepted: true}
		if res.LowRecorded {
			v.Audit = []AuditEvent{{Event: notify.EventBackupCodesRunningLow, UserID: ch.UserID, Method: backupcodes.Method,
				Details: map[string]string{"remaining": strconv.Itoa(res.Remaining)}}}
		}
		return v, nil
	case errors.Is(err, backupcodes.ErrMalformed):
		return verdict{}, invalid("code", "is not a backup code (10 characters, e.g. XXXXX-XXXXX, without 0, O, 1, I or L)")
	case errors.Is(err, backupcodes.ErrWrongCode), errors.Is(err, backupcodes.ErrNoCodes):
		return verdict{Reason: pb.RejectReason_REJECT_REASON_WRONG_CODE}, nil
	case errors.Is(err, backupcodes.ErrUsed):
		return verdict{Reason: pb.RejectReason_REJECT_REASON_REPLAYED}, nil
	}
	return verdict{}, err
}
