// Package app wires a complete authd from its configuration: storage, keys, NATS,
// providers, the gRPC server with health and reflection, TLS, and graceful shutdown.
// cmd/authd is a thin main around it, and tests start whole replicas with it.
package app

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/twofactor/twofactor/notify/channels/webpush"
	"github.com/twofactor/twofactor/notify/egress"
	"github.com/twofactor/twofactor/providers/apppasswords"
	"github.com/twofactor/twofactor/providers/trusteddevice"
)

// Config is authd's configuration. Every field has a flag (--kebab-case), an
// environment variable (TWOFACTOR_UPPER_SNAKE) and a key in the optional YAML file
// (kebab-case); flags win over the environment, which wins over the file.
type Config struct {
	DataDir      string
	Listen       string
	DatabaseURL  string
	NATSURL      string
	NATSListen   string
	NATSPrefix   string
	NATSReplicas int
	KeyFile      string
	// DeliveryKeyFile seals the codes published for notifyd (shared with it).
	DeliveryKeyFile string
	// OutboxDir and NotifyConfig set the in-process workers of embedded mode.
	OutboxDir    string
	NotifyConfig string
	APIKeysFile  string
	TLSCert      string
	TLSKey       string
	TLSClientCA  string
	// InsecurePlaintext allows gRPC without TLS on an address that is not loopback
	// (behind a TLS-terminating proxy on a private network, say).
	InsecurePlaintext bool
	// NATSTLSCert and NATSTLSKey serve the embedded NATS listener over TLS (required
	// when NATSListen is not on loopback).
	NATSTLSCert  string
	NATSTLSKey   string
	Reflection   bool
	LogLevel     string
	LogFormat    string
	ChallengeTTL time.Duration
	MaxAttempts  int

	TOTPIssuer    string
	TOTPAlgorithm string
	TOTPDigits    int
	TOTPPeriod    int
	TOTPSkew      int

	ShutdownGrace time.Duration

	WebAuthnRPID     string
	WebAuthnRPName   string
	WebAuthnOrigins  string
	WebAuthnUV       string
	AppPasswordCache int
	// AppPasswordRevocationCheck: see apppasswords.Config.RevocationCheck.
	AppPasswordRevocationCheck time.Duration
	BreachedMode               string
	BreachedURL                string
	BreachedFile               string
	BreachedFailClosed         bool
	BreachedTimeout            time.Duration
	AdminGroups                string
	PushNumberMode             string
	PushDigits                 int
	PushDailyCap               int
	PushLockOnNotMe            bool
	PushEndpointHosts          string
	PushHTTPEndpointHosts      string
	// PushAllowInternal: what a device's push endpoint may name although not a
	// public address (notify/egress.ParseAllow), besides push-http-endpoint-hosts:
	// what enrollment and UpdatePushEndpoint accept (an IP literal or localhost
	// outside it is refused up front), and in embedded mode what the push worker
	// may reach. Set it as notifyd's -push-allow-internal.
	PushAllowInternal string
	pushAllow         egress.Allow
	// RememberDeviceGrace and RememberDeviceMax tune remembered devices (policy
	// decides who may and for how long).
	RememberDeviceGrace time.Duration
	RememberDeviceMax   int
	// VAPIDKeyFile and VAPIDSubscriber: Web Push of the embedded mode's push worker
	// (`authd init` writes the key pair; notifyd reads the same file).
	VAPIDKeyFile    string
	VAPIDSubscriber string
	// pushTLS and pushAllowHTTP: tests' push services (TLS certificate, http).
	pushTLS       *tls.Config
	pushAllowHTTP bool
	// pushEnrollAnyAddress: tests, enrollment accepts any address (a device
	// enrolled before authd checked, or by an authd configured unlike notifyd),
	// so that the test sees the push worker's own refusal.
	pushEnrollAnyAddress bool
	// PolicyCacheTTL is how long the policy read from the store is reused.
	PolicyCacheTTL time.Duration
	// PprofListen serves net/http/pprof on this address (loopback only; off when empty).
	PprofListen string

	ObserveConfig
	OTPCodeConfig
}

