package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/twofactor/twofactor/audit"
	"github.com/twofactor/twofactor/notify"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/push"
	"github.com/twofactor/twofactor/server/throttle"
	"github.com/twofactor/twofactor/storage"
)

// Audit events of the push factor (notify's naming rules).
const (
	EventPushDeviceEnrolled = "push.device_enrolled"
	EventPushAnswered       = "push.answered"
	EventPushFatigue        = "push.fatigue_suspected"
)

// PushWatcher wakes a WatchPushes stream when a push may have begun for a user
// (any replica). notify's push request subject serves; nil: the stream polls.
type PushWatcher interface {
	WatchUser(userID string) (woken <-chan struct{}, stop func(), err error)
}

// DeviceOptions tune the DeviceService.
type DeviceOptions struct {
	// Announcer wakes VerifyChallenge on every replica after an answer.
	Announcer push.Announcer
	// Watcher wakes WatchPushes streams; Poll is the streams' fallback re-read
	// (default 5 s) and StreamLifetime their end (default 10 min, the device
	// reconnects with a fresh signature).
	Watcher        PushWatcher
	Poll           time.Duration
	StreamLifetime time.Duration
	Auditor        Auditor
	Log            *slog.Logger
	// NotMe tells the user's other channels of a push refused as "this was
	// not me" (notme.go); nil: nobody is told.
	NotMe NotMeNotifier
	// Guard, when set, counts each device request before its signature is
	// evaluated ((*throttle.Throttler).Guard, or the server's guardAttempt): a
	// refused signature, timestamp or nonce is a failure of the device and of
	// the peer's network; while either is delayed, requests are refused
	// (ResourceExhausted with a RetryInfo) without being evaluated.
	Guard DeviceGuard
	// Stopping ends every WatchPushes stream (Unavailable: reconnect) when it
	// closes, so that a graceful stop does not wait for them (Server.Drain).
	Stopping <-chan struct{}
	// CredentialsChanged, when set, runs in the transaction that enrolls a
	// device (a factor added), on its ctx: it moves the user's credentials
	// epoch, as FinishEnrollment does (the server's core.credentialsChanged).
	// An error undoes the enrollment (the token stays unused) and fails the
	// request.
	CredentialsChanged func(ctx context.Context, userID, cause string) error
}

// DeviceGuard runs eval as one attempt by s, counted before it is evaluated.
type DeviceGuard func(ctx context.Context, s throttle.Subjects, eval func(ctx context.Context) (throttle.Verdict, error)) (throttle.Result, error)

// deviceService serves DeviceService. It takes no API key: each request is
// authenticated by the device's signature (push.Service.Authenticate), which
// interceptors.go exempts from the API-key check.
type deviceService struct {
	pb.UnimplementedDeviceServiceServer
	push *push.Service
	opts DeviceOptions
}

// NewDeviceService returns the DeviceService over p.
func NewDeviceService(p *push.Service, o DeviceOptions) pb.DeviceServiceServer {
	if o.Poll <= 0 {
		o.Poll = 5 * time.Second
	}
	if o.StreamLifetime <= 0 {
		o.StreamLifetime = 10 * time.Minute
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Auditor == nil {
		o.Auditor = audit.LogRecorder{Log: o.Log}
	}
	return &deviceService{push: p, opts: o}
}

// deviceStatus maps the push factor's errors; unknown ones are Internal and logged.
func (s *deviceService) deviceStatus(ctx context.Context, err error) error {
	var ie *push.InputError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ie):
		return status.Error(codes.InvalidArgument, ie.Error())
	case errors.Is(err, push.ErrUnauthenticated):
		return status.Error(codes.Unauthenticated, "auth: device signature, timestamp, nonce or device not accepted")
	case errors.Is(err, push.ErrEnrollment):
		return status.Error(codes.Unauthenticated, "token: unknown, used or expired")
	case errors.Is(err, push.ErrTooManyDevices):
		return status.Error(codes.FailedPrecondition, "token: the user has too many devices; revoke one first")
	case errors.Is(err, push.ErrNotFound):
		return status.Error(codes.NotFound, "challenge_id: no such push for this device")
	case errors.Is(err, push.ErrAnswered):
		return status.Error(codes.FailedPrecondition, "challenge_id: already answered")
	case errors.Is(err, push.ErrExpired):
		return status.Error(codes.FailedPrecondition, "challenge_id: expired")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	s.opts.Log.ErrorContext(ctx, "device service: internal error", "error", err.Error())
	return status.Error(codes.Internal, "internal error")
}

