package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/channels/webpush"
	"github.com/twofactor/twofactor/providers/apppasswords"
	"github.com/twofactor/twofactor/providers/breached"
	"github.com/twofactor/twofactor/providers/trusteddevice"
	"github.com/twofactor/twofactor/server"
	"github.com/twofactor/twofactor/server/throttle"
	"github.com/twofactor/twofactor/storage"
)

// App is one running authd replica.
type App struct {
	cfg     *Config
	log     *slog.Logger
	store   *storage.Store
	apiKeys *server.APIKeys
	srv     *server.Server
	grpc    *grpc.Server
	health  *health.Server
	lis     net.Listener
	// metricsLis serves /metrics (nil when disabled).
	metricsLis net.Listener
	nc         *nats.Conn
	events     *notify.Publisher
	js         jetstream.JetStream
	names      notify.Names
	// natsURL is the embedded NATS server's TCP client URL ("" without one).
	natsURL string
	// devTelegram simulates a Telegram /start (embedded mode, Telegram to the
	// outbox; nil otherwise).
	devTelegram func(ctx context.Context, token, chatID string) error
	closers     []func()
}

// NewLogger builds the structured logger the configuration asks for.
func NewLogger(cfg *Config, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, fmt.Errorf("log-level %q: want debug, info, warn or error", cfg.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return slog.New(slog.NewJSONHandler(w, opts)), nil
}

// New opens the stores, prepares keys on first start, wires the services and
// starts listening. Serve then serves until its context ends.
func New(ctx context.Context, cfg *Config, log *slog.Logger) (_ *App, err error) {
	a := &App{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			a.close() // what was opened before the failure
		}
	}()
	if err := Init(cfg, log); err != nil {
		return nil, err
	}
	for _, w := range cfg.Warnings() {
		log.Warn(w)
	}
	ring, err := a.open(ctx)
	if err != nil {
		return nil, err
	}
	deps, err := a.buildDeps(ring)
	if err != nil {
		return nil, err
	}
	if err := a.startPushDelivery(ctx, deps.Push); err != nil {
		return nil, err
	}
	a.srv, err = server.New(deps, server.Options{ChallengeTTL: cfg.ChallengeTTL, MaxAttempts: cfg.MaxAttempts})
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, a.srv.Close)
	if err := a.buildGRPC(); err != nil {
		return nil, err
	}
	if err := a.startMetrics(deps.Metrics); err != nil {
		return nil, err
	}
	if a.lis, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	if cfg.PprofListen != "" {
		if err := a.servePprof(cfg.PprofListen); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// open loads the keys and opens the store (migrated) and NATS.
func (a *App) open(ctx context.Context) (*storage.KeyRing, error) {
	ring, err := storage.LoadKeyRing(a.cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	kf, err := server.LoadAPIKeyFile(a.cfg.APIKeysFile)
	if err != nil {
		return nil, err
	}
	if a.apiKeys, err = server.NewAPIKeys(kf.Keys); err != nil {
		return nil, fmt.Errorf("%s: %w", a.cfg.APIKeysFile, err)
	}
	if a.store, err = storage.Open(ctx, a.cfg.DatabaseURL, storage.Options{}); err != nil {
		return nil, err
	}
	a.closers = append(a.closers, func() { a.store.Close() })
	if err := a.store.Migrate(ctx); err != nil {
		return nil, err
	}
	return ring, a.startNATS(ctx)
}

// buildDeps builds every part server.New needs: the one place they are built.
func (a *App) buildDeps(ring *storage.KeyRing) (server.Deps, error) {
	d := server.Deps{Store: a.store, Keys: ring, APIKeys: a.apiKeys, Logger: a.log, Now: time.Now, Events: a.events,
		Metrics: server.NewMetrics(), DevTelegramStart: a.devTelegram}
	var err error
	if err = a.buildFactors(&d); err != nil {
		return d, err
	}
	if d.AppPasswords, err = apppasswords.New(apppasswords.Config{Store: a.store, Hasher: ring, Announcer: a.events, CacheSize: a.cfg.AppPasswordCache,
		RevocationCheck: a.cfg.AppPasswordRevocationCheck}); err != nil {
		return d, err
	}
	if d.Devices, err = trusteddevice.New(trusteddevice.Config{Store: a.store, Hasher: ring,
		Grace: a.cfg.RememberDeviceGrace, MaxPerUser: a.cfg.RememberDeviceMax}); err != nil {
		return d, err
	}
	if d.Breached, err = a.breachedChecker(); err != nil {
		return d, err
	}
	tc, err := a.cfg.throttleConfig()
	if err != nil {
		return d, err
	}
	if d.Throttle, err = throttle.New(a.store, tc, nil); err != nil {
		return d, err
	}
	if d.Auditor, err = a.startAudit(d.Metrics); err != nil {
		return d, err
	}
	return d, nil
}

// buildGRPC makes the gRPC server with the service's interceptors, health and
// (when configured) reflection.
func (a *App) buildGRPC() error {
	opts := append(a.srv.ServerOptions(),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.MaxRecvMsgSize(1<<20),
		// Reused goroutines keep the deep stacks the SQLite driver grows, instead
		// of growing (copying) a fresh stack for every RPC; when all are busy, gRPC
		// starts a goroutine as it would without them.
		grpc.NumStreamWorkers(uint32(8*runtime.GOMAXPROCS(0))),
	)
	if a.cfg.TLSCert != "" {
		tc, err := serverTLS(a.cfg)
		if err != nil {
			return err
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(tc)))
	}
	a.grpc = grpc.NewServer(opts...)
	a.srv.Register(a.grpc)
	a.health = health.NewServer()
	healthpb.RegisterHealthServer(a.grpc, a.health)
	if a.cfg.Reflection {
		reflection.Register(a.grpc)
	}
	return nil
}

// Addr is the address the gRPC server listens on.
func (a *App) Addr() string { return a.lis.Addr().String() }

// ReloadAPIKeys re-reads the API key file (on SIGHUP).
func (a *App) ReloadAPIKeys() error {
	kf, err := server.LoadAPIKeyFile(a.cfg.APIKeysFile)
	if err != nil {
		return err
	}
	return a.apiKeys.Replace(kf.Keys)
}

// Serve serves until ctx ends, then shuts down gracefully: health turns
// NOT_SERVING, RPCs in flight finish (up to ShutdownGrace), connections close.
func (a *App) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- a.grpc.Serve(a.lis) }()
	go a.watchHealth(ctx, a.cfg.HealthInterval)
	go a.sweep(ctx, time.Minute)
	a.log.Info("authd serving", "addr", a.Addr(), "database", string(a.store.Dialect()), "tls", a.cfg.TLSCert != "", "mtls", a.cfg.TLSClientCA != "")
	select {
	case err := <-errc:
		a.close()
		return err
	case <-ctx.Done():
	}
	a.health.Shutdown()
	a.srv.Drain()
	done := make(chan struct{})
	go func() { a.grpc.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(a.cfg.ShutdownGrace):
		a.log.Warn("shutdown grace over; closing connections")
		a.grpc.Stop()
	}
	a.close()
	a.log.Info("authd stopped")
	return nil
}

