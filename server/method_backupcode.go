package server

import (
	"context"
	"errors"
	"strconv"

	"github.com/twofactor/twofactor/notify"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/backupcodes"
	"github.com/twofactor/twofactor/server/challenge"
)

// backupCodeMethod lets a user pass the second factor with one of their own
// backup codes.
type backupCodeMethod struct{ p *backupcodes.Provider }

func (m backupCodeMethod) Begin(ctx context.Context, in BeginInput) (BeginOutput, error) {
	if in.FactorID != "" {
		return BeginOutput{}, ErrNoFactor // backup codes are not factors with ids
	}
	ok, err := m.p.Usable(ctx, in.UserID)
	if err != nil {
		return BeginOutput{}, err
	}
	if !ok {
		return BeginOutput{}, ErrNoFactor
	}
	return BeginOutput{}, nil
}

func (m backupCodeMethod) Verify(ctx context.Context, ch *challenge.Challenge, ans Answer) (Verdict, error) {
	if ans.Code == "" {
		return Verdict{}, invalid("code", "is required for a backup code challenge")
	}
	res, err := m.p.Verify(ctx, ch.UserID, ans.Code)
	switch {
	case err == nil:
		v := Verdict{Accepted: true}
		if res.LowRecorded {
			v.Audit = []AuditEvent{{Event: notify.EventBackupCodesRunningLow, UserID: ch.UserID, Method: backupcodes.Method,
				Details: map[string]string{"remaining": strconv.Itoa(res.Remaining)}}}
		}
		v.Audit = append(v.Audit, AuditEvent{Event: notify.EventBackupCodeUsed, UserID: ch.UserID, Method: backupcodes.Method, Result: "accepted",
			Details: map[string]string{"challenge_id": ch.ID}})
		return v, nil
	case errors.Is(err, backupcodes.ErrMalformed):
		return Verdict{}, invalid("code", "is not a backup code (10 characters, e.g. XXXXX-XXXXX, without 0, O, 1, I or L)")
	case errors.Is(err, backupcodes.ErrWrongCode), errors.Is(err, backupcodes.ErrNoCodes):
		return Verdict{Reason: pb.RejectReason_REJECT_REASON_WRONG_CODE}, nil
	case errors.Is(err, backupcodes.ErrUsed):
		return Verdict{Reason: pb.RejectReason_REJECT_REASON_REPLAYED}, nil
	}
	return Verdict{}, err
}

// BackupCodeFactor registers the user's own backup codes (recovery, no factor rows).
func BackupCodeFactor(p *backupcodes.Provider) Factor {
	return Factor{Name: backupcodes.Method, Method: pb.Method_METHOD_BACKUP_CODE, LowEntropy: true, Unguessable: true,
		Challenge: backupCodeMethod{p}, Usable: p.Usable}
}
