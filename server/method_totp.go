package server

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/totp"
	"github.com/twofactor/twofactor/server/challenge"
	"github.com/twofactor/twofactor/storage"
)

// TOTPFactor registers TOTP (RFC 6238) authenticator apps.
func TOTPFactor(p *totp.Provider) Factor {
	return Factor{
		Name: totp.Method, Method: pb.Method_METHOD_TOTP, Enrollable: true, LowEntropy: true,
		Challenge: totpMethod{p}, Enroll: totpEnroller{p}, Details: totpDetails, Status: totpStatus,
	}
}

type totpMethod struct{ p *totp.Provider }

// maxTOTPFactors bounds the factors begin looks at when no factor is named; a
// user has a handful at most.
const maxTOTPFactors = 64

func (m totpMethod) Begin(ctx context.Context, in BeginInput) (BeginOutput, error) {
	limit := maxTOTPFactors
	if in.FactorID == "" {
		limit = 2 // enough to tell "exactly one" from "several"
	}
	heads, err := m.p.ActiveFactorHeads(ctx, in.UserID, limit)
	if err != nil {
		return BeginOutput{}, err
	}
	switch {
	case len(heads) == 0:
		return BeginOutput{}, ErrNoFactor
	case in.FactorID == "" && len(heads) == 1:
		// The only factor: bind the challenge to it, and seal it into its id.
		return BeginOutput{FactorID: heads[0].ID, Sealed: true, FromStep: heads[0].LastStep}, nil
	case in.FactorID == "":
		return BeginOutput{}, nil // verify tries each: a stored challenge
	}
	for _, h := range heads {
		if h.ID == in.FactorID {
			return BeginOutput{FactorID: h.ID, Sealed: true, FromStep: h.LastStep}, nil
		}
	}
	return BeginOutput{}, ErrNoFactor
}

func (m totpMethod) Verify(ctx context.Context, ch *challenge.Challenge, ans Answer) (Verdict, error) {
	if ans.Code == "" {
		return Verdict{}, invalid("code", "is required for a TOTP challenge")
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
		case err == nil && ch.Sealed():
			err = m.p.VerifyFrom(ctx, f, ans.Code, ch.FromStep)
		case err == nil:
			err = m.p.Verify(ctx, f, ans.Code)
		}
	} else {
		f, err = m.p.VerifyAny(ctx, ch.UserID, ans.Code)
	}
	switch {
	case err == nil:
		return Verdict{Accepted: true, FactorID: f.ID}, nil
	case errors.Is(err, totp.ErrMalformed):
		return Verdict{}, invalid("code", "%v", err)
	case errors.Is(err, totp.ErrWrongCode), errors.Is(err, storage.ErrNotFound):
		return Verdict{Reason: pb.RejectReason_REJECT_REASON_WRONG_CODE}, nil
	case errors.Is(err, totp.ErrReplayed):
		return Verdict{Reason: pb.RejectReason_REJECT_REASON_REPLAYED}, nil
	case errors.Is(err, totp.ErrSuperseded):
		return Verdict{}, ErrChallengeGone // used up by a concurrent winner
	}
	return Verdict{}, err
}

// totpEnroller sets up an authenticator app: a pending factor with a new seed,
// activated by the first right code.
type totpEnroller struct{ p *totp.Provider }

func (e totpEnroller) Begin(ctx context.Context, req *pb.BeginEnrollmentRequest) (*pb.BeginEnrollmentResponse, error) {
	account := req.GetTotp().GetAccountName()
	if account == "" {
		account = req.GetUserId()
	}
	if err := checkName("totp.account_name", account, true); err != nil {
		return nil, err
	}
	name := req.GetName()
	if name == "" {
		name = "Authenticator app"
	}
	en, err := e.p.BeginEnrollment(ctx, req.GetUserId(), name, account)
	if err != nil {
		return nil, err
	}
	return &pb.BeginEnrollmentResponse{
		FactorId:  en.Factor.ID,
		ExpiresAt: timestamppb.New(en.ExpiresAt),
		Details: &pb.BeginEnrollmentResponse_Totp{Totp: &pb.TotpEnrollment{
			Secret: en.Secret, Uri: en.URI, QrPng: en.QRPNG,
			Algorithm: en.Params.Algorithm, Digits: uint32(en.Params.Digits), PeriodSeconds: uint32(en.Params.Period),
		}},
	}, nil
}

func (e totpEnroller) Finish(ctx context.Context, req *pb.FinishEnrollmentRequest) (*storage.Factor, error) {
	return e.FinishThen(ctx, req, nil)
}

// FinishThen runs then in the activation's transaction (TxFinisher).
func (e totpEnroller) FinishThen(ctx context.Context, req *pb.FinishEnrollmentRequest, then func(ctx context.Context, f *storage.Factor) error) (*storage.Factor, error) {
	if req.GetCode() == "" {
		return nil, invalid("code", "is required to finish a TOTP enrollment")
	}
	f, err := e.p.FinishEnrollmentThen(ctx, req.GetUserId(), req.GetFactorId(), req.GetCode(), then)
	switch {
	case errors.Is(err, totp.ErrMalformed):
		return nil, invalid("code", "%v", err)
	case errors.Is(err, totp.ErrWrongCode):
		return nil, &WrongProof{Field: "code", Message: "wrong code; check the authenticator app's clock and try the current code"}
	}
	return f, err
}

func totpDetails(f *storage.Factor, out *pb.Factor) {
	if p, err := totp.ParseParams(f.Data); err == nil {
		out.Details = &pb.Factor_Totp{Totp: &pb.TotpDetails{Algorithm: p.Algorithm, Digits: uint32(p.Digits), PeriodSeconds: uint32(p.Period)}}
	}
}

func totpStatus(err error) (error, bool) {
	switch {
	case errors.Is(err, totp.ErrNotPending):
		return status.Error(codes.FailedPrecondition, "factor_id: the enrollment is not pending (already finished or removed)"), true
	case errors.Is(err, totp.ErrEnrollmentExpired):
		return status.Error(codes.FailedPrecondition, "factor_id: the enrollment expired or had too many wrong codes; begin again"), true
	}
	return nil, false
}
