package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/twofactor/twofactor/server/app"
)

// healthcheck asks the local listener's gRPC health service (the overall
// service, "") and fails unless it answers SERVING. It reads the same settings as
// serving (flags, TWOFACTOR_* environment, config file), so a container's
// `HEALTHCHECK ["authd", "healthcheck"]` needs no arguments: the image has no shell.
// With TLS the server's certificate must be the configured -tls-cert (pinned); a
// deployment requiring client certificates (mTLS) checks health another way.
func healthcheck(args []string) error {
	cfg, err := app.Parse("authd healthcheck", args, os.Getenv)
	if err != nil {
		return err
	}
	addr, err := localAddr(cfg.Listen)
	if err != nil {
		return err
	}
	creds, err := healthCreds(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return checkHealth(ctx, addr, creds)
}

func checkHealth(ctx context.Context, addr string, creds credentials.TransportCredentials) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return fmt.Errorf("health check of %s: %w", addr, err)
	}
	if s := resp.GetStatus(); s != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("health check of %s: %s", addr, s)
	}
	return nil
}

// localAddr turns a listen address into one to dial on this host: an unspecified
// host (0.0.0.0, ::, empty) becomes the loopback address.
func localAddr(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("listen %q: %w", listen, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return net.JoinHostPort(host, port), nil
}

func healthCreds(cfg *app.Config) (credentials.TransportCredentials, error) {
	if cfg.TLSCert == "" {
		return insecure.NewCredentials(), nil
	}
	pair, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("tls-cert/tls-key: %w", err)
	}
	want := pair.Certificate[0]
	return credentials.NewTLS(&tls.Config{
		MinVersion: tls.VersionTLS12,
		// The name in the certificate need not be the loopback address: the
		// check below pins the exact certificate instead.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 || !bytes.Equal(raw[0], want) {
				return errors.New("the server's certificate is not -tls-cert")
			}
			return nil
		},
	}), nil
}
