package server

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/twofactor/twofactor/notify"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/admincodes"
	"github.com/twofactor/twofactor/providers/apppasswords"
	"github.com/twofactor/twofactor/providers/backupcodes"
	"github.com/twofactor/twofactor/providers/policy"
	"github.com/twofactor/twofactor/providers/push"
	"github.com/twofactor/twofactor/providers/trusteddevice"
	"github.com/twofactor/twofactor/providers/webauthn"
	"github.com/twofactor/twofactor/server/challenge"
	"github.com/twofactor/twofactor/server/throttle"
	"github.com/twofactor/twofactor/storage"
)

// Options are the server's own settings; zero values mean defaults.
type Options struct {
	// ChallengeTTL is how long a challenge can be answered; default 5 minutes.
	ChallengeTTL time.Duration
	// MaxAttempts wrong answers end a challenge; default 5.
	MaxAttempts int
}

func (o Options) withDefaults() Options {
	if o.ChallengeTTL == 0 {
		o.ChallengeTTL = 5 * time.Minute
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = 5
	}
	return o
}

// Deps are the parts a Server is wired from; server/app builds them (New builds
// none). All are required except those marked optional.
type Deps struct {
	Store   *storage.Store
	Keys    *storage.KeyRing
	APIKeys *APIKeys
	// Factors are the methods this server offers (NewRegistry); Policy must have
	// been built with Factors.PolicyMethods().
	Factors *Registry
	Policy  *policy.Provider
	// BackupCodes and AdminCodes serve their management RPCs (their challenge
	// methods are in Factors).
	BackupCodes *backupcodes.Provider
	AdminCodes  *admincodes.Provider
	// Throttle slows down and locks guessing.
	Throttle *throttle.Throttler
	// Auditor records the audit trail (an *audit.Trail, whose Close the caller
	// runs after Server.Close; its relay publishes to NATS).
	Auditor Auditor
	// Metrics receives the Prometheus series.
	Metrics *Metrics
	Logger  *slog.Logger
	Now     func() time.Time

	// AppPasswords serves AppPasswordService; optional (nil leaves it
	// unregistered). Its Announcer is wired by the caller.
	AppPasswords *apppasswords.Service
	// Events publishes to NATS (revocation and throttle announcements; the audit
	// trail is published by the Auditor's relay);
	// optional: without it, revocations and throttle failures stay local.
	Events *notify.Publisher
	// Breached serves PasswordService (a range-API client or an offline list);
	// optional (nil leaves it unregistered).
	Breached PasswordChecker
	// WebAuthn serves ImportU2FRegistration; optional (its challenges and
	// enrollment are in Factors).
	WebAuthn *webauthn.Provider
	// Push serves DeviceService (push approval's devices); optional (nil leaves it
	// unregistered; the push factor itself is in Factors). PushWatcher wakes its
	// WatchPushes streams (NATSPushWatcher); nil: they poll.
	Push        *push.Service
	PushWatcher PushWatcher
	// NotMe tells the user's code destinations of a push refused as "this was
	// not me" (OTPNotMeNotifier); optional (nil: nobody is told).
	NotMe NotMeNotifier
	// Devices serves "remember this device"; optional (nil: VerifyChallenge
	// ignores remember_device and the remembered-device RPCs fail with
	// FailedPrecondition). The credentials epoch moves either way.
	Devices *trusteddevice.Service
	// DevTelegramStart serves DevService.SimulateTelegramStart: the in-process
	// notifyd's simulated /start (authd's embedded mode with Telegram to the
	// outbox); nil, the default, refuses it.
	DevTelegramStart func(ctx context.Context, token, chatID string) error
}

