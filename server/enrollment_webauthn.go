package server

import (
	"context"
	"encoding/base64"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/webauthn"
	"github.com/twofactor/twofactor/storage"
)

// webauthnEnroller registers security keys and passkeys.
type webauthnEnroller struct{ wa *webauthn.Provider }

// Begin starts registering a security key or passkey.
func (s webauthnEnroller) Begin(ctx context.Context, req *pb.BeginEnrollmentRequest) (*pb.BeginEnrollmentResponse, error) {
	o := req.GetWebauthn()
	if err := checkName("webauthn.user_name", o.GetUserName(), false); err != nil {
		return nil, err
	}
	if err := checkName("webauthn.display_name", o.GetDisplayName(), false); err != nil {
		return nil, err
	}
	f, opts, err := s.wa.BeginRegistration(ctx, req.GetUserId(), o.GetUserName(), o.GetDisplayName(), req.GetName(), o.GetDiscoverable())
	if err != nil {
		return nil, err
	}
	resp := &pb.BeginEnrollmentResponse{
		FactorId: f.ID,
		Details:  &pb.BeginEnrollmentResponse_Webauthn{Webauthn: &pb.WebAuthnEnrollment{CreationOptionsJson: string(opts)}},
	}
	if f.ExpiresAt != nil {
		resp.ExpiresAt = timestamppb.New(*f.ExpiresAt)
	}
	return resp, nil
}

// Finish verifies the browser's registration response.
func (s webauthnEnroller) Finish(ctx context.Context, req *pb.FinishEnrollmentRequest) (*storage.Factor, error) {
	return s.FinishThen(ctx, req, nil)
}

// FinishThen runs then in the activation's transaction (TxFinisher).
func (s webauthnEnroller) FinishThen(ctx context.Context, req *pb.FinishEnrollmentRequest, then func(ctx context.Context, f *storage.Factor) error) (*storage.Factor, error) {
	att := req.GetWebauthnAttestationJson()
	if att == "" {
		return nil, invalid("webauthn_attestation_json", "is required to finish a WebAuthn enrollment")
	}
	f, err := s.wa.FinishRegistrationThen(ctx, req.GetUserId(), req.GetFactorId(), []byte(att), then)
	switch {
	case err == nil:
		return f, nil
	case errors.Is(err, webauthn.ErrMalformed):
		return nil, invalid("webauthn_attestation_json", "%v", err)
	case errors.Is(err, webauthn.ErrInvalidAttestation), errors.Is(err, webauthn.ErrUserVerification):
		return nil, invalid("webauthn_attestation_json", "%v; begin the enrollment again", err)
	}
	return nil, err
}

func webauthnDetails(f *storage.Factor, out *pb.Factor) {
	if d, ok := webauthn.FactorDetails(f); ok {
		out.Details = &pb.Factor_Webauthn{Webauthn: webauthnDetailsToPB(d)}
	}
}

func webauthnDetailsToPB(d webauthn.Details) *pb.WebAuthnDetails {
	return &pb.WebAuthnDetails{
		CredentialId:      base64.RawURLEncoding.EncodeToString(d.CredentialID),
		Aaguid:            d.AAGUID,
		Transports:        d.Transports,
		AttestationFormat: d.AttestationFormat,
		SignCount:         d.SignCount,
		BackupEligible:    d.BackupEligible,
		BackedUp:          d.BackedUp,
		Discoverable:      d.Discoverable,
		LegacyU2F:         d.LegacyU2F,
		CloneWarning:      d.CloneWarning,
		Algorithm:         int32(d.Algorithm),
	}
}

// webauthnStatus maps the provider's enrollment and import errors to statuses; the
// rest go through toStatus's default.
func webauthnStatus(err error) (error, bool) {
	switch {
	case errors.Is(err, webauthn.ErrNotPending):
		return status.Error(codes.FailedPrecondition, "factor_id: the enrollment is not pending (already finished, refused or removed)"), true
	case errors.Is(err, webauthn.ErrEnrollmentExpired):
		return status.Error(codes.FailedPrecondition, "factor_id: the enrollment expired; begin again"), true
	case errors.Is(err, webauthn.ErrCredentialExists):
		return status.Error(codes.AlreadyExists, "the credential is already registered"), true
	}
	return nil, false
}