func (a *App) close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
	a.closers = nil
}

// watchHealth reports NOT_SERVING while the database is unreachable and SERVING
// again when it returns; NATS decides only EventsHealthService (see healthWatcher).
func (a *App) watchHealth(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	w := &healthWatcher{health: a.health, log: a.log, services: func() []string {
		var names []string
		for name := range a.grpc.GetServiceInfo() {
			names = append(names, name)
		}
		return names
	}, checks: []healthCheck{
		{name: "database", check: a.store.Ping},
		{name: "nats", check: func(ctx context.Context) error { return notify.HealthyContext(ctx, a.nc) },
			services: []string{EventsHealthService}},
	}}
	w.run(ctx, t.C)
}

// startNATS connects to the external NATS, or starts the embedded one (JetStream
// in the data folder, reached in-process), and makes sure the streams exist.
func (a *App) startNATS(ctx context.Context) error {
	names, err := notify.NewNames(a.cfg.NATSPrefix)
	if err != nil {
		return fmt.Errorf("nats-prefix: %w", err)
	}
	if a.cfg.Embedded() {
		if err := a.startEmbeddedNATS(); err != nil {
			return err
		}
	} else if a.nc, err = notify.Connect(a.cfg.NATSURL, nats.Name("authd")); err != nil {
		return fmt.Errorf("nats-url: %w", err) // the URL may hold credentials
	}
	a.closers = append(a.closers, a.nc.Close)
	// An acknowledgement that never comes (NATS died with the message) expires,
	// so that the audit relay's publications never pile up in the client.
	js, err := jetstream.New(a.nc, jetstream.WithPublishAsyncTimeout(a.cfg.AuditPublishTimeout))
	if err != nil {
		return err
	}
	sc := notify.DefaultStreamConfig()
	sc.Replicas = a.cfg.NATSReplicas
	sc.AuditMaxAge = a.cfg.AuditMaxAge
	if err := notify.EnsureStreams(ctx, js, names, sc); err != nil {
		return fmt.Errorf("nats streams: %w", err)
	}
	a.events = notify.NewPublisher(js, a.nc, names)
	return a.startDelivery(ctx, js, names)
}