// authenticate checks a device request (push.Service.Authenticate), through
// opts.Guard when set. A device id longer than a device's is counted by the
// network only (the request is refused anyway).
func (s *deviceService) authenticate(ctx context.Context, a *pb.DeviceAuth, purpose string, fields ...string) (*storage.PushDevice, error) {
	return s.authenticateThen(ctx, a, nil, purpose, fields...)
}

// authenticateThen is authenticate, then, for an authenticated device, then
// in the Guard's transaction: what then writes commits with the request's
// nonce and counts (one transaction where there were two). then must write
// nothing when it returns a refusal (errRefusal: the request stands, its nonce
// is remembered, the refusal is returned after the commit); any other error
// rolls back the whole request, nonce included: it was not accepted.
func (s *deviceService) authenticateThen(ctx context.Context, a *pb.DeviceAuth, then func(ctx context.Context, d *storage.PushDevice) error,
	purpose string, fields ...string) (*storage.PushDevice, error) {
	r := deviceRequest(a)
	if s.opts.Guard == nil {
		d, err := s.push.Authenticate(ctx, r, purpose, fields...)
		if err == nil && then != nil {
			err = then(ctx, d)
		}
		return d, s.deviceStatus(ctx, err)
	}
	subj := throttle.Subjects{Device: r.DeviceID, IP: peerIP(ctx), HighEntropy: true}
	if len(subj.Device) > maxDeviceIDLen {
		subj.Device = ""
	}
	var d *storage.PushDevice
	var refused error
	res, err := s.opts.Guard(ctx, subj, func(ctx context.Context) (throttle.Verdict, error) {
		refused = nil
		var err error
		d, err = s.push.Authenticate(ctx, r, purpose, fields...)
		switch {
		case errors.Is(err, push.ErrUnauthenticated):
			return throttle.Rejected, nil
		case err != nil:
			return 0, err
		}
		if then != nil {
			if err := then(ctx, d); err != nil {
				if !errRefusal(err) {
					return 0, err
				}
				refused = err
			}
		}
		return throttle.Accepted, nil
	})
	switch {
	case err != nil:
		if _, ok := status.FromError(err); ok {
			return nil, err // the server's guard answers in statuses
		}
		return nil, s.deviceStatus(ctx, err)
	case res.Blocked:
		return nil, throttledError(res.Decision)
	case res.Verdict == throttle.Rejected:
		return nil, s.deviceStatus(ctx, push.ErrUnauthenticated)
	case refused != nil:
		return d, s.deviceStatus(ctx, refused)
	}
	return d, nil
}

// errRefusal tells whether err is a push refusal of an authenticated device's
// request, which the push factor returns before writing anything (bad input,
// no such challenge, answered, expired).
func errRefusal(err error) bool {
	var ie *push.InputError
	return errors.As(err, &ie) || errors.Is(err, push.ErrNotFound) || errors.Is(err, push.ErrAnswered) ||
		errors.Is(err, push.ErrExpired)
}

// maxDeviceIDLen is the longest device id (a UUID).
const maxDeviceIDLen = 36

// peerIP is the address of the gRPC peer (the device, or the backend relaying
// it), "" when unknown.
func peerIP(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(p.Addr.String())
	if err != nil {
		return ""
	}
	return host
}

func deviceRequest(a *pb.DeviceAuth) push.Request {
	return push.Request{DeviceID: a.GetDeviceId(), TimestampMillis: a.GetTimestampMs(), Nonce: a.GetNonce(), Signature: a.GetSignature()}
}

