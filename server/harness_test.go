package server_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/twofactor/twofactor/audit"
	"github.com/twofactor/twofactor/internal/testfix"
	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/natstest"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/admincodes"
	"github.com/twofactor/twofactor/providers/apppasswords"
	"github.com/twofactor/twofactor/providers/backupcodes"
	"github.com/twofactor/twofactor/providers/breached"
	"github.com/twofactor/twofactor/providers/policy"
	"github.com/twofactor/twofactor/providers/push"
	"github.com/twofactor/twofactor/providers/totp"
	"github.com/twofactor/twofactor/providers/trusteddevice"
	"github.com/twofactor/twofactor/providers/webauthn"
	"github.com/twofactor/twofactor/server"
	"github.com/twofactor/twofactor/server/throttle"
	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// testClock is a clock tests move by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// cluster is one database, one key ring, one set of API keys, and any number of
// replicas (each a real gRPC server on a loopback port) sharing them.
type cluster struct {
	t      *testing.T
	url    string
	ring   *storage.KeyRing
	clock  *testClock
	keys   map[string]string // role set name → token
	apiKey *server.APIKeys
	logs   *testfix.LogBuffer
	// waPolicy is the WebAuthn policy every replica reads (see webauthn_flow_test.go).
	waPolicy *testWebAuthnPolicy
	// storedPolicy makes replicas read their WebAuthn policy from the stored policy
	// (SetPolicy), as authd does, instead of waPolicy.
	storedPolicy bool
	// nc, js and names reach the NATS server the replicas share (embedded, or the
	// one TWOFACTOR_TEST_NATS_URL names).
	nc    *nats.Conn
	js    jetstream.JetStream
	names notify.Names
	// pwned is an httptest server speaking the pwned-passwords range API.
	pwned *httptest.Server
	// throttle configures every replica's throttle. newCluster sets limits high
	// enough that tests of other things never meet them; throttle tests set their own.
	throttle throttle.Config
	// factors are test-only factors every replica registers after the built-in ones.
	factors []server.Factor
	// factorFns build more factors per replica, on the replica's own store.
	factorFns []func(st *storage.Store) []server.Factor
	// auditLinger is the replicas' audit writer linger (0: the default).
	auditLinger time.Duration
	// pushOnWait is every replica's push.Config.OnWait.
	pushOnWait func(challengeID string)
	// pushLockOnNotMe is every replica's push.Config.LockOnNotMe.
	pushLockOnNotMe bool
	// notMe is every replica's server.Deps.NotMe; a factorFn may set it for the
	// replica it builds (notme_flow_test.go).
	notMe server.NotMeNotifier
	// onAudit, when set, sees every event a replica records, on the recording
	// request's context, before the trail does.
	onAudit func(ctx context.Context, e server.AuditEvent)
	// devTelegram is every replica's server.Deps.DevTelegramStart (nil: refused).
	devTelegram func(ctx context.Context, token, chatID string) error
	// replicas are the ones start made (flushAudit flushes each).
	replicas []*replica
}

// flushAudit waits until every replica's audit events so far are stored: the
// trail writes those recorded outside a transaction in the background.
func (c *cluster) flushAudit() {
	c.t.Helper()
	for _, r := range c.replicas {
		r.flushAudit(c.t)
	}
}

// flushAudit waits until the replica's audit events so far are stored.
func (r *replica) flushAudit(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.trail.Flush(ctx); err != nil {
		t.Fatalf("flush audit: %v", err)
	}
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{
		t:     t,
		url:   storagetest.URL(t),
		ring:  storagetest.KeyRing(t),
		clock: &testClock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)},
		keys:  map[string]string{},
		logs:  &testfix.LogBuffer{},
	}
	c.waPolicy = &testWebAuthnPolicy{}
	c.throttle = throttle.Config{IPDelayAfter: 40, UserDelayAfter: 60, UserLockAfter: 100}
	c.nc, c.js, c.names = natstest.Start(t)
	c.pwned = pwnedRangeAPI(t)
	var entries []server.APIKeyEntry
	for name, roles := range map[string][]string{
		"login":       {server.RoleLogin},
		"selfservice": {server.RoleSelfService},
		"admin":       {server.RoleAdmin},
		"all":         {server.RoleLogin, server.RoleSelfService, server.RoleAdmin},
	} {
		tok, e, err := server.NewAPIKey(name, roles)
		if err != nil {
			t.Fatal(err)
		}
		c.keys[name] = tok
		entries = append(entries, e)
	}
	var err error
	if c.apiKey, err = server.NewAPIKeys(entries); err != nil {
		t.Fatal(err)
	}
	return c
}

// replica is one running authd replica and a connection to it.
type replica struct {
	addr string
	conn *grpc.ClientConn
	srv  *server.Server
	nc   *nats.Conn // this replica's own NATS connection
	// trail is the replica's audit trail and relay its outbox's publisher, as
	// authd wires them (server/app).
	trail *audit.Trail
	relay *audit.Relay
}

