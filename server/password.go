package server

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/breached"
)

// PasswordChecker is what PasswordService needs of providers/breached (a range-API
// client or an offline list).
type PasswordChecker interface {
	Check(ctx context.Context, password string) (breached.Result, error)
	CheckSHA1(ctx context.Context, hexDigest string) (breached.Result, error)
}

// CheckPassword looks a password (or its SHA-1) up in the breach corpus.
func (s *passwordService) CheckPassword(ctx context.Context, req *pb.CheckPasswordRequest) (*pb.CheckPasswordResponse, error) {
	var (
		res breached.Result
		err error
	)
	switch in := req.GetInput().(type) {
	case *pb.CheckPasswordRequest_Password:
		if in.Password == "" {
			return nil, invalid("password", "is empty")
		}
		if len(in.Password) > 1024 {
			return nil, invalid("password", "is longer than 1024 bytes")
		}
		res, err = s.breached.Check(ctx, in.Password)
	case *pb.CheckPasswordRequest_Sha1Hex:
		res, err = s.breached.CheckSHA1(ctx, in.Sha1Hex)
		if errors.Is(err, breached.ErrInvalidDigest) {
			return nil, invalid("sha1_hex", "must be 40 hexadecimal characters")
		}
	default:
		return nil, invalid("input", "is required: set password or sha1_hex")
	}
	if errors.Is(err, breached.ErrUnavailable) {
		return nil, status.Error(codes.Unavailable, "the breached-password lookup is unavailable and the service fails closed; try again later")
	}
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &pb.CheckPasswordResponse{Breached: res.Breached, Count: res.Count, Checked: res.Checked}, nil
}