// endpointFromPB maps the wire endpoint; its Fields are what the device signed.
func endpointFromPB(ep *pb.PushEndpoint) push.Endpoint {
	switch k := ep.GetKind().(type) {
	case *pb.PushEndpoint_WebPush:
		return push.Endpoint{Kind: storage.PushEndpointWebPush, URL: k.WebPush.GetEndpoint(), P256dh: k.WebPush.GetP256Dh(), Auth: k.WebPush.GetAuth()}
	case *pb.PushEndpoint_Ntfy:
		return push.Endpoint{Kind: storage.PushEndpointNtfy, URL: k.Ntfy.GetUrl(), Token: k.Ntfy.GetToken()}
	case *pb.PushEndpoint_Poll:
		return push.Endpoint{Kind: storage.PushEndpointPoll}
	}
	return push.Endpoint{}
}

// FinishDeviceEnrollment is not behind opts.Guard, deliberately: the only secret it
// checks is the enrollment token, 256 random bits (push.BeginEnrollment, looked up
// by its MAC and used once), which no rate of guessing finds; the signature is by the
// key the request itself brings, so it proves possession, not identity.
func (s *deviceService) FinishDeviceEnrollment(ctx context.Context, req *pb.FinishDeviceEnrollmentRequest) (*pb.FinishDeviceEnrollmentResponse, error) {
	if req.GetAuth() == nil {
		return nil, status.Error(codes.InvalidArgument, "auth: is required")
	}
	if req.GetEndpoint().GetKind() == nil {
		return nil, status.Error(codes.InvalidArgument, "endpoint: is required")
	}
	a := req.GetAuth()
	in := push.FinishInput{Token: req.GetToken(), PublicKey: req.GetPublicKey(),
		Name: req.GetName(), Platform: req.GetPlatform(), Endpoint: endpointFromPB(req.GetEndpoint()),
		TimestampMillis: a.GetTimestampMs(), Nonce: a.GetNonce(), Signature: a.GetSignature()}
	if changed := s.opts.CredentialsChanged; changed != nil {
		in.Then = func(ctx context.Context, d *storage.PushDevice) error {
			return changed(ctx, d.UserID, notify.EventFactorEnrolled)
		}
	}
	d, err := s.push.FinishEnrollment(ctx, in)
	if err != nil {
		return nil, s.deviceStatus(ctx, err)
	}
	s.opts.Auditor.Record(ctx, AuditEvent{Event: notify.EventFactorEnrolled, UserID: d.UserID, Method: push.Method,
		Result: "enrolled", Details: map[string]string{"device_id": d.ID, "platform": d.Platform, "endpoint": d.EndpointKind}})
	return &pb.FinishDeviceEnrollmentResponse{DeviceId: d.ID, UserId: d.UserID}, nil
}

func (s *deviceService) ListPendingPushes(ctx context.Context, req *pb.ListPendingPushesRequest) (*pb.ListPendingPushesResponse, error) {
	d, err := s.authenticate(ctx, req.GetAuth(), push.PurposeListPending)
	if err != nil {
		return nil, err
	}
	pending, err := s.push.ListPending(ctx, d)
	if err != nil {
		return nil, s.deviceStatus(ctx, err)
	}
	out := &pb.ListPendingPushesResponse{}
	for _, p := range pending {
		out.Pushes = append(out.Pushes, &pb.PendingPush{ChallengeId: p.ChallengeID, ExpiresAt: timestamppb.New(p.ExpiresAt)})
	}
	return out, nil
}

