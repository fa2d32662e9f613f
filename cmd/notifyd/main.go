// Command notifyd delivers the one-time codes authd publishes on NATS JetStream through
// e-mail, SMS, Telegram and Signal providers, binds Telegram chats, and wakes push
// approval devices through Web Push and ntfy when -database-url is set (see package
// notify/daemon).
//
//	notifyd [flags]               run (see -h for every setting; TWOFACTOR_* environment variables)
//	notifyd healthcheck [flags]   exit 0 when the running notifyd's /healthz answers (for images without a shell)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/twofactor/twofactor/notify/daemon"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "notifyd:", err)
		}
		os.Exit(1)
	}
}

func run(args []string) error {
	check := len(args) > 0 && args[0] == "healthcheck"
	if check {
		args = args[1:]
	}
	cfg, err := daemon.Parse("notifyd", args, os.Getenv)
	if err != nil {
		return err
	}
	if check {
		return daemon.Healthcheck(context.Background(), cfg.MetricsListen)
	}
	log, err := cfg.NewLogger(os.Stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return daemon.Run(ctx, cfg, log)
}
