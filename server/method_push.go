package server

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/twofactor/twofactor/notify"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/push"
	"github.com/twofactor/twofactor/server/challenge"
	"github.com/twofactor/twofactor/storage"
)

// PushPublisher is what push approval needs of NATS (notify.Publisher): publish
// the opaque push request for notifyd, and wait for answers given on any replica.
type PushPublisher interface {
	PublishPushRequest(ctx context.Context, r notify.PushRequest) error
	push.Waker
}

// PushFactor registers push approval: enrolled devices (DeviceService) approve a
// login with number matching. pub may be nil (no NATS): devices then poll, and a
// waiting VerifyChallenge only reads the store once.
func PushFactor(p *push.Service, pub PushPublisher) Factor {
	return Factor{
		Name: push.Method, Method: pb.Method_METHOD_PUSH, Enrollable: true,
		Challenge: pushMethod{p, pub}, Enroll: pushEnroller{p}, Status: pushStatus,
	}
}

type pushMethod struct {
	p   *push.Service
	pub PushPublisher
}

// Begin stores the push challenge (its id is the login challenge's session) and
// asks for one delivery: the push request on NATS, published after the login
// challenge is stored. The request names the challenge, the user and the expiry,
// never the number or the login's context.
func (m pushMethod) Begin(ctx context.Context, in BeginInput) (BeginOutput, error) {
	b, err := m.p.Begin(ctx, push.BeginInput{UserID: in.UserID, Client: in.Client.GetClient(),
		ClientIP: in.Client.GetIp(), UserAgent: in.Client.GetUserAgent()})
	if errors.Is(err, push.ErrNoDevice) {
		return BeginOutput{}, ErrNoFactor
	}
	if err != nil {
		return BeginOutput{}, err
	}
	mode := map[string]pb.NumberMode{push.NumberDigits: pb.NumberMode_NUMBER_MODE_DIGITS,
		push.NumberChoice: pb.NumberMode_NUMBER_MODE_CHOICE, push.NumberNone: pb.NumberMode_NUMBER_MODE_NONE}[m.p.Config().NumberMode]
	out := BeginOutput{Session: []byte(b.ChallengeID),
		Respond: func(resp *pb.BeginChallengeResponse) {
			resp.Push = &pb.PushChallenge{Number: b.Number, NumberMode: mode, Devices: uint32(len(b.Devices))}
			resp.ExpiresAt = timestamppb.New(b.ExpiresAt)
		}}
	if m.pub != nil {
		out.Deliveries = []Delivery{pushDelivery{m.p, m.pub, notify.PushRequest{ChallengeID: b.ChallengeID, UserID: in.UserID, ExpiresAt: b.ExpiresAt}}}
	}
	return out, nil
}

type pushDelivery struct {
	p   *push.Service
	pub PushPublisher
	req notify.PushRequest
}

func (d pushDelivery) Deliver(ctx context.Context, _ Begun) error {
	return d.pub.PublishPushRequest(ctx, d.req)
}

// Undo withdraws the push whose request was not published: it neither blocks
// the user's next push nor counts toward the day's cap or the backoff.
func (d pushDelivery) Undo(ctx context.Context) error {
	_, err := d.p.Withdraw(ctx, d.req.UserID, d.req.ChallengeID)
	return err
}

func pushID(ch *challenge.Challenge) string { return string(ch.Session) }

// Wait long-polls, outside any transaction, until a device answered or the wait
// the caller gave ends; the announcement of an answer on any replica wakes it.
func (m pushMethod) Wait(ctx context.Context, ch *challenge.Challenge, ans Answer) (bool, error) {
	if !ans.Push {
		return false, invalid("push", "is required for a push challenge")
	}
	var w push.Waker
	if m.pub != nil {
		w = m.pub
	}
	pending, err := m.p.Wait(ctx, w, ch.UserID, pushID(ch), ans.PushWait)
	if errors.Is(err, push.ErrNotFound) {
		return false, ErrChallengeGone
	}
	return pending, err
}

// Verify redeems the device's answer once: an approval accepts, a denial (or a
// wrong number, or "this was not me") rejects and is counted as a failure.
func (m pushMethod) Verify(ctx context.Context, ch *challenge.Challenge, _ Answer) (Verdict, error) {
	st, err := m.p.Verify(ctx, ch.UserID, pushID(ch))
	switch {
	case errors.Is(err, push.ErrNotFound):
		return Verdict{}, ErrChallengeGone
	case err != nil:
		return Verdict{}, err
	}
	switch st {
	case push.StatusAccepted:
		return Verdict{Accepted: true}, nil
	case push.StatusDenied:
		return Verdict{Reason: pb.RejectReason_REJECT_REASON_DENIED}, nil
	}
	return Verdict{}, ErrChallengeGone // expired, or redeemed by a concurrent verifier
}

// pushEnroller issues a device's one-time enrollment token; the device finishes
// with DeviceService.FinishDeviceEnrollment, which creates the factor.
type pushEnroller struct{ p *push.Service }

func (e pushEnroller) Begin(ctx context.Context, req *pb.BeginEnrollmentRequest) (*pb.BeginEnrollmentResponse, error) {
	en, err := e.p.BeginEnrollment(ctx, req.GetUserId(), "")
	if err != nil {
		return nil, err
	}
	return &pb.BeginEnrollmentResponse{ExpiresAt: timestamppb.New(en.ExpiresAt),
		Details: &pb.BeginEnrollmentResponse_Push{Push: &pb.PushEnrollment{Token: en.Token, Uri: en.URI, QrPng: en.QRPNG,
			VapidPublicKey: en.VAPIDPublicKey}}}, nil
}

func (pushEnroller) Finish(context.Context, *pb.FinishEnrollmentRequest) (*storage.Factor, error) {
	return nil, status.Error(codes.FailedPrecondition, "factor_id: a push device finishes its enrollment itself (DeviceService.FinishDeviceEnrollment)")
}

// pushStatus maps the push factor's errors met in the login and enrollment APIs.
func pushStatus(err error) (error, bool) {
	var le *push.LimitError
	var ie *push.InputError
	var ec *push.EnrollmentCapError
	switch {
	case errors.As(err, &ec):
		return status.Errorf(codes.FailedPrecondition, "user_id: the user has %d push enrollments waiting, the most allowed is %d; finish one or let it expire first",
			ec.Have, ec.Limit), true
	case errors.As(err, &le):
		msg := "user_id: push refused (" + le.Reason + "), retry after " + le.RetryAfter.Round(1e9).String()
		if le.Reason == push.LimitLocked {
			msg = "user_id: push approval is locked after \"this was not me\"; sign in with another factor"
		}
		return status.Error(codes.ResourceExhausted, msg), true
	case errors.As(err, &ie):
		return status.Error(codes.InvalidArgument, ie.Error()), true
	}
	return nil, false
}
