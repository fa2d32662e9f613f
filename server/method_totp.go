package server

import (
	"context"
	"errors"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/totp"
	"github.com/twofactor/twofactor/storage"
)

type totpMethod struct{ p *totp.Provider }

// maxTOTPFactors bounds the factors begin looks at when no factor is named; a
// user has a handful at most.
const maxTOTPFactors = 64

func (m totpMethod) begin(ctx context.Context, in beginInput) (beginOutput, error) {
	limit := maxTOTPFactors
	if in.FactorID == "" {
		limit = 2 // enough to tell "exactly one" from "several"
	}
	heads, err := m.p.ActiveFactorHeads(ctx, in.UserID, limit)
	if err != nil {
		return beginOutput{}, err
	}
	switch {
	case len(heads) == 0:
		return beginOutput{}, errNoFactor
	case in.FactorID == "" && len(heads) == 1:
		// The only factor: bind the challenge to it, and seal it into its id.
		return beginOutput{FactorID: heads[0].ID, Sealed: true, FromStep: heads[0].LastStep}, nil
	case in.FactorID == "":
		return beginOutput{}, nil // verify tries each: a stored challenge
	}
	for _, h := range heads {
		if h.ID == in.FactorID {
			return beginOutput{FactorID: h.ID, Sealed: true, FromStep: h.LastStep}, nil
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
		// Read with the challenge; a factor removed or replayed since is refused
		// by the conditional update in Verify.
		if f = ch.Factor; f == nil || f.ID != ch.FactorID || f.UserID != ch.UserID || f.Method != totp.Method || f.State != storage.FactorActive {
			f, err = nil, storage.ErrNotFound
		}
		switch {
		case err == nil && ch.Sealed:
			err = m.p.VerifyFrom(ctx, f, ans.Code, ch.FromStep)
		case err == nil:
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
	case errors.Is(err, totp.ErrSuperseded):
		return verdict{}, errChallengeGone // used up by a concurrent winner
	}
	return verdict{}, err
}