func (d Deps) check() error {
	var missing []string
	for name, nilv := range map[string]bool{
		"Store": d.Store == nil, "Keys": d.Keys == nil, "APIKeys": d.APIKeys == nil, "Factors": d.Factors == nil,
		"Policy": d.Policy == nil, "BackupCodes": d.BackupCodes == nil, "AdminCodes": d.AdminCodes == nil,
		"Throttle": d.Throttle == nil, "Auditor": d.Auditor == nil, "Metrics": d.Metrics == nil,
		"Logger": d.Logger == nil, "Now": d.Now == nil,
	} {
		if nilv {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("server: Deps.%s required", strings.Join(missing, ", Deps."))
	}
	return nil
}

// core is what every service shares: the store, the factors, the policy, the
// throttle, the audit trail, metrics, log and clock. Each service type holds it
// and the providers of its own.
type core struct {
	opts     Options
	store    *storage.Store
	factors  *Registry
	policy   *policy.Provider
	throttle *throttle.Throttler
	auditor  Auditor
	events   *notify.Publisher
	keys     *APIKeys
	push     *push.Service // nil: no push devices
	metrics  *Metrics
	log      *slog.Logger
	now      func() time.Time
	devices  *trusteddevice.Service // optional
}

// Server is the twofactor.v1 services, one small type per gRPC service.
type Server struct {
	*core
	challenges challengeService
	enrollment enrollmentService
	appPass    *appPasswordService // nil: unregistered
	admin      adminService
	password   *passwordService       // nil: unregistered
	device     pb.DeviceServiceServer // nil: unregistered
	dev        devService
	closers    []func()
	// draining closes at Drain: long-lived streams end.
	draining  chan struct{}
	drainOnce sync.Once
}

// New builds a Server from d (see Deps for what is required).
func New(d Deps, opts Options) (*Server, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	c := &core{opts: opts.withDefaults(), store: d.Store, factors: d.Factors, policy: d.Policy, throttle: d.Throttle,
		auditor: d.Auditor, events: d.Events, keys: d.APIKeys, push: d.Push, metrics: d.Metrics, log: d.Logger, now: d.Now, devices: d.Devices}
	chs, err := challenge.New(d.Store, d.Keys, challenge.Config{TTL: c.opts.ChallengeTTL, MaxAttempts: c.opts.MaxAttempts}, d.Now)
	if err != nil {
		return nil, err
	}
	s := &Server{
		core:       c,
		draining:   make(chan struct{}),
		challenges: challengeService{core: c, challenges: chs},
		enrollment: enrollmentService{core: c, backupCodes: d.BackupCodes},
		admin:      adminService{core: c, adminCodes: d.AdminCodes, apppw: d.AppPasswords, wa: d.WebAuthn},
		dev:        devService{core: c, telegramStart: d.DevTelegramStart},
	}
	if d.AppPasswords != nil {
		s.appPass = &appPasswordService{core: c, apppw: d.AppPasswords}
	}
	if d.Breached != nil {
		s.password = &passwordService{core: c, breached: d.Breached}
	}
	if d.Push != nil {
		var ann push.Announcer
		if d.Events != nil {
			ann = d.Events
		}
		s.device = NewDeviceService(d.Push, DeviceOptions{Announcer: ann, Watcher: d.PushWatcher, Auditor: d.Auditor, Log: d.Logger, NotMe: d.NotMe,
			Guard: c.deviceGuard, Stopping: s.draining, CredentialsChanged: func(ctx context.Context, userID, cause string) error {
				return c.credentialsChanged(ctx, userID, cause, "")
			}})
	}
	if err := s.subscribe(d); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// subscribe follows the other replicas' announcements.
func (s *Server) subscribe(d Deps) error {
	if d.Events == nil {
		return nil
	}
	if d.AppPasswords != nil {
		// Every replica forgets a revoked app password as soon as any replica
		// announces it.
		unsub, err := d.Events.SubscribeRevoked(d.AppPasswords.Invalidate)
		if err != nil {
			return fmt.Errorf("subscribe to app-password revocations: %w", err)
		}
		s.closers = append(s.closers, unsub)
	}
	// Every replica forgets that a subject was clean as soon as any replica
	// announces a failure of it (see throttle.Config.CleanCacheTTL).
	unsub, err := d.Events.SubscribeThrottleFailed(func(sub notify.ThrottleSubject) {
		s.throttle.Invalidate(throttle.Subject{Kind: sub.Kind, Key: sub.Key})
	})
	if err != nil {
		return fmt.Errorf("subscribe to throttle failures: %w", err)
	}
	s.closers = append(s.closers, unsub)
	return nil
}

// Drain ends the long-lived streams (WatchPushes: Unavailable, the devices
// reconnect elsewhere) so that a GracefulStop does not wait for them; call it
// just before GracefulStop. It may be called more than once.
func (s *Server) Drain() {
	s.drainOnce.Do(func() { close(s.draining) })
}

// Metrics returns the Prometheus series this server updates.
func (s *Server) Metrics() *Metrics { return s.metrics }

// auditCloseTimeout bounds how long Close waits for the audit trail to drain.
const auditCloseTimeout = 10 * time.Second

// Close releases the subscriptions New made and flushes the audit trail: events
// recorded before Close are in the store when it returns (the relay publishes
// them; call Close after the gRPC server has stopped, before the Auditor, the
// store and NATS are closed).
func (s *Server) Close() {
	for _, c := range s.closers {
		c()
	}
	s.closers = nil
	ctx, cancel := context.WithTimeout(context.Background(), auditCloseTimeout)
	defer cancel()
	if err := s.flushAuditStore(ctx); err != nil {
		s.log.Error("audit trail not flushed on close", "error", err.Error())
	}
}

// ServerOptions returns the interceptors every gRPC server of this service needs.
func (s *Server) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ForceServerCodecV2(decodeCodec{}),
		grpc.ChainUnaryInterceptor(s.unaryChain()...),
		grpc.ChainStreamInterceptor(s.streamChain()...),
	}
}

