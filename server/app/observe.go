package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"time"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/server"
	"github.com/twofactor/twofactor/server/throttle"
)

// ObserveConfig holds the settings of throttling, the audit trail, metrics and
// health (embedded in Config; flags registered by observeFlags).
type ObserveConfig struct {
	MetricsListen string

	ThrottleBaseDelay      time.Duration
	ThrottleMaxDelay       time.Duration
	ThrottleWindow         time.Duration
	ThrottleIPDelayAfter   int
	ThrottleUserDelayAfter int
	ThrottleUserLockAfter  int
	ThrottleIPLockAfter    int
	ThrottleLockDuration   time.Duration
	ThrottleIPv6Prefix     int
	ThrottleAllow          string
	ThrottleCleanCacheTTL  time.Duration
	ThrottleFamiliarTTL    time.Duration
	ThrottleFamiliarMax    int

	AuditMaxAge         time.Duration
	AuditRetention      time.Duration
	AuditPublishTimeout time.Duration
	AuditRelayLinger    time.Duration
	HealthInterval      time.Duration
}

func observeFlags(fs *flag.FlagSet, c *ObserveConfig) {
	d := throttle.DefaultConfig()
	fs.StringVar(&c.MetricsListen, "metrics-listen", "127.0.0.1:9464", `Prometheus metrics HTTP address (GET /metrics); "" to disable`)
	fs.DurationVar(&c.ThrottleBaseDelay, "throttle-base-delay", d.BaseDelay, "delay unit: n counted failures wait base×2^n")
	fs.DurationVar(&c.ThrottleMaxDelay, "throttle-max-delay", d.MaxDelay, "longest delay (not a lock)")
	fs.DurationVar(&c.ThrottleWindow, "throttle-window", d.Window, "a count with no failure for this long starts again")
	fs.IntVar(&c.ThrottleIPDelayAfter, "throttle-ip-delay-after", d.IPDelayAfter, "failures of a client network (IPv4 address, IPv6 /56) before it is delayed")
	fs.IntVar(&c.ThrottleUserDelayAfter, "throttle-user-delay-after", d.UserDelayAfter, "failures of a user before the user is delayed (more than the network's)")
	fs.IntVar(&c.ThrottleUserLockAfter, "throttle-user-lock-after", d.UserLockAfter, "consecutive failures that hard-lock a user (at most 100, NIST SP 800-63B)")
	fs.IntVar(&c.ThrottleIPLockAfter, "throttle-ip-lock-after", 0, "failures that hard-lock a client network (0: never, delays only)")
	fs.DurationVar(&c.ThrottleLockDuration, "throttle-lock-duration", d.LockDuration, "how long a hard lock lasts unless an admin clears it")
	fs.IntVar(&c.ThrottleIPv6Prefix, "throttle-ipv6-prefix", d.IPv6Prefix, "prefix length an IPv6 address counts by")
	fs.StringVar(&c.ThrottleAllow, "throttle-allow", "", "comma-separated networks (CIDR) never throttled by network")
	fs.DurationVar(&c.ThrottleCleanCacheTTL, "throttle-clean-cache-ttl", time.Second, "how long a replica takes a subject found without failures to have none without reading again; failures are announced to every replica over NATS (0: read on every attempt)")
	fs.DurationVar(&c.ThrottleFamiliarTTL, "throttle-familiar-ttl", d.FamiliarTTL, "how long a network a user passed a second factor from counts as familiar (its own failure count, which strangers elsewhere cannot lock)")
	fs.IntVar(&c.ThrottleFamiliarMax, "throttle-familiar-max", d.FamiliarMax, "familiar networks kept per user, the most recently seen (at most 100)")
	fs.DurationVar(&c.AuditMaxAge, "audit-max-age", notify.DefaultStreamConfig().AuditMaxAge, "how long the NATS audit stream keeps events")
	fs.DurationVar(&c.AuditRetention, "audit-retention", 365*24*time.Hour, "how long the database keeps audit events")
	fs.DurationVar(&c.AuditPublishTimeout, "audit-publish-timeout", 2*time.Second, "bound on the audit relay's wait for JetStream's acknowledgements of one round (and on an unanswered async publish)")
	fs.DurationVar(&c.AuditRelayLinger, "audit-relay-linger", 20*time.Millisecond, "how long the audit relay, woken by new rows, waits before publishing, so that one round carries the rows stored meanwhile (0: none)")
	fs.DurationVar(&c.HealthInterval, "health-interval", 5*time.Second, "how often the database and NATS are checked for gRPC health")
}