// startEmbeddedNATS starts the in-process NATS server. Its TCP listener, when there
// is one, takes only clients presenting the token in <data-dir>/nats-token (issue 16,
// finding 5), over TLS when nats-tls-cert is set; authd itself connects in-process.
func (a *App) startEmbeddedNATS() error {
	tokenFile := filepath.Join(a.cfg.DataDir, notify.TokenFileName)
	token, err := notify.EnsureTokenFile(tokenFile)
	if err != nil {
		return err
	}
	ec := notify.EmbeddedConfig{
		StoreDir: filepath.Join(a.cfg.DataDir, "nats"), Listen: a.cfg.NATSListen, ServerName: "authd-embedded", Token: token,
	}
	if a.cfg.NATSTLSCert != "" {
		cert, err := tls.LoadX509KeyPair(a.cfg.NATSTLSCert, a.cfg.NATSTLSKey)
		if err != nil {
			return fmt.Errorf("nats-tls-cert/nats-tls-key: %w", err)
		}
		ec.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	emb, err := notify.StartEmbedded(ec)
	if err != nil {
		return err
	}
	a.closers = append(a.closers, emb.Shutdown)
	if err := os.Chmod(ec.StoreDir, 0o700); err != nil {
		return fmt.Errorf("nats store: %w", err)
	}
	if a.nc, err = emb.Connect(nats.Name("authd")); err != nil {
		return err
	}
	a.natsURL = emb.ClientURL()
	if u := a.natsURL; u != "" {
		a.log.Info("embedded NATS accepts clients presenting the token file", "url", u, "token_file", tokenFile, "tls", ec.TLS != nil)
	}
	return nil
}

// NATSClientURL is the URL on which the embedded NATS server accepts TCP clients
// (nats-listen; a port 0 there is resolved), or "" when it has no listener or NATS
// is external.
func (a *App) NATSClientURL() string { return a.natsURL }

func (a *App) breachedChecker() (server.PasswordChecker, error) {
	switch a.cfg.BreachedMode {
	case "off":
		return nil, nil
	case "offline":
		l, err := breached.OpenOffline(a.cfg.BreachedFile)
		if err != nil {
			return nil, err
		}
		a.closers = append(a.closers, func() { l.Close() })
		return l, nil
	}
	mode := breached.FailOpen
	if a.cfg.BreachedFailClosed {
		mode = breached.FailClosed
	}
	return breached.NewRangeClient(breached.RangeConfig{BaseURL: a.cfg.BreachedURL, Timeout: a.cfg.BreachedTimeout, FailMode: mode})
}

// servePprof serves Go's profiles on a loopback address of their own, never on
// the gRPC port.
func (a *App) servePprof(addr string) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("pprof-listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(lis)
	a.closers = append(a.closers, func() { hs.Close() })
	a.log.Info("serving profiles", "url", "http://"+lis.Addr().String()+"/debug/pprof/")
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (a *App) sweep(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := a.srv.Sweep(ctx); err != nil && !errors.Is(err, context.Canceled) {
				a.log.Warn("sweep", "error", err.Error())
			}
			if err := a.srv.SweepAudit(ctx, a.cfg.AuditRetention); err != nil && !errors.Is(err, context.Canceled) {
				a.log.Warn("audit retention sweep", "error", err.Error())
			}
		}
	}
}