// Register adds the twofactor services to g.
func (s *Server) Register(g grpc.ServiceRegistrar) {
	pb.RegisterChallengeServiceServer(g, &s.challenges)
	pb.RegisterEnrollmentServiceServer(g, &s.enrollment)
	if s.appPass != nil {
		pb.RegisterAppPasswordServiceServer(g, s.appPass)
	}
	pb.RegisterAdminServiceServer(g, &s.admin)
	pb.RegisterDevServiceServer(g, &s.dev)
	if s.password != nil {
		pb.RegisterPasswordServiceServer(g, s.password)
	}
	if s.device != nil {
		pb.RegisterDeviceServiceServer(g, s.device)
	}
}

// Sweep deletes expired challenges, unfinished enrollments, sent codes and their
// old send counters; call it now and then.
func (s *Server) Sweep(ctx context.Context) error {
	now := s.now().UTC()
	if _, err := s.store.DeleteChallengesBefore(ctx, now.Add(-time.Hour)); err != nil {
		return err
	}
	if _, err := s.store.DeleteExpiredPendingFactors(ctx, now); err != nil {
		return err
	}
	if err := s.sweepOTPCodes(ctx, now); err != nil {
		return err
	}
	if _, err := s.store.DeleteExpiredTrustedDevices(ctx, now); err != nil {
		return err
	}
	if _, err := s.store.DeleteFamiliarNetworksBefore(ctx, now); err != nil {
		return err
	}
	if s.push != nil {
		if err := s.push.Cleanup(ctx); err != nil {
			return err
		}
	}
	_, err := s.store.DeleteThrottlesBefore(ctx, now.Add(-s.throttle.Config().Window))
	return err
}

// SweepAudit deletes audit records older than retention (the NATS stream has its
// own max age).
func (s *Server) SweepAudit(ctx context.Context, retention time.Duration) error {
	_, err := s.store.DeleteAuditEventsBefore(ctx, s.now().UTC().Add(-retention))
	return err
}
