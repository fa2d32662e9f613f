package server

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/twofactor/twofactor/providers/admincodes"
	"github.com/twofactor/twofactor/providers/apppasswords"
	"github.com/twofactor/twofactor/providers/policy"
	"github.com/twofactor/twofactor/storage"
)

// toStatus is the one place provider and storage errors become gRPC statuses.
// Unknown errors become Internal with a request id and are logged, never shown.
func (s *core) toStatus(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe.GRPCStatus().Err()
	}
	var de *deliveryError
	if errors.As(err, &de) {
		de.log(ctx, s.log)
		return deliveryUnavailable(de.method)
	}
	// The factor caps (storage.CreateFactorWithin); the other capped inserts
	// come back as their providers' errors (apppasswords.ErrTooMany,
	// push.EnrollmentCapError), mapped below.
	var ce *storage.CapError
	if errors.As(err, &ce) {
		return status.Error(codes.FailedPrecondition, "user_id: "+ce.Error()+"; remove one first")
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
	if st, ok := s.factors.status(err); ok {
		return st
	}
	rid := requestIDFrom(ctx)
	s.log.ErrorContext(ctx, "internal error", "request_id", rid, "error", err.Error())
	return status.Error(codes.Internal, "internal error (request id "+rid+")")
}

// FieldError is bad input in one field of a request: InvalidArgument with a
// message starting with the field's name ("user_id: is required"). Handlers
// return it as is (it carries its gRPC status) and toStatus maps it too.
type FieldError struct {
	Field   string // the field's name as the caller spells it, e.g. "context.ip"
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// GRPCStatus is the InvalidArgument status of e.
func (e *FieldError) GRPCStatus() *status.Status {
	return status.New(codes.InvalidArgument, e.Error())
}

// invalid is the FieldError of field.
func invalid(field, format string, args ...any) error {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// notFound names the id that was not found.
func notFound(field, id string) error {
	return status.Errorf(codes.NotFound, "%s: no such %s %q", field, strings.TrimSuffix(field, "_id"), id)
}
