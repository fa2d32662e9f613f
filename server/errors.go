package server

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/twofactor/twofactor/providers/admincodes"
	"github.com/twofactor/twofactor/providers/apppasswords"
	"github.com/twofactor/twofactor/providers/policy"
	"github.com/twofactor/twofactor/providers/totp"
	"github.com/twofactor/twofactor/storage"
)

// toStatus is the one place provider and storage errors become gRPC statuses.
// Unknown errors become Internal with a request id and are logged, never shown.
func (s *Server) toStatus(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	case errors.Is(err, storage.ErrNotFound):
		return status.Error(codes.NotFound, "not found")
	case errors.Is(err, totp.ErrNotPending):
		return status.Error(codes.FailedPrecondition, "factor_id: the enrollment is not pending (already finished or removed)")
	case errors.Is(err, totp.ErrEnrollmentExpired):
		return status.Error(codes.FailedPrecondition, "factor_id: the enrollment expired or had too many wrong codes; begin again")
	case errors.Is(err, apppasswords.ErrInvalidArgument):
		// The provider's message names the field: "invalid argument: name: empty".
		return status.Error(codes.InvalidArgument, strings.TrimPrefix(err.Error(), apppasswords.ErrInvalidArgument.Error()+": "))
	case errors.Is(err, apppasswords.ErrTooMany):
		return status.Error(codes.FailedPrecondition, "user_id: "+err.Error()+"; revoke one first")
	case errors.Is(err, policy.ErrInvalid):
		// Validation errors name the field and hold no secret.
		return status.Error(codes.InvalidArgument, "policy."+strings.TrimPrefix(err.Error(), policy.ErrInvalid.Error()+": "))
	case errors.Is(err, admincodes.ErrTTL):
		return status.Error(codes.InvalidArgument, "ttl: "+strings.TrimPrefix(err.Error(), admincodes.ErrTTL.Error()+": "))
	}
	if st, ok := webauthnStatus(err); ok {
		return st
	}
	rid := requestIDFrom(ctx)
	s.log.ErrorContext(ctx, "internal error", "request_id", rid, "error", err.Error())
	return status.Error(codes.Internal, "internal error (request id "+rid+")")
}

// invalid is an InvalidArgument status naming the field.
func invalid(field, format string, args ...any) error {
	return status.Error(codes.InvalidArgument, field+": "+fmt.Sprintf(format, args...))
}

// notFound names the id that was not found.
func notFound(field, id string) error {
	return status.Errorf(codes.NotFound, "%s: no such %s %q", field, strings.TrimSuffix(field, "_id"), id)
}

const maxUserIDLen = 255

// checkUserID validates a backend user id: 1 to 255 bytes of printable UTF-8.
func checkUserID(field, id string) error {
	switch {
	case id == "":
		return invalid(field, "is required")
	case len(id) > maxUserIDLen:
		return invalid(field, "is longer than %d bytes", maxUserIDLen)
	case !utf8.ValidString(id):
		return invalid(field, "is not valid UTF-8")
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return invalid(field, "contains control characters")
		}
	}
	return nil
}

// checkID validates an id this service issued (a UUID).
func checkID(field, id string) error {
	if id == "" {
		return invalid(field, "is required")
	}
	if _, err := uuid.Parse(id); err != nil || len(id) != 36 {
		return invalid(field, "is not a valid id")
	}
	return nil
}

// checkName validates a user-given display name: 1 to 128 characters, printable.
func checkName(field, name string, required bool) error {
	if name == "" {
		if required {
			return invalid(field, "is required")
		}
		return nil
	}
	if !utf8.ValidString(name) || utf8.RuneCountInString(name) > 128 {
		return invalid(field, "must be valid UTF-8 of at most 128 characters")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return invalid(field, "contains control characters")
		}
	}
	return nil
}

// checkIP validates an optional client IP.
func checkIP(field, ip string) error {
	if ip == "" {
		return nil
	}
	if _, err := netip.ParseAddr(ip); err != nil {
		return invalid(field, "is not an IP address")
	}
	return nil
}
