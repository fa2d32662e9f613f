package server

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/otpcode"
	"github.com/twofactor/twofactor/storage"
)

// otpEnroller enrolls a destination: a code round trip (email, SMS, Signal),
// or a Telegram deep link whose /start binds the chat.
type otpEnroller struct {
	p       *otpcode.Provider
	out     OutOfBandSender
	channel string
}

func (e otpEnroller) Begin(ctx context.Context, req *pb.BeginEnrollmentRequest) (*pb.BeginEnrollmentResponse, error) {
	opts := req.GetOutOfBand()
	if e.channel != otpcode.Telegram && opts.GetDestination() == "" {
		return nil, invalid("out_of_band.destination", "is required for %s", e.channel)
	}
	if r := opts.GetReplacesFactorId(); r != "" {
		if err := checkID("out_of_band.replaces_factor_id", r); err != nil {
			return nil, err
		}
	}
	if len(opts.GetLocale()) > otpcode.MaxLocaleLen {
		return nil, invalid("out_of_band.locale", "is longer than %d bytes", otpcode.MaxLocaleLen)
	}
	en, err := e.p.BeginEnrollment(ctx, otpcode.EnrollInput{UserID: req.GetUserId(), Channel: e.channel,
		Destination: opts.GetDestination(), Name: req.GetName(), Replaces: opts.GetReplacesFactorId(), Locale: opts.GetLocale()})
	if errors.Is(err, otpcode.ErrNoFactor) {
		return nil, notFound("out_of_band.replaces_factor_id", opts.GetReplacesFactorId())
	}
	if err != nil {
		return nil, err
	}
	details := &pb.OutOfBandEnrollment{MaskedDestination: en.Masked, TelegramLink: en.Link}
	if en.Send != nil {
		if err := e.deliver(ctx, en.Send); err != nil {
			// The caller never learns the factor's id: remove it rather than
			// let it hold a slot of the cap until it expires.
			actx, cancel := detached(ctx)
			defer cancel()
			if aerr := e.p.Abandon(actx, req.GetUserId(), en.Factor.ID); aerr != nil {
				var de *deliveryError
				if errors.As(err, &de) {
					de.undoErr = errors.Join(de.undoErr, fmt.Errorf("abandoning the pending factor: %w", aerr))
				}
			}
			return nil, err
		}
		details.CodeDigits = uint32(e.p.Config().Digits)
		if st, err := e.p.Status(ctx, req.GetUserId(), en.Factor.ID); err == nil {
			details.Delivery = deliveryToPB(st)
		}
	}
	return &pb.BeginEnrollmentResponse{FactorId: en.Factor.ID, ExpiresAt: timestamppb.New(en.ExpiresAt),
		Details: &pb.BeginEnrollmentResponse_OutOfBand{OutOfBand: details}}, nil
}

// Finish proves the destination with its code; a Telegram factor is finished
// by its chat's binding, and Finish then returns it. A replaced destination's
// notice is handed over in the activation's transaction: when it cannot be
// published the replacement is undone (the old factor active, the new one
// pending, its code good for a retry) and the answer is Unavailable; the
// retried Finish replaces and tells, under the same notice id.
func (e otpEnroller) Finish(ctx context.Context, req *pb.FinishEnrollmentRequest) (*storage.Factor, error) {
	return e.FinishThen(ctx, req, nil)
}

// FinishThen runs then in the activation's transaction (TxFinisher), before the
// notice is handed over: a failure of then sends nothing. A Telegram factor was
// activated by its chat's binding; then runs in a transaction of its own.
func (e otpEnroller) FinishThen(ctx context.Context, req *pb.FinishEnrollmentRequest, then func(ctx context.Context, f *storage.Factor) error) (*storage.Factor, error) {
	if e.channel == otpcode.Telegram {
		return e.p.TelegramFactorThen(ctx, req.GetUserId(), req.GetFactorId(), then)
	}
	if req.GetCode() == "" {
		return nil, invalid("code", "is required to finish a %s enrollment", e.channel)
	}
	var published error
	fin, res, err := e.p.FinishEnrollmentThen(ctx, req.GetUserId(), req.GetFactorId(), req.GetCode(),
		func(ctx context.Context, fin *otpcode.Finished) error {
			if then != nil {
				if err := then(ctx, fin.Factor); err != nil {
					return err
				}
			}
			if fin.Notice == nil {
				return nil
			}
			published = sendNotice(ctx, e.out, fin.Notice)
			return published
		})
	switch {
	case errors.Is(err, otpcode.ErrMalformed):
		return nil, invalid("code", "%v", err)
	case errors.Is(err, otpcode.ErrWrongCode):
		return nil, &WrongProof{Field: "code", Message: "wrong code; " + remainingText(res.Remaining)}
	case published != nil: // the transaction was undone with it
		return nil, &deliveryError{method: e.channel, err: published}
	case err != nil:
		return nil, err
	}
	return fin.Factor, nil
}

func remainingText(n int) string {
	if n == 1 {
		return "1 attempt left"
	}
	return fmt.Sprintf("%d attempts left", n)
}

// ResendEnrollmentCode sends a pending factor's code again.
func (s *enrollmentService) ResendEnrollmentCode(ctx context.Context, req *pb.ResendEnrollmentCodeRequest) (*pb.ResendEnrollmentCodeResponse, error) {
	if err := checkUserID("user_id", req.GetUserId()); err != nil {
		return nil, err
	}
	if err := checkID("factor_id", req.GetFactorId()); err != nil {
		return nil, err
	}
	if len(req.GetLocale()) > otpcode.MaxLocaleLen {
		return nil, invalid("locale", "is longer than %d bytes", otpcode.MaxLocaleLen)
	}
	f, err := s.store.GetFactor(ctx, req.GetUserId(), req.GetFactorId())
	if errors.Is(err, storage.ErrNotFound) {
		return nil, notFound("factor_id", req.GetFactorId())
	}
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	desc, ok := s.factors.named(f.Method)
	en, isOTP := desc.Enroll.(otpEnroller)
	if !ok || !isOTP || f.State != storage.FactorPending {
		return nil, status.Errorf(codes.FailedPrecondition, "factor_id: not a pending factor whose code can be resent")
	}
	send, err := en.p.Resend(ctx, otpcode.ResendInput{UserID: f.UserID, ID: f.ID, Locale: req.GetLocale()})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	if err := s.deliver(ctx, f.Method, sendDelivery{p: en.p, out: en.out, send: send}, Begun{}); err != nil {
		return nil, err
	}
	st, err := en.p.Status(ctx, f.UserID, f.ID)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &pb.ResendEnrollmentCodeResponse{Delivery: deliveryToPB(st)}, nil
}

// deliver publishes an enrollment's code. A failure is a *deliveryError
// (Unavailable); a send that certainly published nothing is first taken back
// from the daily caps.
func (e otpEnroller) deliver(ctx context.Context, send *otpcode.Send) error {
	dl := sendDelivery{p: e.p, out: e.out, send: send}
	if err := dl.Deliver(ctx, Begun{}); err != nil {
		return failedDelivery(ctx, e.channel, dl, err)
	}
	return nil
}