// Init prepares a data folder on first start: a sealing key ring, and an API key
// file holding one admin key with every role, whose key it writes (mode 0600)
// where authctl finds it. It leaves existing files alone. Scaled-out deployments
// run it once ("authd init") before the replicas start, on the volume they share.
func Init(cfg *Config, log *slog.Logger) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data folder: %w", err)
	}
	// Whatever the umask or an older version left (issue 16, finding 9).
	if err := os.Chmod(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data folder: %w", err)
	}
	defer restrictDataFiles(cfg, log)
	if created, err := storage.EnsureKeyFile(cfg.KeyFile); err != nil {
		return err
	} else if created {
		log.Info("generated a sealing key ring", "path", cfg.KeyFile)
	}
	if created, err := notify.EnsureDeliveryKeyFile(cfg.DeliveryKeyFile); err != nil {
		return err
	} else if created {
		log.Info("generated a delivery key (give notifyd the same file)", "path", cfg.DeliveryKeyFile)
	}
	if created, err := webpush.EnsureVAPIDKeyFile(cfg.VAPIDKeyFile); err != nil {
		return err
	} else if created {
		log.Info("generated a VAPID key pair for Web Push (give notifyd the same file)", "path", cfg.VAPIDKeyFile)
	}
	return ensureAPIKeys(cfg, log)
}

// restrictDataFiles makes the files authd keeps in the data folder mode 0600 (the
// SQLite files are storage.Open's; the JetStream store is in the 0700 folder).
func restrictDataFiles(cfg *Config, log *slog.Logger) {
	for _, p := range []string{cfg.KeyFile, cfg.APIKeysFile, cfg.AdminKeyPath(), cfg.DeliveryKeyFile, cfg.VAPIDKeyFile, filepath.Join(cfg.DataDir, notify.TokenFileName)} {
		if filepath.Dir(p) != filepath.Clean(cfg.DataDir) {
			continue // the operator's file elsewhere (perhaps a read-only secret)
		}
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() == 0o600 {
			continue
		}
		if err := os.Chmod(p, 0o600); err != nil {
			log.Warn("cannot make a data file private", "path", p, "error", err.Error())
		}
	}
}

func ensureAPIKeys(cfg *Config, log *slog.Logger) error {
	if _, err := os.Stat(cfg.APIKeysFile); err == nil {
		return nil
	}
	token, entry, err := server.NewAPIKey("admin", []string{server.RoleAdmin, server.RoleLogin, server.RoleSelfService})
	if err != nil {
		return err
	}
	f, err := os.OpenFile(cfg.AdminKeyPath(), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write admin key: %w", err)
	}
	if _, err := f.WriteString(token + "\n"); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := server.AppendAPIKey(cfg.APIKeysFile, entry); err != nil {
		return err
	}
	log.Info("generated an admin API key (roles admin, login, selfservice); authctl reads it from the data folder",
		"path", cfg.AdminKeyPath(), "key_id", entry.ID)
	return nil
}

func serverTLS(cfg *Config) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("tls-cert/tls-key: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if cfg.TLSClientCA != "" {
		pem, err := os.ReadFile(cfg.TLSClientCA)
		if err != nil {
			return nil, fmt.Errorf("tls-client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls-client-ca %s: no PEM certificates", cfg.TLSClientCA)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}
