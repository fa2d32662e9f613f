package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc"

	"github.com/twofactor/twofactor/audit"
	"github.com/twofactor/twofactor/notify"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/admincodes"
	"github.com/twofactor/twofactor/providers/apppasswords"
	"github.com/twofactor/twofactor/providers/backupcodes"
	"github.com/twofactor/twofactor/providers/policy"
	"github.com/twofactor/twofactor/providers/totp"
	"github.com/twofactor/twofactor/providers/webauthn"
	"github.com/twofactor/twofactor/server/throttle"
	"github.com/twofactor/twofactor/storage"
)

// Options are the server's own settings; zero values mean defaults.
type Options struct {
	// ChallengeTTL is how long a challenge can be answered; default 5 minutes.
	ChallengeTTL time.Duration
	// MaxAttempts wrong answers end a challenge; default 5.
	MaxAttempts int
	// AuditPublishTimeout bounds the NATS publish of one audit event; default 2 s.
	AuditPublishTimeout time.Duration
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

// Deps are the parts a Server is wired from.
type Deps struct {
	Store   *storage.Store
	Keys    *storage.KeyRing
	APIKeys *APIKeys
	TOTP    *totp.Provider
	// AppPasswords serves AppPasswordService; nil leaves it unregistered. Its
	// Announcer and a subscription calling its Invalidate are wired by the caller.
	AppPasswords *apppasswords.Service
	Auditor      Auditor
	Logger       *slog.Logger
	Now          func() time.Time

	// Recovery and administration; built from Store, Keys and Now with their
	// defaults when nil.
	BackupCodes *backupcodes.Provider
	AdminCodes  *admincodes.Provider
	Policy      *policy.Provider

	// Events publishes to NATS JetStream (audit trail, revocation announcements).
	// Optional: without it, app-password revocations stay local to this replica.
	Events *notify.Publisher

	// Breached serves PasswordService (a range-API client or an offline list);
	// nil leaves it unregistered.
	Breached PasswordChecker

	// WebAuthn enables security keys, passkeys and imported U2F keys (optional).
	WebAuthn *webauthn.Provider

	// Throttle slows down and locks guessing; built on Store with
	// throttle.DefaultConfig when nil.
	Throttle *throttle.Throttler
	// Metrics receives the Prometheus series; a new set when nil (see Metrics()).
	Metrics *Metrics
}

// Server implements the twofactor.v1 services.
type Server struct {
	pb.UnimplementedChallengeServiceServer
	pb.UnimplementedEnrollmentServiceServer
	pb.UnimplementedAppPasswordServiceServer
	pb.UnimplementedAdminServiceServer
	pb.UnimplementedPasswordServiceServer

	opts     Options
	store    *storage.Store
	ring     *storage.KeyRing
	keys     *APIKeys
	totp     *totp.Provider
	apppw    *apppasswords.Service
	wa       *webauthn.Provider
	auditor  Auditor
	events   *notify.Publisher
	breached PasswordChecker
	closers  []func()
	// closeAudit flushes and stops the audit trail New built (nil: the caller's).
	closeAudit func()
	throttle   *throttle.Throttler
	metrics    *Metrics
	log        *slog.Logger
	now        func() time.Time
	methods    map[pb.Method]method

	recovery
}

// New builds a Server.
func New(d Deps, opts Options) (*Server, error) {
	if d.Store == nil || d.Keys == nil || d.APIKeys == nil || d.TOTP == nil {
		return nil, errors.New("server: Store, Keys, APIKeys and TOTP are required")
	}
	s := &Server{
		opts:     opts.withDefaults(),
		store:    d.Store,
		ring:     d.Keys,
		keys:     d.APIKeys,
		totp:     d.TOTP,
		apppw:    d.AppPasswords,
		wa:       d.WebAuthn,
		auditor:  d.Auditor,
		events:   d.Events,
		breached: d.Breached,
		throttle: d.Throttle,
		metrics:  d.Metrics,
		log:      d.Logger,
		now:      d.Now,
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.metrics == nil {
		s.metrics = NewMetrics()
	}
	if s.auditor == nil {
		ta := audit.NewTrail(audit.TrailConfig{Store: s.store, Log: s.log})
		s.auditor = ta
		s.closeAudit = func() {
			ctx, cancel := context.WithTimeout(context.Background(), auditCloseTimeout)
			defer cancel()
			if err := ta.Close(ctx); err != nil {
				s.log.Error("audit trail not flushed on close", "error", err.Error())
			}
		}
	}
	if s.throttle == nil {
		th, err := throttle.New(s.store, throttle.DefaultConfig(), s.now)
		if err != nil {
			return nil, err
		}
		s.throttle = th
	}
	s.methods = map[pb.Method]method{
		pb.Method_METHOD_TOTP: totpMethod{s.totp},
	}
	if err := s.initRecovery(d); err != nil {
		return nil, err
	}
	if s.apppw != nil && s.events != nil {
		// Every replica forgets a revoked app password as soon as any replica
		// announces it.
		unsub, err := s.events.SubscribeRevoked(s.apppw.Invalidate)
		if err != nil {
			return nil, fmt.Errorf("subscribe to app-password revocations: %w", err)
		}
		s.closers = append(s.closers, unsub)
	}
	if s.events != nil {
		// Every replica forgets that a subject was clean as soon as any replica
		// announces a failure of it (see throttle.Config.CleanCacheTTL).
		unsub, err := s.events.SubscribeThrottleFailed(func(sub notify.ThrottleSubject) {
			s.throttle.Invalidate(throttle.Subject{Kind: sub.Kind, Key: sub.Key})
		})
		if err != nil {
			return nil, fmt.Errorf("subscribe to throttle failures: %w", err)
		}
		s.closers = append(s.closers, unsub)
	}
	if s.wa != nil {
		s.methods[pb.Method_METHOD_WEBAUTHN] = webauthnMethod{s: s, p: s.wa}
	}
	return s, nil
}

// Metrics returns the Prometheus series this server updates.
func (s *Server) Metrics() *Metrics { return s.metrics }

// auditCloseTimeout bounds how long Close waits for the audit trail to drain.
const auditCloseTimeout = 10 * time.Second

// Close releases the subscriptions New made and flushes the audit trail: events
// recorded before Close are in the store and on NATS when it returns (call it
// after the gRPC server has stopped, before the store and NATS are closed).
func (s *Server) Close() {
	for _, c := range s.closers {
		c()
	}
	s.closers = nil
	if s.closeAudit != nil {
		s.closeAudit()
		s.closeAudit = nil
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), auditCloseTimeout)
		defer cancel()
		_ = s.flushAuditStore(ctx)
	}
}

// ServerOptions returns the interceptors every gRPC server of this service needs.
func (s *Server) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(s.unaryInterceptor),
		grpc.ChainStreamInterceptor(s.streamInterceptor),
	}
}

// Register adds the twofactor services to g.
func (s *Server) Register(g grpc.ServiceRegistrar) {
	pb.RegisterChallengeServiceServer(g, s)
	pb.RegisterEnrollmentServiceServer(g, s)
	if s.apppw != nil {
		pb.RegisterAppPasswordServiceServer(g, s)
	}
	pb.RegisterAdminServiceServer(g, s)
	if s.breached != nil {
		pb.RegisterPasswordServiceServer(g, s)
	}
}

// Sweep deletes expired challenges and unfinished enrollments; call it now and then.
func (s *Server) Sweep(ctx context.Context) error {
	now := s.now().UTC()
	if _, err := s.store.DeleteChallengesBefore(ctx, now.Add(-time.Hour)); err != nil {
		return err
	}
	if _, err := s.store.DeleteExpiredPendingFactors(ctx, now); err != nil {
		return err
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
