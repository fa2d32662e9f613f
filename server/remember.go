package server

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/twofactor/twofactor/notify"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/trusteddevice"
	"github.com/twofactor/twofactor/server/throttle"
)

// rememberedMethod names remembered devices in metrics, throttling and audit.
const rememberedMethod = "remembered_device"

// maxDeviceTokenInput bounds the device_token field; a token is 64 characters,
// anything longer than trusteddevice.MaxInput is "not remembered" (a garbled
// cookie), anything longer than this an InvalidArgument.
const maxDeviceTokenInput = 1024

// errNoDevices answers the remembered-device RPCs of a server built without them.
var errNoDevices = status.Error(codes.FailedPrecondition, "remember_device: remembered devices are not enabled on this server")

// CheckRememberedDevice presents a device token: REMEMBERED (with the rotated
// token) satisfies the second factor of this login. Never for a step-up. Tokens
// that are not accepted are throttled per client network, never per user, so a
// flood of bad cookies cannot lock the user out.
func (s *challengeService) CheckRememberedDevice(ctx context.Context, req *pb.CheckRememberedDeviceRequest) (*pb.CheckRememberedDeviceResponse, error) {
	if err := checkCheckDevice(req); err != nil {
		return nil, err
	}
	if s.devices == nil {
		return nil, errNoDevices
	}
	notRemembered := &pb.CheckRememberedDeviceResponse{Result: pb.RememberedResult_REMEMBERED_RESULT_NOT_REMEMBERED}
	if req.GetStepUp() {
		s.metrics.verification(rememberedMethod, "step_up")
		return &pb.CheckRememberedDeviceResponse{Result: pb.RememberedResult_REMEMBERED_RESULT_STEP_UP_REQUIRED}, nil
	}
	allowed, _, err := s.policy.RememberDevice(ctx, req.GetUserId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	if !allowed {
		s.rejectedDevice(ctx, req, trusteddevice.Result{Reason: "policy"})
		return notRemembered, nil
	}
	subj := throttle.Subjects{IP: req.GetContext().GetIp()}
	d, err := s.checkThrottle(ctx, req.GetContext(), subj, rememberedMethod)
	if err != nil {
		return nil, err
	}
	if d.Blocked {
		s.metrics.verification(rememberedMethod, "throttled")
		return &pb.CheckRememberedDeviceResponse{Result: pb.RememberedResult_REMEMBERED_RESULT_THROTTLED, RetryAfter: retryAfter(d.RetryAfter)}, nil
	}
	res, err := s.devices.Check(ctx, req.GetUserId(), req.GetDeviceToken(), req.GetContext().GetIp())
	if err != nil {
		return nil, s.toStatus(ctx, deviceErr(err))
	}
	if !res.Remembered {
		s.rejectedDevice(ctx, req, res)
		// A stale cookie of the user's own (expired, or from before a credentials
		// change) is no guess; everything else counts against the network.
		if res.Reason != trusteddevice.ReasonExpired && res.Reason != trusteddevice.ReasonEpoch {
			if _, err := s.throttleFailure(ctx, req.GetContext(), subj, rememberedMethod); err != nil {
				return nil, err
			}
		}
		return notRemembered, nil
	}
	how := "rotated"
	if res.Grace {
		how = "grace"
	}
	s.metrics.verification(rememberedMethod, "accepted")
	s.audit(ctx, req.GetContext(), AuditEvent{Event: notify.EventDeviceUsed, UserID: req.GetUserId(), Method: rememberedMethod, Result: how,
		Details: map[string]string{"device_id": res.SeriesID, "rotations": strconv.FormatInt(res.Device.Rotations, 10)}})
	return &pb.CheckRememberedDeviceResponse{Result: pb.RememberedResult_REMEMBERED_RESULT_REMEMBERED, DeviceToken: res.Token,
		DeviceTokenExpiresAt: timestamppb.New(res.Device.ExpiresAt), DeviceId: res.SeriesID}, nil
}

// checkCheckDevice validates a CheckRememberedDevice request.
func checkCheckDevice(req *pb.CheckRememberedDeviceRequest) error {
	if err := checkUserID("user_id", req.GetUserId()); err != nil {
		return err
	}
	switch tok := req.GetDeviceToken(); {
	case tok == "":
		return invalid("device_token", "is required")
	case len(tok) > maxDeviceTokenInput:
		return invalid("device_token", "is longer than %d bytes", maxDeviceTokenInput)
	}
	return checkIP("context.ip", req.GetContext().GetIp())
}

// rejectedDevice audits a token that was not accepted; theft has its own event.
func (s *challengeService) rejectedDevice(ctx context.Context, req *pb.CheckRememberedDeviceRequest, res trusteddevice.Result) {
	s.metrics.verification(rememberedMethod, "rejected")
	e := AuditEvent{Event: notify.EventDeviceRejected, UserID: req.GetUserId(), Method: rememberedMethod, Result: string(res.Reason)}
	if res.SeriesID != "" {
		e.Details = map[string]string{"device_id": res.SeriesID}
	}
	if res.Reason == trusteddevice.ReasonTheft {
		e.Event, e.Result = notify.EventDeviceTheftDetected, "series_revoked"
		s.log.WarnContext(ctx, "replayed device token: series revoked", "request_id", requestIDFrom(ctx), "user_id", req.GetUserId(), "device_id", res.SeriesID)
	}
	s.audit(ctx, req.GetContext(), e)
}

// checkRemember validates VerifyChallenge's remember_device fields (before the
// answer is checked, so that bad input uses up nothing).
func checkRemember(req *pb.VerifyChallengeRequest) error {
	if req.GetDeviceLabel() != "" && !req.GetRememberDevice() {
		return invalid("device_label", "is only for remember_device")
	}
	if err := checkName("device_label", strings.TrimSpace(req.GetDeviceLabel()), false); err != nil {
		return err
	}
	return nil
}

// rememberDevice issues a device token on an accepted answer that asked for one,
// when policy allows it for the user. A failure to issue does not undo the
// accepted login: it is logged and the answer carries no token.
func (s *challengeService) rememberDevice(ctx context.Context, req *pb.VerifyChallengeRequest, resp *pb.VerifyChallengeResponse, clientIP string) {
	if !req.GetRememberDevice() || s.devices == nil || resp.UserId == "" {
		return
	}
	allowed, maxAge, err := s.policy.RememberDevice(ctx, resp.UserId)
	if err == nil && !allowed {
		return
	}
	var (
		dev     trusteddevice.Device
		token   string
		evicted []string
	)
	if err == nil {
		dev, token, evicted, err = s.devices.Issue(ctx, trusteddevice.IssueInput{UserID: resp.UserId, Label: req.GetDeviceLabel(),
			ClientIP: clientIP, UserAgent: req.GetContext().GetUserAgent(), MaxAge: maxAge})
	}
	if err != nil {
		s.log.ErrorContext(ctx, "remember device", "request_id", requestIDFrom(ctx), "user_id", resp.UserId, "error", err.Error())
		return
	}
	resp.DeviceToken, resp.DeviceTokenExpiresAt, resp.RememberedDevice = token, timestamppb.New(dev.ExpiresAt), deviceToPB(dev)
	s.audit(ctx, req.GetContext(), AuditEvent{Event: notify.EventDeviceRemembered, UserID: resp.UserId, Method: rememberedMethod, Result: "issued",
		Details: map[string]string{"device_id": dev.ID, "label": dev.Label, "expires_at": dev.ExpiresAt.Format("2006-01-02T15:04:05Z")}})
	for _, id := range evicted {
		s.audit(ctx, req.GetContext(), AuditEvent{Event: notify.EventDeviceRevoked, UserID: resp.UserId, Method: rememberedMethod, Result: "cap",
			Details: map[string]string{"device_id": id}})
	}
}

// errCredentialsOutsideTx is credentialsChanged called without the change's
// transaction: a bug, refused rather than moving the epoch on its own.
var errCredentialsOutsideTx = errors.New("server: credentials epoch moved outside the change's transaction")

// credentialsChanged moves the user's credentials epoch (every remembered device
// of the user dies) because cause changed the user's credentials. It runs in the
// change's own transaction (ctx from store.InTx, or from a provider's transaction
// that store.InTx joins), so that the change and the move commit together or not
// at all: an error from it undoes the change. It runs whether or not remembered
// devices are enabled, so that enabling them later revives nothing. The audit
// event of the revoked devices is written in the same transaction. A caller
// leaving halfway (a push device enrolling itself with a stolen token) leaves
// either both or neither: the devices never outlive the change.
func (s *core) credentialsChanged(ctx context.Context, userID, cause, actor string) error {
	if !s.store.InTransaction(ctx) {
		return errCredentialsOutsideTx
	}
	_, removed, err := s.store.BumpCredentialsEpoch(ctx, userID, s.now().UTC())
	if err != nil {
		return err
	}
	if removed == 0 {
		return nil
	}
	return s.auditTx(ctx, nil, AuditEvent{Event: notify.EventDeviceRevoked, UserID: userID, Actor: actor, Method: rememberedMethod, Result: "credentials_changed",
		Details: map[string]string{"cause": cause, "revoked": strconv.FormatInt(removed, 10)}})
}

// changingCredentials runs change and moves userID's credentials epoch
// (credentialsChanged) in one transaction: both commit, or neither.
func (s *core) changingCredentials(ctx context.Context, userID, cause, actor string, change func(ctx context.Context) error) error {
	return s.store.InTx(ctx, func(ctx context.Context) error {
		if err := change(ctx); err != nil {
			return err
		}
		return s.credentialsChanged(ctx, userID, cause, actor)
	})
}

// NotifyPasswordChanged moves the user's credentials epoch: every remembered
// device of the user dies.
func (s *enrollmentService) NotifyPasswordChanged(ctx context.Context, req *pb.NotifyPasswordChangedRequest) (*pb.NotifyPasswordChangedResponse, error) {
	if err := checkUserID("user_id", req.GetUserId()); err != nil {
		return nil, err
	}
	_, removed, err := s.store.BumpCredentialsEpoch(ctx, req.GetUserId(), s.now().UTC())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	s.audit(ctx, nil, AuditEvent{Event: notify.EventDeviceRevoked, UserID: req.GetUserId(), Method: rememberedMethod, Result: "credentials_changed",
		Details: map[string]string{"cause": "password.changed", "revoked": strconv.FormatInt(removed, 10)}})
	return &pb.NotifyPasswordChangedResponse{Revoked: uint32(removed)}, nil
}

// ListRememberedDevices lists the user's remembered devices.
func (s *enrollmentService) ListRememberedDevices(ctx context.Context, req *pb.ListRememberedDevicesRequest) (*pb.ListRememberedDevicesResponse, error) {
	devs, err := s.listDevices(ctx, req.GetUserId())
	if err != nil {
		return nil, err
	}
	return &pb.ListRememberedDevicesResponse{Devices: devs}, nil
}

// RevokeRememberedDevice forgets one remembered device of the user.
func (s *enrollmentService) RevokeRememberedDevice(ctx context.Context, req *pb.RevokeRememberedDeviceRequest) (*pb.RevokeRememberedDeviceResponse, error) {
	if _, err := s.revokeDevices(ctx, req.GetUserId(), req.GetDeviceId(), "", true); err != nil {
		return nil, err
	}
	return &pb.RevokeRememberedDeviceResponse{}, nil
}

// RevokeAllRememberedDevices forgets every remembered device of the user.
func (s *enrollmentService) RevokeAllRememberedDevices(ctx context.Context, req *pb.RevokeAllRememberedDevicesRequest) (*pb.RevokeAllRememberedDevicesResponse, error) {
	n, err := s.revokeDevices(ctx, req.GetUserId(), "", "", false)
	if err != nil {
		return nil, err
	}
	return &pb.RevokeAllRememberedDevicesResponse{Revoked: uint32(n)}, nil
}

// ListUserRememberedDevices lists a user's remembered devices for an admin.
func (s *adminService) ListUserRememberedDevices(ctx context.Context, req *pb.ListUserRememberedDevicesRequest) (*pb.ListUserRememberedDevicesResponse, error) {
	if err := s.authorizeActor(ctx, req.GetActorId(), req.GetUserId()); err != nil {
		return nil, err
	}
	devs, err := s.listDevices(ctx, req.GetUserId())
	if err != nil {
		return nil, err
	}
	return &pb.ListUserRememberedDevicesResponse{Devices: devs}, nil
}

// RevokeUserRememberedDevices forgets one (device_id) or every remembered
// device of a user, for an admin.
func (s *adminService) RevokeUserRememberedDevices(ctx context.Context, req *pb.RevokeUserRememberedDevicesRequest) (*pb.RevokeUserRememberedDevicesResponse, error) {
	if err := s.authorizeActor(ctx, req.GetActorId(), req.GetUserId()); err != nil {
		return nil, err
	}
	n, err := s.revokeDevices(ctx, req.GetUserId(), req.GetDeviceId(), req.GetActorId(), req.GetDeviceId() != "")
	if err != nil {
		return nil, err
	}
	return &pb.RevokeUserRememberedDevicesResponse{Revoked: uint32(n)}, nil
}

func (s *core) listDevices(ctx context.Context, userID string) ([]*pb.RememberedDevice, error) {
	if err := checkUserID("user_id", userID); err != nil {
		return nil, err
	}
	if s.devices == nil {
		return nil, errNoDevices
	}
	devs, err := s.devices.List(ctx, userID)
	if err != nil {
		return nil, s.toStatus(ctx, deviceErr(err))
	}
	out := make([]*pb.RememberedDevice, len(devs))
	for i, d := range devs {
		out[i] = deviceToPB(d)
	}
	return out, nil
}

// revokeDevices revokes one device (one: deviceID) or all of a user's, and
// audits it.
func (s *core) revokeDevices(ctx context.Context, userID, deviceID, actor string, one bool) (int, error) {
	if err := checkUserID("user_id", userID); err != nil {
		return 0, err
	}
	if one {
		if err := checkID("device_id", deviceID); err != nil {
			return 0, err
		}
	}
	if s.devices == nil {
		return 0, errNoDevices
	}
	n, details := 1, map[string]string{"device_id": deviceID}
	var err error
	if one {
		err = s.devices.Revoke(ctx, userID, deviceID)
		if errors.Is(err, trusteddevice.ErrNotFound) {
			return 0, notFound("device_id", deviceID)
		}
	} else {
		n, err = s.devices.RevokeAll(ctx, userID)
		details = map[string]string{"revoked": strconv.Itoa(n)}
	}
	if err != nil {
		return 0, s.toStatus(ctx, deviceErr(err))
	}
	result := "user"
	if actor != "" {
		result = "admin"
	}
	s.audit(ctx, nil, AuditEvent{Event: notify.EventDeviceRevoked, UserID: userID, Actor: actor, Method: rememberedMethod, Result: result, Details: details})
	return n, nil
}

// deviceErr turns the provider's argument errors into FieldErrors (its messages
// name the field: "invalid argument: device_label: …").
func deviceErr(err error) error {
	if !errors.Is(err, trusteddevice.ErrInvalidArgument) {
		return err
	}
	msg := strings.TrimPrefix(err.Error(), trusteddevice.ErrInvalidArgument.Error()+": ")
	field, rest, _ := strings.Cut(msg, ": ")
	return invalid(field, "%s", rest)
}

func deviceToPB(d trusteddevice.Device) *pb.RememberedDevice {
	out := &pb.RememberedDevice{Id: d.ID, UserId: d.UserID, Label: d.Label, IssuedIp: d.IssuedIP, UserAgent: d.UserAgent,
		CreatedAt: timestamppb.New(d.CreatedAt), ExpiresAt: timestamppb.New(d.ExpiresAt), LastIp: d.LastIP}
	if !d.LastUsedAt.IsZero() {
		out.LastUsedAt = timestamppb.New(d.LastUsedAt)
	}
	return out
}