// DefaultEmbeddedVAPIDSubscriber is the VAPID contact of the embedded mode's push
// worker when vapid-subscriber is not set (a development default: push services
// may use it to reach the operator; set a real one in production).
const DefaultEmbeddedVAPIDSubscriber = "mailto:admin@localhost"

// Embedded tells whether this instance runs on its own: SQLite and an in-process NATS.
func (c *Config) Embedded() bool { return c.NATSURL == "" }

// Parse reads flags from args, then fills what they leave unset from the
// environment and from the YAML file named by --config / TWOFACTOR_CONFIG.
func Parse(name string, args []string, getenv func(string) string) (*Config, error) {
	c := &Config{}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	configFile := fs.String("config", "", "optional YAML configuration file")
	c.flags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *configFile == "" {
		*configFile = getenv("TWOFACTOR_CONFIG")
	}
	file, err := readConfigFile(fs, *configFile)
	if err != nil {
		return nil, err
	}
	if err := fillUnset(fs, file, getenv); err != nil {
		return nil, err
	}
	return c, c.finish()
}

// flags defines every setting as a flag of fs.
func (c *Config) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.DataDir, "data-dir", "data", "folder for the embedded database, NATS store and generated keys")
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:7443", "gRPC listen address")
	fs.StringVar(&c.DatabaseURL, "database-url", "", "postgres://… for PostgreSQL; default SQLite in the data folder")
	fs.StringVar(&c.NATSURL, "nats-url", "", "nats://… of an external NATS cluster; default an embedded NATS server")
	fs.StringVar(&c.NATSListen, "nats-listen", "", "host:port where the embedded NATS server also accepts TCP clients (e.g. notifyd); default none")
	fs.StringVar(&c.NATSPrefix, "nats-prefix", "twofactor", "prefix of every NATS subject and stream")
	fs.IntVar(&c.NATSReplicas, "nats-replicas", 1, "JetStream stream replicas (3 on a three-node cluster)")
	fs.StringVar(&c.KeyFile, "key-file", "", "sealing key ring (JSON); default <data-dir>/keys.json, generated on first start")
	fs.StringVar(&c.DeliveryKeyFile, "delivery-key-file", "", "key sealing codes for notifyd (shared with it); default <data-dir>/delivery.key, generated on first start")
	fs.StringVar(&c.OutboxDir, "outbox-dir", "", "embedded mode: development outbox of the in-process notifyd (codes in clear); default <data-dir>/outbox")
	fs.StringVar(&c.NotifyConfig, "notify-config", "", "embedded mode: notifyd YAML file naming real channels for the in-process workers (default: every channel to the outbox)")
	fs.StringVar(&c.APIKeysFile, "api-keys-file", "", "API keys (JSON, hashed); default <data-dir>/api-keys.json, with an admin key generated on first start")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "PEM certificate for gRPC TLS")
	fs.StringVar(&c.TLSKey, "tls-key", "", "PEM private key for gRPC TLS")
	fs.StringVar(&c.TLSClientCA, "tls-client-ca", "", "PEM CA bundle: require and verify client certificates (mTLS)")
	fs.BoolVar(&c.InsecurePlaintext, "insecure-plaintext", false, "allow gRPC without TLS on a non-loopback listen address (only behind a TLS-terminating proxy on a private network)")
	fs.StringVar(&c.NATSTLSCert, "nats-tls-cert", "", "PEM certificate for the embedded NATS listener (required when nats-listen is not loopback)")
	fs.StringVar(&c.NATSTLSKey, "nats-tls-key", "", "PEM private key for the embedded NATS listener")
	fs.BoolVar(&c.Reflection, "reflection", true, "serve gRPC server reflection")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "json", "json or text")
	fs.DurationVar(&c.ChallengeTTL, "challenge-ttl", 5*time.Minute, "how long a challenge can be answered")
	fs.IntVar(&c.MaxAttempts, "max-attempts", 5, "wrong answers that end a challenge")
	fs.StringVar(&c.TOTPIssuer, "totp-issuer", "twofactor", "issuer shown by authenticator apps")
	fs.StringVar(&c.TOTPAlgorithm, "totp-algorithm", "SHA1", "SHA1, SHA256 or SHA512 (for new enrollments)")
	fs.IntVar(&c.TOTPDigits, "totp-digits", 6, "6 or 8 (for new enrollments)")
	fs.IntVar(&c.TOTPPeriod, "totp-period", 30, "seconds per TOTP step (for new enrollments)")
	fs.IntVar(&c.TOTPSkew, "totp-skew", 1, "steps accepted before and after the current one")
	fs.DurationVar(&c.ShutdownGrace, "shutdown-grace", 10*time.Second, "how long shutdown waits for RPCs in flight")
	fs.StringVar(&c.WebAuthnRPID, "webauthn-rp-id", "localhost", "WebAuthn relying party id: the site's registrable domain")
	fs.StringVar(&c.WebAuthnRPName, "webauthn-rp-name", "twofactor", "WebAuthn relying party name shown by authenticators")
	fs.StringVar(&c.WebAuthnOrigins, "webauthn-origins", "http://localhost:8080", "comma-separated allowed origins (https://…, android:apk-key-hash:…)")
	fs.StringVar(&c.WebAuthnUV, "webauthn-user-verification", "preferred", "required, preferred or discouraged")
	fs.StringVar(&c.PushNumberMode, "push-number-mode", "digits", "push approval's number matching: digits (typed on the device), choice (one of three) or none (tap only, weaker)")
	fs.IntVar(&c.PushDigits, "push-digits", 2, "digits of the push number, 2 to 6")
	fs.IntVar(&c.PushDailyCap, "push-daily-cap", 20, "push logins a user may begin per UTC day")
	fs.BoolVar(&c.PushLockOnNotMe, "push-lock-on-not-me", false, "lock push approval for a user who answered \"this was not me\" until an admin or another factor unlocks it")
	fs.StringVar(&c.VAPIDKeyFile, "vapid-key-file", "", "VAPID key pair of Web Push (RFC 8292); default <data-dir>/vapid.json, generated by `authd init` (give notifyd the same file)")
	fs.StringVar(&c.VAPIDSubscriber, "vapid-subscriber", "", "embedded mode: operator contact in the VAPID JWT (mailto:… or https://…); default "+DefaultEmbeddedVAPIDSubscriber)
	fs.StringVar(&c.PushEndpointHosts, "push-endpoint-hosts", "", "comma-separated hosts (or .domain suffixes) a device's https push endpoint may name (empty: any https host)")
	fs.StringVar(&c.PushHTTPEndpointHosts, "push-http-endpoint-hosts", "", "comma-separated hosts (or .domain suffixes) a device's push endpoint may name over plain http, e.g. ntfy on the deployment's own network (empty: https only)")
	fs.StringVar(&c.PushAllowInternal, "push-allow-internal", "", "comma-separated networks (CIDR or IP) and hosts (or .domain suffixes) a device's push endpoint may name although not a public address: enrollment refuses an IP literal or localhost outside them, and in embedded mode the push worker reaches no other; the hosts of push-http-endpoint-hosts are allowed too (empty: public unicast addresses only; set it as notifyd's -push-allow-internal)")
	fs.IntVar(&c.AppPasswordCache, "app-password-cache", 100000, "app-password verifications cached per replica (0: no cache)")
	fs.DurationVar(&c.RememberDeviceGrace, "remember-device-grace", trusteddevice.DefaultGrace, "how long a rotated-away device token is accepted once more (concurrent requests of one client; at most 5m)")
	fs.IntVar(&c.RememberDeviceMax, "remember-device-max", trusteddevice.DefaultMaxPerUser, "remembered devices per user; one more evicts the oldest")
	fs.DurationVar(&c.AppPasswordRevocationCheck, "app-password-revocation-check", apppasswords.DefaultRevocationCheck, "a replica's cache is trusted while it read the shared revocation counter this recently; a revocation answers after twice this (1ms to 1s)")
	fs.StringVar(&c.BreachedMode, "breached-mode", "range", "breached-password check: range (k-anonymity API; needs internet access), offline (local list) or off")
	fs.StringVar(&c.BreachedURL, "breached-url", "https://api.pwnedpasswords.com", "base URL of the range API")
	fs.StringVar(&c.BreachedFile, "breached-file", "", "offline mode: the pwned-passwords SHA-1 list ordered by hash")
	fs.BoolVar(&c.BreachedFailClosed, "breached-fail-closed", false, "answer Unavailable when the range API cannot be reached (default: fail open)")
	fs.DurationVar(&c.BreachedTimeout, "breached-timeout", 3*time.Second, "range API timeout")
	fs.StringVar(&c.AdminGroups, "admin-groups", "admin", "comma-separated groups whose members are full admins")
	fs.DurationVar(&c.PolicyCacheTTL, "policy-cache-ttl", time.Second, "how long a replica reuses the policy it read; a change made on another replica applies here within it (0: read on every request)")
	fs.StringVar(&c.PprofListen, "pprof-listen", "", "loopback host:port serving Go profiles (/debug/pprof/); default off")
	observeFlags(fs, &c.ObserveConfig)
	otpCodeFlags(fs, &c.OTPCodeConfig)
}

