// Command authbench seeds benchmark users and load-tests a running authd.
//
//	authbench seed -data-dir DIR -users 1000000 [-database-url postgres://…]
//	authbench run  -data-dir DIR -addr 127.0.0.1:7443 -users 1000000 [-scenarios health,totp-login,app-password,backup-code,admin-code] [-half-rate]
//	               [-authd-pid PID] [-notifyd-pid PID] [-metrics-url http://127.0.0.1:9464/metrics] [-outbox-dir DIR/outbox]
//
// seed writes users with an active TOTP factor straight into authd's database,
// sealed with DIR/keys.json; run drives authd over gRPC with the API key in
// DIR/admin.key and prints requests/s, latency percentiles, errors and each
// scenario's ratio to the health check; with -authd-pid, authd's CPU per request,
// its ratio to a health check's (and to a totp-login's) and authd's peak RSS
// (VmHWM) after each scenario; with -notifyd-pid, the same of a notifyd running
// apart, its CPU per message of email-login and push-login; with -metrics-url, authd's own p50/p99 of
// each RPC from its twofactor_rpc_duration_seconds histogram. See clients/bench and docs/PERFORMANCE.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/twofactor/twofactor/clients/bench"
	"github.com/twofactor/twofactor/clients/bench/seed"
	"github.com/twofactor/twofactor/clients/client"
)

const defaultSecret = "authbench"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "authbench:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: authbench seed|run [flags] (-h for flags)")
	}
	switch args[0] {
	case "seed":
		return seedCmd(ctx, args[1:])
	case "run":
		return runCmd(ctx, args[1:])
	}
	return fmt.Errorf("unknown command %q: want seed or run", args[0])
}

func seedCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("authbench seed", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "data", "authd's data folder (keys.json; the SQLite database unless -database-url)")
	dbURL := fs.String("database-url", "", "authd's database; default SQLite in the data folder")
	keyFile := fs.String("key-file", "", "authd's key ring; default <data-dir>/keys.json")
	secret := fs.String("secret", defaultSecret, "bench secret the users' TOTP seeds are derived from")
	first := fs.Int("first", 0, "index of the first user")
	users := fs.Int("users", 1000, "number of users")
	batch := fs.Int("batch", 100, "rows per INSERT (SQLite; PostgreSQL uses COPY)")
	tx := fs.Int("tx", 100000, "rows per transaction")
	workers := fs.Int("workers", 0, "goroutines sealing rows beside the writer; default the number of CPUs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dbURL == "" {
		*dbURL = "sqlite://" + filepath.Join(*dataDir, "twofactor.db")
	}
	if *keyFile == "" {
		*keyFile = filepath.Join(*dataDir, "keys.json")
	}
	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		return err
	}
	start := time.Now()
	res, err := seed.Seed(ctx, seed.Options{
		DatabaseURL: *dbURL, KeyFile: *keyFile, Secret: *secret, First: *first, Count: *users, Batch: *batch, Tx: *tx, Workers: *workers,
		Progress: func(done int) {
			fmt.Fprintf(os.Stderr, "\rseeded %d/%d users (%.0f/s)", done, *users, float64(done)/time.Since(start).Seconds())
		},
	})
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return err
	}
	fmt.Printf("seeded %d users (%s … %s) into %s in %v (%.0f users/s)\n", res.Users, bench.UserID(*first), bench.UserID(*first+*users-1),
		res.Database, res.Elapsed.Round(time.Millisecond), float64(res.Users)/res.Elapsed.Seconds())
	return nil
}

// state is what one run leaves for the next: where the TOTP rotation stopped.
type state struct {
	Cursor uint64 `json:"totp_cursor"`
}

// runOpts are the flags of authbench run.
type runOpts struct {
	cfg                                                       bench.Config
	addr, dataDir, keyFile, stateFile, scenarios, metrics, js string
	authdPID, notifydPID                                      int
}

