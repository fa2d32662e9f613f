// Package app wires a complete authd from its configuration: storage, keys, NATS,
// providers, the gRPC server with health and reflection, TLS, and graceful shutdown.
// cmd/authd is a thin main around it, and tests start whole replicas with it.
package app

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
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
	APIKeysFile  string
	TLSCert      string
	TLSKey       string
	TLSClientCA  string
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

	WebAuthnRPID       string
	WebAuthnRPName     string
	WebAuthnOrigins    string
	WebAuthnUV         string
	AppPasswordCache   int
	BreachedMode       string
	BreachedURL        string
	BreachedFile       string
	BreachedFailClosed bool
	BreachedTimeout    time.Duration
	AdminGroups        string
	// PolicyCacheTTL is how long the policy read from the store is reused.
	PolicyCacheTTL time.Duration
	// PprofListen serves net/http/pprof on this address (loopback only; off when empty).
	PprofListen string

	ObserveConfig
	OTPCodeConfig
}

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
	fs.StringVar(&c.APIKeysFile, "api-keys-file", "", "API keys (JSON, hashed); default <data-dir>/api-keys.json, with an admin key generated on first start")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "PEM certificate for gRPC TLS")
	fs.StringVar(&c.TLSKey, "tls-key", "", "PEM private key for gRPC TLS")
	fs.StringVar(&c.TLSClientCA, "tls-client-ca", "", "PEM CA bundle: require and verify client certificates (mTLS)")
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
	fs.IntVar(&c.AppPasswordCache, "app-password-cache", 100000, "app-password verifications cached per replica (0: no cache)")
	fs.StringVar(&c.BreachedMode, "breached-mode", "range", "breached-password check: range (k-anonymity API), offline (local list) or off")
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
	if c.PprofListen != "" {
		host, _, err := net.SplitHostPort(c.PprofListen)
		if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
			return fmt.Errorf("pprof-listen %q: want a loopback host:port (profiles reveal internals)", c.PprofListen)
		}
	}
	if c.DatabaseURL == "" {
		c.DatabaseURL = "sqlite://" + filepath.Join(c.DataDir, "twofactor.db")
	}
	if c.KeyFile == "" {
		c.KeyFile = filepath.Join(c.DataDir, "keys.json")
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

// AdminKeyPath is where the first start writes the admin API key for authctl.
func (c *Config) AdminKeyPath() string { return filepath.Join(c.DataDir, "admin.key") }
