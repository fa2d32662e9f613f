package server

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/twofactor/twofactor/notify"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
)

// ResendChallenge sends a code challenge's message again, only on request.
func (s *challengeService) ResendChallenge(ctx context.Context, req *pb.ResendChallengeRequest) (*pb.ResendChallengeResponse, error) {
	if err := checkChallengeID(req.GetChallengeId()); err != nil {
		return nil, err
	}
	if err := checkIP("context.ip", req.GetContext().GetIp()); err != nil {
		return nil, err
	}
	if len(req.GetLocale()) > maxLocaleLen {
		return nil, invalid("locale", "is longer than %d bytes", maxLocaleLen)
	}
	ch, f, err := s.load(ctx, req.GetChallengeId())
	if err != nil {
		return nil, err
	}
	r, ok := f.Challenge.(Resender)
	if !ok {
		return nil, status.Errorf(codes.FailedPrecondition, "challenge_id: a %s challenge has no message to resend", f.Name)
	}
	if !s.challenges.Answerable(ch) {
		return nil, status.Error(codes.FailedPrecondition, "challenge_id: the challenge is used, expired or out of attempts")
	}
	d, deliveries, err := r.Resend(ctx, ch, ResendInput{Client: req.GetContext(), Locale: req.GetLocale()})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	for _, dl := range deliveries {
		if err := s.deliver(ctx, f.Name, dl, Begun{ID: req.GetChallengeId(), Challenge: ch}); err != nil {
			return nil, err
		}
	}
	s.audit(ctx, req.GetContext(), AuditEvent{Event: notify.EventChallengeBegun, UserID: ch.UserID, Method: f.Name, Result: "resent",
		Details: map[string]string{"challenge_id": ch.ID}})
	return &pb.ResendChallengeResponse{Delivery: d}, nil
}

// GetChallengeStatus tells how a code challenge's message fared.
func (s *challengeService) GetChallengeStatus(ctx context.Context, req *pb.GetChallengeStatusRequest) (*pb.GetChallengeStatusResponse, error) {
	if err := checkChallengeID(req.GetChallengeId()); err != nil {
		return nil, err
	}
	ch, f, err := s.load(ctx, req.GetChallengeId())
	if err != nil {
		return nil, err
	}
	out := &pb.GetChallengeStatusResponse{Method: f.Method, ExpiresAt: timestamppb.New(ch.ExpiresAt),
		RemainingAttempts: uint32(max(ch.MaxAttempts-ch.Attempts, 0))}
	if r, ok := f.Challenge.(DeliveryReporter); ok {
		if out.Delivery, err = r.DeliveryStatus(ctx, ch); err != nil {
			return nil, s.toStatus(ctx, err)
		}
	}
	return out, nil
}