func runFlags(args []string) (*runOpts, error) {
	o := &runOpts{}
	c := &o.cfg
	fs := flag.NewFlagSet("authbench run", flag.ContinueOnError)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:7443", "authd's gRPC address")
	fs.StringVar(&o.dataDir, "data-dir", "data", "authd's data folder (admin.key)")
	fs.StringVar(&o.keyFile, "api-key-file", "", "file holding an API key with the login and selfservice roles; default <data-dir>/admin.key")
	fs.StringVar(&o.stateFile, "state", "", "where the TOTP rotation is remembered between runs; default <data-dir>/authbench-state.json")
	fs.StringVar(&o.scenarios, "scenarios", strings.Join(bench.Scenarios, ","), "comma-separated scenarios; health always runs")
	fs.IntVar(&c.Workers, "workers", 16, "concurrent workers")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "measurement per scenario")
	fs.DurationVar(&c.Warmup, "warmup", time.Second, "unrecorded warm-up per scenario")
	fs.BoolVar(&c.HalfRate, "half-rate", false, "measure each scenario again paced at half its maximum rate")
	fs.StringVar(&c.Secret, "secret", defaultSecret, "bench secret the seeder used")
	fs.IntVar(&c.FirstUser, "first", 0, "first seeded user totp-login uses")
	fs.IntVar(&c.Users, "users", 1000, "seeded users totp-login rotates over (a user logs in once per 30 s step)")
	fs.BoolVar(&c.Spread, "spread", false, "totp-login jumps across all -users instead of walking them in order (reads all of a large database)")
	fs.IntVar(&c.AppPasswordUsers, "app-password-users", 1000, "users given an app password for app-password")
	fs.IntVar(&c.AppPasswordInvalidEvery, "app-password-invalid-every", 8, "every n-th app-password request presents an invalid password (-1: none)")
	fs.IntVar(&c.BackupUsers, "backup-users", 2000, "users given 10 backup codes each for backup-code")
	fs.IntVar(&c.AdminCodeUsers, "admin-code-users", 10000, "users given an admin code each for admin-code")
	fs.StringVar(&c.AdminActor, "admin-actor", "bench-admin", "actor issuing the admin codes (put in -admin-group first)")
	fs.StringVar(&c.AdminGroup, "admin-group", "admin", "one of authd's -admin-groups")
	fs.StringVar(&c.OutboxDir, "outbox-dir", "", "development outbox email-login reads codes from; default <data-dir>/outbox")
	fs.IntVar(&c.EmailUsers, "email-users", 0, "users given an email factor for email-login; default 4 × workers")
	fs.StringVar(&o.metrics, "metrics-url", "", "authd's metrics endpoint (its -metrics-listen, e.g. http://127.0.0.1:9464/metrics): report authd's own RPC latency")
	fs.StringVar(&o.js, "json", "", "also write the results as JSON to this file")
	fs.IntVar(&o.authdPID, "authd-pid", 0, "pid of a local authd: report its CPU time per request and its peak RSS (Linux)")
	fs.IntVar(&o.notifydPID, "notifyd-pid", 0, "pid of a notifyd running apart: report its CPU per message (email-login, push-login) and its peak RSS")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if o.stateFile == "" {
		o.stateFile = filepath.Join(o.dataDir, "authbench-state.json")
	}
	if c.OutboxDir == "" {
		c.OutboxDir = filepath.Join(o.dataDir, "outbox")
	}
	return o, nil
}

func runCmd(ctx context.Context, args []string) error {
	o, err := runFlags(args)
	if err != nil {
		return err
	}
	key, err := client.FindAPIKey(o.keyFile, o.dataDir)
	if err != nil {
		return err
	}
	if o.cfg.Client, err = client.Dial(client.Options{Addr: o.addr, APIKey: key}); err != nil {
		return err
	}
	defer o.cfg.Client.Close()
	var st state
	if raw, err := os.ReadFile(o.stateFile); err == nil {
		_ = json.Unmarshal(raw, &st)
	}
	o.cfg.Cursor, o.cfg.Log = st.Cursor, os.Stderr
	if err := probes(ctx, &o.cfg, o.authdPID, o.notifydPID, o.metrics); err != nil {
		return err
	}
	rep, err := bench.Run(ctx, o.cfg, scenarioNames(o.scenarios)...)
	if raw, jerr := json.Marshal(state{Cursor: rep.Cursor}); jerr == nil {
		_ = os.WriteFile(o.stateFile, raw, 0o600)
	}
	if err != nil {
		return err
	}
	bench.Print(os.Stdout, rep)
	if o.js == "" {
		return nil
	}
	raw, _ := json.MarshalIndent(rep, "", "  ")
	return os.WriteFile(o.js, append(raw, '\n'), 0o644)
}

func scenarioNames(list string) []string {
	var names []string
	for n := range strings.SplitSeq(list, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	return names
}

// probes sets cfg's readers of authd's CPU time and peak memory (authdPID > 0),
// notifyd's (notifydPID > 0) and authd's RPC histograms (url set), each checked once.
func probes(ctx context.Context, cfg *bench.Config, authdPID, notifydPID int, url string) error {
	var err error
	if authdPID > 0 {
		if cfg.ServerCPU, cfg.ServerPeakRSS, err = process(authdPID); err != nil {
			return fmt.Errorf("authd-pid: %w", err)
		}
	}
	if notifydPID > 0 {
		if cfg.NotifydCPU, cfg.NotifydPeakRSS, err = process(notifydPID); err != nil {
			return fmt.Errorf("notifyd-pid: %w", err)
		}
	}
	if url != "" {
		cfg.ServerHistograms = bench.ScrapeHistograms(url)
		if _, err := cfg.ServerHistograms(ctx); err != nil {
			return fmt.Errorf("metrics-url: %w", err)
		}
	}
	return nil
}

func process(pid int) (func() time.Duration, func() int64, error) {
	cpu, err := bench.ProcessCPU(pid)
	if err != nil {
		return nil, nil, err
	}
	rss, err := bench.ProcessPeakRSS(pid)
	return cpu, rss, err
}