func (s *deviceService) GetPushContext(ctx context.Context, req *pb.GetPushContextRequest) (*pb.GetPushContextResponse, error) {
	d, err := s.authenticate(ctx, req.GetAuth(), push.PurposeGetContext, req.GetChallengeId())
	if err != nil {
		return nil, err
	}
	pc, err := s.push.Context(ctx, d, req.GetChallengeId())
	if err != nil {
		return nil, s.deviceStatus(ctx, err)
	}
	modes := map[string]pb.NumberMode{push.NumberDigits: pb.NumberMode_NUMBER_MODE_DIGITS,
		push.NumberChoice: pb.NumberMode_NUMBER_MODE_CHOICE, push.NumberNone: pb.NumberMode_NUMBER_MODE_NONE}
	return &pb.GetPushContextResponse{ChallengeId: pc.ChallengeID, Client: pc.Login.Client, ClientIp: pc.Login.ClientIP,
		UserAgent: pc.Login.UserAgent, Time: timestamppb.New(pc.Login.Time), ExpiresAt: timestamppb.New(pc.ExpiresAt),
		NumberMode: modes[pc.NumberMode], Digits: uint32(pc.Digits), Choices: pc.Login.Choices}, nil
}

// decisionName is the signed name of a decision ("" for none).
func decisionName(d pb.PushDecision) string {
	switch d {
	case pb.PushDecision_PUSH_DECISION_APPROVE:
		return push.DecisionApprove
	case pb.PushDecision_PUSH_DECISION_DENY:
		return push.DecisionDeny
	case pb.PushDecision_PUSH_DECISION_NOT_ME:
		return push.DecisionNotMe
	}
	return ""
}

func (s *deviceService) RespondPush(ctx context.Context, req *pb.RespondPushRequest) (*pb.RespondPushResponse, error) {
	in := push.RespondInput{ChallengeID: req.GetChallengeId(), Decision: decisionName(req.GetDecision()), Number: req.GetNumber()}
	if in.Decision == "" {
		return nil, status.Error(codes.InvalidArgument, "decision: want approve, deny or not_me")
	}
	// The answer is recorded in the transaction that authenticated the request
	// (the Guard's), announced once that has committed.
	var r *push.Response
	d, err := s.authenticateThen(ctx, req.GetAuth(), func(ctx context.Context, d *storage.PushDevice) error {
		var err error
		r, err = s.push.Respond(ctx, d, in)
		return err
	}, push.PurposeRespond, in.RespondFields()...)
	if err != nil {
		return nil, err
	}
	if s.opts.Announcer != nil {
		if err := s.opts.Announcer.AnnouncePushResponse(ctx, in.ChallengeID); err != nil {
			// recorded; the verifier finds it at its next read
			s.opts.Log.WarnContext(ctx, "push: announcing the answer failed", "error", err.Error())
		}
	}
	s.auditAnswer(ctx, d, in.ChallengeID, r)
	s.notMe(ctx, d, in.ChallengeID, r)
	out := &pb.RespondPushResponse{Locked: r.Locked}
	switch r.Event {
	case push.EventApproved:
		out.Result = pb.PushResult_PUSH_RESULT_APPROVED
	case push.EventWrongNumber:
		out.Result = pb.PushResult_PUSH_RESULT_WRONG_NUMBER
	case push.EventNotMe:
		out.Result = pb.PushResult_PUSH_RESULT_NOT_ME
	default:
		out.Result = pb.PushResult_PUSH_RESULT_DENIED
	}
	return out, nil
}

func (s *deviceService) auditAnswer(ctx context.Context, d *storage.PushDevice, challengeID string, r *push.Response) {
	details := map[string]string{"device_id": d.ID, "challenge_id": challengeID}
	result := strings.TrimPrefix(r.Event, "push.")
	s.opts.Auditor.Record(ctx, AuditEvent{Event: EventPushAnswered, UserID: d.UserID, Method: push.Method, Result: result, Details: details})
	if r.SuspectedFatigue {
		if r.Locked {
			details["locked"] = "true"
		}
		s.opts.Auditor.Record(ctx, AuditEvent{Event: EventPushFatigue, UserID: d.UserID, Method: push.Method, Result: result, Details: details})
	}
}

func (s *deviceService) UpdatePushEndpoint(ctx context.Context, req *pb.UpdatePushEndpointRequest) (*pb.UpdatePushEndpointResponse, error) {
	if req.GetEndpoint().GetKind() == nil {
		return nil, status.Error(codes.InvalidArgument, "endpoint: is required")
	}
	ep := endpointFromPB(req.GetEndpoint())
	d, err := s.authenticate(ctx, req.GetAuth(), push.PurposeSetEndpoint, ep.Fields()...)
	if err != nil {
		return nil, err
	}
	if err := s.push.SetEndpoint(ctx, d, ep); err != nil {
		return nil, s.deviceStatus(ctx, err)
	}
	return &pb.UpdatePushEndpointResponse{}, nil
}