// readConfigFile reads the YAML settings file (none when path is empty); every
// key must be a flag's name.
func readConfigFile(fs *flag.FlagSet, path string) (map[string]any, error) {
	file := map[string]any{}
	if path == "" {
		return file, nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	if err := yaml.Unmarshal(raw, &file); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	for k := range file {
		if fs.Lookup(k) == nil || k == "config" {
			return nil, fmt.Errorf("config file %s: unknown setting %q", path, k)
		}
	}
	return file, nil
}

// fillUnset sets the flags the command line left unset from the environment
// (TWOFACTOR_<NAME>), else from the file.
func fillUnset(fs *flag.FlagSet, file map[string]any, getenv func(string) string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || f.Name == "config" {
			return
		}
		env := "TWOFACTOR_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(env); v != "" {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", env, err))
			}
			return
		}
		if v, ok := file[f.Name]; ok {
			if err := f.Value.Set(fmt.Sprint(v)); err != nil {
				errs = append(errs, fmt.Errorf("config file %s: %w", f.Name, err))
			}
		}
	})
	return errors.Join(errs...)
}

func (c *Config) finish() error {
	if err := c.ObserveConfig.finish(); err != nil {
		return err
	}
	if c.DataDir == "" {
		return errors.New("data-dir must not be empty")
	}
	allow, err := egress.ParseAllow(c.PushAllowInternal)
	if err != nil {
		return fmt.Errorf("push-allow-internal: %w", err)
	}
	httpHosts, err := egress.ParseAllow(c.PushHTTPEndpointHosts)
	if err != nil {
		return fmt.Errorf("push-http-endpoint-hosts: %w", err)
	}
	c.pushAllow = allow.Join(httpHosts)
	if c.PprofListen != "" && !loopback(c.PprofListen) {
		return fmt.Errorf("pprof-listen %q: want a loopback host:port (profiles reveal internals)", c.PprofListen)
	}
	if err := c.checkTransport(); err != nil {
		return err
	}
	if c.DatabaseURL == "" {
		c.DatabaseURL = "sqlite://" + filepath.Join(c.DataDir, "twofactor.db")
	}
	if c.KeyFile == "" {
		c.KeyFile = filepath.Join(c.DataDir, "keys.json")
	}
	if c.VAPIDKeyFile == "" {
		c.VAPIDKeyFile = filepath.Join(c.DataDir, webpush.DefaultVAPIDKeyFile)
	}
	if c.VAPIDSubscriber == "" && c.Embedded() {
		c.VAPIDSubscriber = DefaultEmbeddedVAPIDSubscriber
	}
	if c.DeliveryKeyFile == "" {
		c.DeliveryKeyFile = filepath.Join(c.DataDir, "delivery.key")
	}
	if c.OutboxDir == "" {
		c.OutboxDir = filepath.Join(c.DataDir, "outbox")
	}
	if c.APIKeysFile == "" {
		c.APIKeysFile = filepath.Join(c.DataDir, "api-keys.json")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("tls-cert and tls-key go together")
	}
	if c.TLSClientCA != "" && c.TLSCert == "" {
		return errors.New("tls-client-ca (mTLS) needs tls-cert and tls-key")
	}
	if c.AppPasswordRevocationCheck < time.Millisecond || c.AppPasswordRevocationCheck > time.Second {
		return fmt.Errorf("app-password-revocation-check %v: want 1ms to 1s", c.AppPasswordRevocationCheck)
	}
	if c.MaxAttempts < 1 || c.MaxAttempts > 100 {
		return fmt.Errorf("max-attempts %d: want 1 to 100", c.MaxAttempts)
	}
	if c.ChallengeTTL < 10*time.Second || c.ChallengeTTL > time.Hour {
		return fmt.Errorf("challenge-ttl %v: want 10s to 1h", c.ChallengeTTL)
	}
	switch c.BreachedMode {
	case "range", "off":
	case "offline":
		if c.BreachedFile == "" {
			return errors.New("breached-mode offline needs breached-file")
		}
	default:
		return fmt.Errorf("breached-mode %q: want range, offline or off", c.BreachedMode)
	}
	switch c.LogFormat {
	case "json", "text":
	default:
		return fmt.Errorf("log-format %q: want json or text", c.LogFormat)
	}
	return nil
}