func (c *cluster) start() *replica {
	t := c.t
	t.Helper()
	st := storagetest.OpenURL(t, c.url)
	tp, err := totp.New(st, c.ring, totp.Config{Issuer: "Test"}, c.clock.Now, nil)
	if err != nil {
		t.Fatal(err)
	}
	var (
		waPolicy webauthn.PolicySource = c.waPolicy
		ref                            = &server.PolicyRef{}
	)
	if c.storedPolicy {
		waPolicy = ref
	}
	wa, err := webauthn.New(st, testWebAuthnConfig, waPolicy, c.clock.Now, nil)
	if err != nil {
		t.Fatal(err)
	}
	bcodes := backupcodes.New(st, c.ring, backupcodes.Options{Clock: c.clock.Now})
	acodes := admincodes.New(st, c.ring, admincodes.Options{Clock: c.clock.Now})
	ps, err := push.New(st, c.ring, push.Config{Now: c.clock.Now, OnWait: c.pushOnWait, LockOnNotMe: c.pushLockOnNotMe})
	if err != nil {
		t.Fatal(err)
	}
	nc := natstest.Dial(t, c.nc) // each replica has its own NATS connection
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	events := notify.NewPublisher(js, nc, c.names)
	extra := c.factors
	for _, fn := range c.factorFns {
		extra = append(extra, fn(st)...)
	}
	factors, err := server.NewRegistry(append([]server.Factor{server.TOTPFactor(tp), server.WebAuthnFactor(wa),
		server.BackupCodeFactor(bcodes), server.AdminCodeFactor(acodes), server.PushFactor(ps, events)}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.New(st, policy.Options{Methods: factors.PolicyMethods(), Clock: c.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ref.Set(pol)
	ap, err := apppasswords.New(apppasswords.Config{Store: st, Hasher: c.ring, Announcer: events, Now: c.clock.Now, CacheSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	devices, err := trusteddevice.New(trusteddevice.Config{Store: st, Hasher: c.ring, Now: c.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	bc, err := breached.NewRangeClient(breached.RangeConfig{BaseURL: c.pwned.URL, HTTPClient: c.pwned.Client(), Now: c.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	log := c.logs.Logger()
	th, err := throttle.New(st, c.throttle, c.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	metrics := server.NewMetrics()
	trail, relay := startAudit(t, st, events, log, metrics, c.auditLinger)
	var auditor server.Auditor = trail
	if c.onAudit != nil {
		auditor = hookedTrail{Trail: trail, hook: c.onAudit}
	}
	srv, err := server.New(server.Deps{
		Store: st, Keys: c.ring, APIKeys: c.apiKey, Factors: factors, Logger: log, Now: c.clock.Now,
		BackupCodes: bcodes, AdminCodes: acodes, Auditor: auditor, Metrics: metrics,
		WebAuthn: wa, AppPasswords: ap, Events: events, Breached: bc, Throttle: th, Policy: pol, Devices: devices,
		Push: ps, PushWatcher: server.NATSPushWatcher{Conn: nc, Subject: c.names.PushRequest()}, NotMe: c.notMe,
		DevTelegramStart: c.devTelegram,
	}, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	g := grpc.NewServer(srv.ServerOptions()...)
	srv.Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	r := &replica{addr: lis.Addr().String(), conn: conn, srv: srv, nc: nc, trail: trail, relay: relay}
	c.replicas = append(c.replicas, r)
	return r
}

// hookedTrail is an audit trail whose Record calls hook first (cluster.onAudit).
type hookedTrail struct {
	*audit.Trail
	hook func(ctx context.Context, e server.AuditEvent)
}

func (h hookedTrail) Record(ctx context.Context, e server.AuditEvent) {
	h.hook(ctx, e)
	h.Trail.Record(ctx, e)
}

// startAudit starts a replica's audit trail and its relay (polling often, so that
// tests reading the stream wait little); both stop when the test ends, before the
// store closes.
func startAudit(t *testing.T, st *storage.Store, events *notify.Publisher, log *slog.Logger, m *server.Metrics, linger time.Duration) (*audit.Trail, *audit.Relay) {
	t.Helper()
	am := audit.NewMetrics(m.Registry())
	relay, err := audit.NewRelay(audit.RelayConfig{Store: st, Events: events, Log: log, Metrics: am,
		Interval: 20 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	trail := audit.NewTrail(audit.TrailConfig{Store: st, Log: log, Metrics: am, Stored: relay.Kick, Linger: linger})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); relay.Run(ctx) }()
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		if err := trail.Close(cctx); err != nil {
			t.Errorf("close audit trail: %v", err)
		}
		cancel()
		<-done
	})
	return trail, relay
}

// as returns a context that authenticates with the named key.
func (c *cluster) as(name string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+c.keys[name])
}

func (r *replica) challenges() pb.ChallengeServiceClient { return pb.NewChallengeServiceClient(r.conn) }
func (r *replica) enrollment() pb.EnrollmentServiceClient {
	return pb.NewEnrollmentServiceClient(r.conn)
}

func (r *replica) devices() pb.DeviceServiceClient { return pb.NewDeviceServiceClient(r.conn) }
func (r *replica) admin() pb.AdminServiceClient    { return pb.NewAdminServiceClient(r.conn) }

func (r *replica) appPasswords() pb.AppPasswordServiceClient {
	return pb.NewAppPasswordServiceClient(r.conn)
}

func withRaw(v string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", v)
}

// pwnedRangeAPI serves GET /range/<5 hex> as the pwned-passwords API does: CRLF
// lines "SUFFIX:COUNT", padded. It knows the range of "password" (5BAA6) from
// providers/breached/testdata; every other range holds only padding.
func pwnedRangeAPI(t *testing.T) *httptest.Server {
	t.Helper()
	known, err := os.ReadFile("../providers/breached/testdata/range-5BAA6.txt")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		prefix, ok := strings.CutPrefix(r.URL.Path, "/range/")
		if !ok || len(prefix) != 5 {
			http.NotFound(w, r)
			return
		}
		if prefix == "5BAA6" {
			w.Write(known)
			return
		}
		w.Write([]byte("0000000000000000000000000000000000A:0\r\n0000000000000000000000000000000000B:0"))
	}))
	t.Cleanup(srv.Close)
	return srv
}
