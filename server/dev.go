package server

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/twofactor/twofactor/notify/tglink"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
)

// DevTelegramChat is the chat id SimulateTelegramStart binds when none is given.
const DevTelegramChat = "100000001"

// devService is DevService: development helpers that answer only when authd's
// wiring provides them (embedded mode with the outbox), and refuse otherwise.
type devService struct {
	pb.UnimplementedDevServiceServer
	*core
	telegramStart func(ctx context.Context, token, chatID string) error
}

// SimulateTelegramStart hands "/start <token>" from a simulated private chat to the
// in-process notifyd (Deps.DevTelegramStart).
func (s *devService) SimulateTelegramStart(ctx context.Context, req *pb.SimulateTelegramStartRequest) (*pb.SimulateTelegramStartResponse, error) {
	if s.telegramStart == nil {
		return nil, status.Error(codes.FailedPrecondition,
			"development only: SimulateTelegramStart answers an embedded authd whose Telegram channel is the development outbox; press Start in Telegram")
	}
	token, err := tglink.TokenFromLink(req.GetLink())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	chat := req.GetChatId()
	if chat == "" {
		chat = DevTelegramChat
	}
	if err := validChatID(chat); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err := s.telegramStart(ctx, token, chat); err != nil {
		s.log.ErrorContext(ctx, "simulated telegram start not published", "error", err.Error())
		return nil, status.Error(codes.Unavailable, "the simulated Start could not be published; try again")
	}
	return &pb.SimulateTelegramStartResponse{ChatId: chat}, nil
}

// validChatID checks a Telegram chat id: an integer, at most 20 digits.
func validChatID(chat string) error {
	digits := chat
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 || len(digits) > 20 {
		return fmt.Errorf("chat_id: want an integer of 1 to 20 digits, got %d characters", len(chat))
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return fmt.Errorf("chat_id: want an integer (digits, optionally after -)")
		}
	}
	return nil
}
