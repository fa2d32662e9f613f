package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/otpcode"
	"github.com/twofactor/twofactor/server/challenge"
	"github.com/twofactor/twofactor/storage"
)

// OutOfBandSender hands a code's (or a notice's) message to the delivery
// workers: GatewaySender publishes it on NATS. The Send holds secrets in clear,
// in memory only; a sender must not log or store them in clear.
type OutOfBandSender interface {
	SendOutOfBand(ctx context.Context, s *otpcode.Send) error
}

// otpMethods maps the code channels to their wire values.
var otpMethods = []struct {
	name   string
	method pb.Method
}{
	{otpcode.Email, pb.Method_METHOD_EMAIL},
	{otpcode.SMS, pb.Method_METHOD_SMS},
	{otpcode.Telegram, pb.Method_METHOD_TELEGRAM},
	{otpcode.Signal, pb.Method_METHOD_SIGNAL},
}

// OTPCodeFactors registers the code channels (email, SMS, Telegram, Signal),
// one Factor each, sharing one provider and one sender. channels lists those to
// register (nil: all four).
func OTPCodeFactors(p *otpcode.Provider, out OutOfBandSender, channels ...string) []Factor {
	var fs []Factor
	for _, m := range otpMethods {
		if len(channels) > 0 && !contains(channels, m.name) {
			continue
		}
		fs = append(fs, Factor{
			Name: m.name, Method: m.method, Enrollable: true, LowEntropy: otpcode.LowEntropy(),
			Challenge: otpMethod{p: p, out: out, channel: m.name},
			Enroll:    otpEnroller{p: p, out: out, channel: m.name},
			Details:   otpDetails, Status: otpStatus,
		})
	}
	return fs
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

type otpMethod struct {
	p       *otpcode.Provider
	out     OutOfBandSender
	channel string
}

// sendDelivery publishes one Send once the challenge is stored.
type sendDelivery struct {
	p    *otpcode.Provider
	out  OutOfBandSender
	send *otpcode.Send
}

func (d sendDelivery) Deliver(ctx context.Context, _ Begun) error {
	return d.out.SendOutOfBand(ctx, d.send)
}

// Undo takes back the send, never published, from the daily caps.
func (d sendDelivery) Undo(ctx context.Context) error {
	_, err := d.p.Unsend(ctx, d.send)
	return err
}

// Begin draws the challenge's code; the code's own row (its keyed hash, its
// sealed form, its counts) is named by the challenge's Session.
func (m otpMethod) Begin(ctx context.Context, in BeginInput) (BeginOutput, error) {
	c, err := m.p.BeginChallenge(ctx, otpcode.ChallengeInput{UserID: in.UserID, Channel: m.channel, FactorID: in.FactorID,
		Locale: in.Locale, Client: describeClient(in.Client)})
	switch {
	case errors.Is(err, otpcode.ErrNoFactor):
		return BeginOutput{}, ErrNoFactor
	case errors.Is(err, otpcode.ErrChooseFactor):
		return BeginOutput{}, invalid("factor_id", "is required: the user has several %s factors", m.channel)
	case err != nil:
		return BeginOutput{}, err
	}
	st, err := m.p.Status(ctx, in.UserID, c.ID)
	if err != nil {
		return BeginOutput{}, err
	}
	return BeginOutput{
		FactorID: c.FactorID, Session: []byte(c.ID),
		Deliveries: []Delivery{sendDelivery{p: m.p, out: m.out, send: c.Send}},
		Respond: func(resp *pb.BeginChallengeResponse) {
			resp.OutOfBand = &pb.OutOfBandChallenge{MaskedDestination: c.Masked, CodeDigits: uint32(c.Digits), Delivery: deliveryToPB(st)}
		},
	}, nil
}

// describeClient is the requesting client as a message names it.
func describeClient(c *pb.ClientContext) string {
	switch {
	case c.GetClient() != "" && c.GetIp() != "":
		return c.GetClient() + ", " + c.GetIp()
	case c.GetClient() != "":
		return c.GetClient()
	}
	return c.GetIp()
}

// Verify checks a code: the provider counts the attempt before it compares.
func (m otpMethod) Verify(ctx context.Context, ch *challenge.Challenge, ans Answer) (Verdict, error) {
	if ans.Code == "" {
		return Verdict{}, invalid("code", "is required for a %s challenge", m.channel)
	}
	res, err := m.p.Verify(ctx, ch.UserID, string(ch.Session), ans.Code)
	switch {
	case err == nil && res.Accepted:
		return Verdict{Accepted: true, FactorID: res.FactorID}, nil
	case errors.Is(err, otpcode.ErrMalformed):
		return Verdict{}, invalid("code", "%v", err)
	case errors.Is(err, otpcode.ErrWrongCode), errors.Is(err, otpcode.ErrNoFactor), errors.Is(err, storage.ErrNotFound):
		return Verdict{Reason: pb.RejectReason_REJECT_REASON_WRONG_CODE}, nil
	case errors.Is(err, otpcode.ErrUsed), errors.Is(err, otpcode.ErrNoAttemptsLeft), errors.Is(err, otpcode.ErrExpired):
		return Verdict{}, ErrChallengeGone
	case err == nil:
		return Verdict{}, fmt.Errorf("%s verify: neither accepted nor refused", m.channel)
	}
	return Verdict{}, err
}

// Resend sends the challenge's code again.
func (m otpMethod) Resend(ctx context.Context, ch *challenge.Challenge, in ResendInput) (*pb.DeliveryStatus, []Delivery, error) {
	send, err := m.p.Resend(ctx, otpcode.ResendInput{UserID: ch.UserID, ID: string(ch.Session), Locale: in.Locale, Client: describeClient(in.Client)})
	if err != nil {
		return nil, nil, err
	}
	st, err := m.p.Status(ctx, ch.UserID, string(ch.Session))
	if err != nil {
		return nil, nil, err
	}
	return deliveryToPB(st), []Delivery{sendDelivery{p: m.p, out: m.out, send: send}}, nil
}

// DeliveryStatus reports how the challenge's message fared.
func (m otpMethod) DeliveryStatus(ctx context.Context, ch *challenge.Challenge) (*pb.DeliveryStatus, error) {
	st, err := m.p.Status(ctx, ch.UserID, string(ch.Session))
	if err != nil {
		return nil, err
	}
	return deliveryToPB(st), nil
}

var deliveryStates = map[string]pb.DeliveryState{
	storage.DeliveryQueued:    pb.DeliveryState_DELIVERY_STATE_QUEUED,
	storage.DeliveryDelivered: pb.DeliveryState_DELIVERY_STATE_DELIVERED,
	storage.DeliveryFailed:    pb.DeliveryState_DELIVERY_STATE_FAILED,
}

func deliveryToPB(st otpcode.Status) *pb.DeliveryStatus {
	out := &pb.DeliveryStatus{State: deliveryStates[st.Delivery.State], Reason: st.Delivery.Reason,
		UpdatedAt: timestamppb.New(st.Delivery.At), Sends: uint32(st.Sends)}
	if !st.NextResendAt.IsZero() {
		out.ResendAfter = timestamppb.New(st.NextResendAt)
	}
	return out
}

func otpDetails(f *storage.Factor, out *pb.Factor) {
	a := otpcode.ChannelAssurance(f.Method)
	out.Details = &pb.Factor_OutOfBand{OutOfBand: &pb.OutOfBandDetails{
		MaskedDestination: otpcode.MaskedDestination(f), OutOfBand: a.OutOfBand, Restricted: a.Restricted}}
}

// otpStatus maps the provider's errors that reach toStatus.
func otpStatus(err error) (error, bool) {
	var cd *otpcode.CooldownError
	switch {
	case errors.As(err, &cd):
		return retryStatus(fmt.Sprintf("challenge_id: %v", cd), cd.RetryAfter), true
	case errors.Is(err, otpcode.ErrSendCap):
		return status.Error(codes.ResourceExhausted, "user_id: the daily limit of codes sent to this user or destination is reached; use another method"), true
	case errors.Is(err, otpcode.ErrResendLimit):
		return status.Error(codes.ResourceExhausted, "challenge_id: the code was resent as often as allowed; begin a new challenge"), true
	case errors.Is(err, otpcode.ErrUsed), errors.Is(err, otpcode.ErrExpired), errors.Is(err, otpcode.ErrNoAttemptsLeft):
		return status.Error(codes.FailedPrecondition, "challenge_id: the challenge is used, expired or out of attempts"), true
	case errors.Is(err, otpcode.ErrDestination):
		return status.Error(codes.InvalidArgument, "out_of_band.destination: "+err.Error()), true
	case errors.Is(err, otpcode.ErrTelegramPending):
		return status.Error(codes.FailedPrecondition, "factor_id: "+err.Error()+"; open the link first"), true
	case errors.Is(err, otpcode.ErrTelegramDisabled):
		return status.Error(codes.FailedPrecondition, "method: "+err.Error()), true
	case errors.Is(err, otpcode.ErrNotPending):
		return status.Error(codes.FailedPrecondition, "factor_id: the enrollment is not pending (already finished or removed)"), true
	case errors.Is(err, otpcode.ErrEnrollmentExpired):
		return status.Error(codes.FailedPrecondition, "factor_id: the enrollment expired or had too many wrong codes; begin again"), true
	case errors.Is(err, otpcode.ErrNoFactor):
		return status.Error(codes.FailedPrecondition, "factor_id: no such active factor of this method"), true
	}
	return nil, false
}

// retryStatus is ResourceExhausted with a google.rpc.RetryInfo detail.
func retryStatus(msg string, wait time.Duration) error {
	st := status.New(codes.ResourceExhausted, msg)
	if with, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: retryAfter(wait)}); err == nil {
		st = with
	}
	return st.Err()
}