// WatchPushes sends the pending pushes, then each new one as the watcher (or the
// poll) finds it, until the stream's lifetime ends, the client leaves, the
// device is revoked, or the server stops (Unavailable: the device reconnects,
// to another replica).
func (s *deviceService) WatchPushes(req *pb.WatchPushesRequest, stream pb.DeviceService_WatchPushesServer) error {
	ctx := stream.Context()
	d, err := s.authenticate(ctx, req.GetAuth(), push.PurposeWatch)
	if err != nil {
		return err
	}
	var woken <-chan struct{}
	stop := func() {}
	defer func() { stop() }()
	arm := func() error { // a wake-up fires once: subscribe again before each read
		if s.opts.Watcher == nil {
			return nil
		}
		stop()
		ch, st, err := s.opts.Watcher.WatchUser(d.UserID)
		if err != nil {
			stop = func() {}
			return s.deviceStatus(ctx, err)
		}
		woken, stop = ch, st
		return nil
	}
	end := time.NewTimer(s.opts.StreamLifetime)
	defer end.Stop()
	tick := time.NewTicker(s.opts.Poll)
	defer tick.Stop()
	sent := map[string]bool{}
	for {
		if err := arm(); err != nil {
			return err
		}
		if err := s.sendNew(ctx, stream, d, sent); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			// The caller's status, not OK: with OK the client could read
			// io.EOF before its own deadline fires.
			return status.FromContextError(ctx.Err()).Err()
		case <-end.C:
			return nil
		case <-s.opts.Stopping:
			return status.Error(codes.Unavailable, "server stopping: reconnect")
		case <-tick.C:
		case <-woken:
		}
	}
}

// sendNew sends the pending pushes not sent yet; it ends the stream (Unauthenticated)
// once the device is no longer usable.
func (s *deviceService) sendNew(ctx context.Context, stream pb.DeviceService_WatchPushesServer, d *storage.PushDevice, sent map[string]bool) error {
	ok, err := s.push.Usable(ctx, d.ID)
	if err != nil {
		return s.deviceStatus(ctx, err)
	}
	if !ok {
		return status.Error(codes.Unauthenticated, "auth: device revoked")
	}
	pending, err := s.push.ListPending(ctx, d)
	if err != nil {
		return s.deviceStatus(ctx, err)
	}
	for _, p := range pending {
		if sent[p.ChallengeID] {
			continue
		}
		if err := stream.Send(&pb.WatchPushesResponse{Push: &pb.PendingPush{ChallengeId: p.ChallengeID, ExpiresAt: timestamppb.New(p.ExpiresAt)}}); err != nil {
			return err
		}
		sent[p.ChallengeID] = true
	}
	return nil
}

// NATSPushWatcher wakes WatchPushes streams from the push requests authd publishes
// on <p>.push.request (a core subscription beside notifyd's work-queue consumer,
// which it does not disturb). Each stream decodes each request: fine for the
// streams of one replica; a shared fan-out would serve many more.
type NATSPushWatcher struct {
	Conn    *nats.Conn
	Subject string // names.PushRequest()
}

// WatchUser subscribes to the requests for userID; the channel closes at the first.
func (w NATSPushWatcher) WatchUser(userID string) (<-chan struct{}, func(), error) {
	ch := make(chan struct{})
	var once sync.Once
	sub, err := w.Conn.Subscribe(w.Subject, func(m *nats.Msg) {
		if r, err := notify.DecodePushRequest(m.Data); err == nil && r.UserID == userID {
			once.Do(func() { close(ch) })
		}
	})
	if err != nil {
		return nil, nil, err
	}
	if err := w.Conn.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, nil, err
	}
	return ch, func() { _ = sub.Unsubscribe() }, nil
}