// throttleConfig checks the throttle settings.
func (c *ObserveConfig) throttleConfig() (throttle.Config, error) {
	tc := throttle.Config{
		BaseDelay: c.ThrottleBaseDelay, MaxDelay: c.ThrottleMaxDelay, Window: c.ThrottleWindow,
		IPDelayAfter: c.ThrottleIPDelayAfter, UserDelayAfter: c.ThrottleUserDelayAfter,
		UserLockAfter: c.ThrottleUserLockAfter, IPLockAfter: c.ThrottleIPLockAfter,
		LockDuration: c.ThrottleLockDuration, IPv6Prefix: c.ThrottleIPv6Prefix,
		CleanCacheTTL: c.ThrottleCleanCacheTTL,
		FamiliarTTL:   c.ThrottleFamiliarTTL, FamiliarMax: c.ThrottleFamiliarMax,
	}
	for _, s := range splitList(c.ThrottleAllow) {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return tc, fmt.Errorf("throttle-allow: %q is not a network (CIDR) or address", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		tc.Allow = append(tc.Allow, p.Masked())
	}
	return tc, nil
}

func (c *ObserveConfig) finish() error {
	if c.AuditRetention < 24*time.Hour {
		return fmt.Errorf("audit-retention %v: want at least 24h", c.AuditRetention)
	}
	if c.AuditMaxAge < time.Hour {
		return fmt.Errorf("audit-max-age %v: want at least 1h", c.AuditMaxAge)
	}
	if c.HealthInterval < 100*time.Millisecond {
		return fmt.Errorf("health-interval %v: want at least 100ms", c.HealthInterval)
	}
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			return fmt.Errorf("metrics-listen %q: want host:port", c.MetricsListen)
		}
	}
	_, err := c.throttleConfig()
	return err
}

// startMetrics listens on MetricsListen and serves /metrics until Serve ends.
func (a *App) startMetrics(m *server.Metrics) error {
	if a.cfg.MetricsListen == "" {
		return nil
	}
	lis, err := net.Listen("tcp", a.cfg.MetricsListen)
	if err != nil {
		return fmt.Errorf("metrics-listen %s: %w", a.cfg.MetricsListen, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	a.metricsLis = lis
	go func() {
		if err := hs.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("metrics server", "error", err.Error())
		}
	}()
	a.closers = append(a.closers, func() { hs.Close() })
	return nil
}

// MetricsAddr is the address /metrics is served on ("" when disabled).
func (a *App) MetricsAddr() string {
	if a.metricsLis == nil {
		return ""
	}
	return a.metricsLis.Addr().String()
}

// EventsHealthService is the named gRPC health service for what needs NATS (the
// audit stream's relay, announcements, out-of-band sends): NOT_SERVING while NATS
// is unreachable, while the overall status stays SERVING (logins do not need NATS,
// and a load balancer must not drain every replica for an outage of it).
const EventsHealthService = "twofactor.v1.Events"

// healthCheck is one dependency check for gRPC health. A check with no services
// decides the overall status ("" and every registered service); one with services
// decides only those named services (which are NOT_SERVING, too, while the
// overall status is).
type healthCheck struct {
	name     string
	check    func(context.Context) error
	services []string
}

// healthWatcher reports NOT_SERVING while a check fails and SERVING again when all
// pass, once at start and at every tick; a dependency's failure and its recovery
// are logged once each. It never restarts anything: the store's pool and the NATS
// connection reconnect by themselves.
type healthWatcher struct {
	health   *health.Server
	services func() []string
	checks   []healthCheck
	log      interface {
		Warn(string, ...any)
		Info(string, ...any)
	}
	// rounds, when set, receives the overall status of every finished round (tests).
	rounds chan<- healthpb.HealthCheckResponse_ServingStatus
	// failing holds the names of the checks that failed in the last round.
	failing map[string]bool
}

func (w *healthWatcher) run(ctx context.Context, tick <-chan time.Time) {
	last := healthpb.HealthCheckResponse_UNKNOWN
	for {
		st, named := w.round(ctx)
		if ctx.Err() != nil {
			return // shutting down: Serve sets the final status
		}
		if st != last && last != healthpb.HealthCheckResponse_UNKNOWN {
			w.log.Info("health changed", "status", st.String())
		}
		last = st
		w.health.SetServingStatus("", st)
		for _, name := range w.services() {
			if _, own := named[name]; !own {
				w.health.SetServingStatus(name, st)
			}
		}
		for name, nst := range named {
			if st != healthpb.HealthCheckResponse_SERVING {
				nst = st
			}
			w.health.SetServingStatus(name, nst)
		}
		if w.rounds != nil {
			w.rounds <- st
		}
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
	}
}

// round runs every check: st is the overall status, named the status of each
// service a check names.
func (w *healthWatcher) round(ctx context.Context) (st healthpb.HealthCheckResponse_ServingStatus, named map[string]healthpb.HealthCheckResponse_ServingStatus) {
	if w.failing == nil {
		w.failing = map[string]bool{}
	}
	st = healthpb.HealthCheckResponse_SERVING
	named = map[string]healthpb.HealthCheckResponse_ServingStatus{}
	for _, c := range w.checks {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := c.check(cctx)
		cancel()
		cst := healthpb.HealthCheckResponse_SERVING
		if err != nil {
			cst = healthpb.HealthCheckResponse_NOT_SERVING
		}
		if err != nil && !w.failing[c.name] && ctx.Err() == nil {
			w.log.Warn("dependency unreachable", "dependency", c.name, "error", err.Error())
		} else if err == nil && w.failing[c.name] {
			w.log.Info("dependency reachable again", "dependency", c.name)
		}
		w.failing[c.name] = err != nil
		if len(c.services) == 0 {
			if err != nil {
				st = cst
			}
			continue
		}
		for _, name := range c.services {
			if named[name] != healthpb.HealthCheckResponse_NOT_SERVING {
				named[name] = cst
			}
		}
	}
	return st, named
}