// checkTransport refuses what would serve secrets in clear off this machine
// (issue 16, finding 6): gRPC without TLS on a non-loopback address unless
// insecure-plaintext says so, and the embedded NATS listener without TLS off
// loopback. Metrics off loopback are allowed (Warnings mentions them).
func (c *Config) checkTransport() error {
	if c.TLSCert == "" && !c.InsecurePlaintext && !loopback(c.Listen) {
		return fmt.Errorf("listen %q: not a loopback address and no tls-cert: serve TLS, or set insecure-plaintext to accept gRPC in clear (behind a TLS-terminating proxy)", c.Listen)
	}
	if (c.NATSTLSCert == "") != (c.NATSTLSKey == "") {
		return errors.New("nats-tls-cert and nats-tls-key go together")
	}
	if c.NATSTLSCert != "" && c.NATSListen == "" {
		return errors.New("nats-tls-cert: there is no nats-listen to serve it on")
	}
	if c.NATSListen != "" && !c.Embedded() {
		return errors.New("nats-listen: only the embedded NATS server (no nats-url) listens")
	}
	if c.NATSListen != "" && c.NATSTLSCert == "" && !loopback(c.NATSListen) {
		return fmt.Errorf("nats-listen %q: not a loopback address: give nats-tls-cert and nats-tls-key (the audit stream and events would travel in clear)", c.NATSListen)
	}
	return nil
}

