package server

import (
	"context"
	"errors"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/totp"
	"github.com/twofactor/twofactor/storage"
)

type totpMethod struct{ p *totp.Provider }

func (m totpMethod) begin(ctx context.Context, in beginInput) (beginOutput, error) {
	factors, err := m.p.ActiveFactors(ctx, in.UserID)
	if err != nil {
		return beginOutput{}, err
	}
	for _, f := range factors {
		if in.FactorID == "" || f.ID == in.FactorID {
			if in.FactorID != "" {
				return beginOutput{FactorID: f.ID}, nil
			}
			return beginOutput{}, nil
		}
	}
	return beginOutput{}, errNoFactor
}

func (m totpMethod) verify(ctx context.Context, ch *storage.Challenge, ans answer) (verdict, error) {
	if ans.Code == "" {
		return verdict{}, invalid("code", "is required for a TOTP challenge")
	}
	var (
		f   *storage.Factor
		err error
	)
	if ch.FactorID != "" {
		f, err = m.p.ActiveFactor(ctx, ch.UserID, ch.FactorID)
		if err == nil {
			err = m.p.Verify(ctx, f, ans.Code)
		}
	} else {
		f, err = m.p.VerifyAny(ctx, ch.UserID, ans.Code)
	}
	switch {
	case err == nil:
		return verdict{Accepted: true, FactorID: f.ID}, nil
	case errors.Is(err, totp.ErrMalformed):
		return verdict{}, invalid("code", "%v", err)
	case errors.Is(err, totp.ErrWrongCode), errors.Is(err, storage.ErrNotFound):
		return verdict{Reason: pb.RejectReason_REJECT_REASON_WRONG_CODE}, nil
	case errors.Is(err, totp.ErrReplayed):
		return verdict{Reason: pb.RejectReason_REJECT_REASON_REPLAYED}, nil
	}
	return verdict{}, err
}
