package server

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/twofactor/twofactor/notify"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/webauthn"
	"github.com/twofactor/twofactor/storage"
)

// ImportU2FRegistration imports a key registered with the legacy FIDO U2F API (key
// handle and raw P-256 public key, as U2F-era relying parties stored them), so that
// it logs in through the WebAuthn appid extension.
func (s *adminService) ImportU2FRegistration(ctx context.Context, req *pb.ImportU2FRegistrationRequest) (*pb.ImportU2FRegistrationResponse, error) {
	if s.wa == nil {
		return nil, status.Error(codes.FailedPrecondition, "WebAuthn is not enabled on this server")
	}
	if err := s.authorizeActor(ctx, req.GetActorId(), req.GetUserId()); err != nil {
		return nil, err
	}
	if req.GetAppId() == "" {
		return nil, invalid("app_id", "is required")
	}
	if err := checkName("name", req.GetName(), false); err != nil {
		return nil, err
	}
	handle, err := decodeB64URL(req.GetKeyHandle())
	if err != nil {
		return nil, invalid("key_handle", "is not base64url")
	}
	pub, err := decodeB64URL(req.GetPublicKey())
	if err != nil {
		return nil, invalid("public_key", "is not base64url")
	}
	var f *storage.Factor
	err = s.changingCredentials(ctx, req.GetUserId(), notify.EventFactorEnrolled, req.GetActorId(), func(ctx context.Context) (err error) {
		f, err = s.wa.ImportU2F(ctx, req.GetUserId(), req.GetAppId(), handle, pub, req.GetCounter(), req.GetName())
		return err
	})
	switch {
	case errors.Is(err, webauthn.ErrAppID):
		return nil, invalid("app_id", "%v", err)
	case errors.Is(err, webauthn.ErrKeyHandle):
		return nil, invalid("key_handle", "%v", err)
	case errors.Is(err, webauthn.ErrPublicKey):
		return nil, invalid("public_key", "%v", err)
	case errors.Is(err, webauthn.ErrCredentialExists):
		return nil, status.Error(codes.AlreadyExists, "key_handle: this key is already registered")
	case err != nil:
		return nil, s.toStatus(ctx, err)
	}
	s.audit(ctx, nil, AuditEvent{Event: notify.EventFactorEnrolled, UserID: f.UserID, Actor: req.GetActorId(), Method: f.Method, Result: "active",
		Details: map[string]string{"factor_id": f.ID, "source": "u2f_import", "app_id": req.GetAppId()}})
	return &pb.ImportU2FRegistrationResponse{Factor: s.factors.factorToPB(f)}, nil
}

// decodeB64URL accepts base64url with or without padding (U2F libraries stored both).
func decodeB64URL(s string) ([]byte, error) {
	if s == "" {
		return nil, errors.New("empty")
	}
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}