// Warnings are the settings authd accepts but logs a warning about once at start.
func (c *Config) Warnings() []string {
	var w []string
	if c.MetricsListen != "" && !loopback(c.MetricsListen) {
		w = append(w, fmt.Sprintf("metrics-listen %q is not loopback: /metrics is served in clear without authentication to whoever reaches it", c.MetricsListen))
	}
	for _, u := range splitList(c.NATSURL) {
		if pu, err := url.Parse(u); err == nil && pu.Scheme == "nats" && !loopback(pu.Host) {
			w = append(w, fmt.Sprintf("nats-url: %s is reached in clear (use tls:// and the cluster's TLS): audit events and announcements travel unencrypted", pu.Host))
		}
	}
	if c.TLSCert == "" && c.InsecurePlaintext && !loopback(c.Listen) {
		w = append(w, fmt.Sprintf("listen %q serves gRPC in clear (insecure-plaintext): API keys and codes travel unencrypted to the proxy", c.Listen))
	}
	return w
}

// loopback tells whether host:port names only this machine (localhost or a loopback
// IP); an empty host means every interface.
func loopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// AdminKeyPath is where the first start writes the admin API key for authctl.
func (c *Config) AdminKeyPath() string { return filepath.Join(c.DataDir, "admin.key") }

// pushEnrollAllow is what a push endpoint may name at enrollment although not a
// public address: what the push worker may reach (pushAllow).
func (c *Config) pushEnrollAllow() egress.Allow {
	if c.pushEnrollAnyAddress {
		return egress.Allow{Prefixes: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}}
	}
	return c.pushAllow
}
