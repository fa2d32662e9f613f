package notify

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// EmbeddedConfig configures an in-process NATS server with JetStream.
type EmbeddedConfig struct {
	// StoreDir is the JetStream storage directory (required).
	StoreDir string
	// Listen is "" for no TCP listener at all (clients connect in-process only), or a
	// "host:port" chosen by the operator; port 0 picks a free port. There is no default
	// port: the well-known 4222 is never taken implicitly.
	Listen string
	// ServerName names the server in JetStream metadata; default "twofactor-embedded".
	ServerName string
	// ReadyTimeout bounds the wait for the server to accept connections; default 10s.
	ReadyTimeout time.Duration
	// Token is the secret every client must present (see EnsureTokenFile); required
	// when Listen is set, so that no anonymous client reaches the streams. Connect
	// presents it in-process.
	Token string
	// TLS, when set, serves the TCP listener over TLS only (required by authd off
	// loopback). In-process connections need none.
	TLS *tls.Config
}

// Embedded is a running in-process NATS server.
type Embedded struct {
	srv    *server.Server
	listen bool
	token  string
}

// StartEmbedded starts a NATS server with JetStream inside this process.
func StartEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("notify: embedded NATS: StoreDir is required")
	}
	name := cfg.ServerName
	if name == "" {
		name = "twofactor-embedded"
	}
	opts := &server.Options{
		ServerName: name,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		NoSigs:     true,
		NoLog:      true,
		// Port 0 would mean the default 4222 to nats-server; -1 means "pick a free port".
		Port:       server.RANDOM_PORT,
		Host:       "127.0.0.1",
		DontListen: cfg.Listen == "",
	}
	if err := embeddedAuth(cfg, opts); err != nil {
		return nil, err
	}
	if cfg.Listen != "" {
		host, portStr, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("notify: embedded NATS: Listen %q: want host:port: %v", cfg.Listen, err)
		}
		port, err := strconv.Atoi(portStr)
		if err != nil || port < 0 || port > 65535 {
			return nil, fmt.Errorf("notify: embedded NATS: Listen %q: port must be 0..65535", cfg.Listen)
		}
		if port != 0 {
			opts.Port = port
		}
		opts.Host = host
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("notify: embedded NATS: %w", err)
	}
	srv.Start()
	wait := cfg.ReadyTimeout
	if wait <= 0 {
		wait = 10 * time.Second
	}
	if !srv.ReadyForConnections(wait) {
		srv.Shutdown()
		return nil, fmt.Errorf("notify: embedded NATS: not ready after %v (store %q, listen %q)", wait, cfg.StoreDir, cfg.Listen)
	}
	return &Embedded{srv: srv, listen: cfg.Listen != "", token: cfg.Token}, nil
}

// embeddedAuth sets the token and TLS of opts (issue 16, finding 5).
func embeddedAuth(cfg EmbeddedConfig, opts *server.Options) error {
	if cfg.Listen != "" && cfg.Token == "" {
		return errors.New("notify: embedded NATS: a TCP listener needs a Token (no anonymous clients)")
	}
	if cfg.Token != "" {
		if len(cfg.Token) < 32 {
			return errors.New("notify: embedded NATS: Token must be at least 32 characters")
		}
		opts.Authorization = cfg.Token
	}
	if cfg.TLS != nil {
		opts.TLSConfig = cfg.TLS.Clone()
		opts.TLS = true
		opts.TLSTimeout = 2
	}
	return nil
}

// Connect opens an in-process client connection (no TCP). Options are applied after the
// defaults Connect uses for external servers.
func (e *Embedded) Connect(opts ...nats.Option) (*nats.Conn, error) {
	all := append(defaultOptions(), nats.InProcessServer(e.srv))
	if e.token != "" {
		all = append(all, nats.Token(e.token))
	}
	all = append(all, opts...)
	nc, err := nats.Connect("", all...) // in-process: no URL (a TLS listener's tls:// would ask for TLS)
	if err != nil {
		return nil, fmt.Errorf("notify: connect to embedded NATS: %w", err)
	}
	return nc, nil
}

// ClientURL is the URL of the TCP listener, or "" when the server has none.
func (e *Embedded) ClientURL() string {
	if !e.listen {
		return ""
	}
	return e.srv.ClientURL()
}

// Server exposes the underlying server (monitoring, tests).
func (e *Embedded) Server() *server.Server { return e.srv }

// Shutdown stops the server and waits until it has stopped.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}
