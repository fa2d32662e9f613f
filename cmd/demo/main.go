// Command demo serves the twofactor demo web login: a backend that signs people in
// with every second factor authd offers. Start authd first, then the demo, and open
// http://localhost:8080 (not 127.0.0.1: WebAuthn needs that exact origin):
//
//	go run ./cmd/authd &
//	go run ./cmd/demo
//
// `demo healthcheck [-listen addr]` exits 0 when the demo at that address
// answers its sign-in page (for container healthchecks: the image has no shell).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/twofactor/twofactor/clients/client"
	"github.com/twofactor/twofactor/clients/demo"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "demo:", err)
		}
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "healthcheck" {
		return healthcheck(args[1:])
	}
	var f demo.Flags
	if err := demo.NewFlagSet("demo", &f).Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	key, err := client.FindAPIKey(f.KeyFile, f.DataDir)
	if err != nil {
		return fmt.Errorf("%w; start authd first (go run ./cmd/authd) so it writes %s/admin.key", err, f.DataDir)
	}
	c, err := client.Dial(client.Options{Addr: f.Addr, APIKey: key})
	if err != nil {
		return err
	}
	defer c.Close()
	h, err := demo.New(demo.Config{Client: c, Origin: f.Origin, AuthdAddr: f.Addr, Log: log})
	if err != nil {
		return err
	}
	srv := &http.Server{Addr: f.Listen, Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("demo listening", "listen", f.Listen, "open", f.Origin, "authd", f.Addr)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shut)
}

// healthcheck asks the demo listening at -listen for its sign-in page, which
// it renders without calling authd.
func healthcheck(args []string) error {
	var f demo.Flags
	if err := demo.NewFlagSet("demo healthcheck", &f).Parse(args); err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(f.Listen)
	if err != nil {
		return fmt.Errorf("listen %q: %w", f.Listen, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get("http://" + net.JoinHostPort(host, port) + "/signin")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /signin: %s", resp.Status)
	}
	return nil
}
