// Package bench is the load tool behind cmd/authbench: it drives a running authd
// over gRPC with N concurrent workers for a duration and reports, per scenario,
// requests per second, latency percentiles and error counts, each next to the
// rate of the gRPC health check measured in the same run (the baseline that
// measures the machine and gRPC itself).
//
// Scenarios:
//
//   - health: grpc.health.v1.Health/Check.
//   - totp-login: BeginChallenge + VerifyChallenge with a valid code, for users
//     seeded by package seed. Codes are computed from seeds derived from the
//     bench secret (SeedFor). Replay protection is honoured: a user logs in at
//     most once per 30-second time step (RFC 6238 §5.2), so the run rotates over
//     its users and waits for the next step when the rotation comes round within
//     one; sustaining R logins/s needs at least 30·R users.
//   - app-password: VerifyAppPassword with valid passwords, and every
//     AppPasswordInvalidEvery-th request (default 8th) an invalid one: in turn a
//     revoked password, and a valid password under a login that has none. The passwords are issued (and revoked) through the API before the
//     run and revoked after it. The failing requests come from users and client
//     addresses of their own, so authd's throttling slows (and may answer)
//     only them; either way they must be answered valid=false.
//   - backup-code: BeginChallenge + VerifyChallenge with a backup code; the sets
//     are issued through the API before the run, and every code is used once.
//   - admin-code: BeginChallenge + VerifyChallenge with an admin code (the
//     one-time code an admin issues to a locked-out user); one code is issued
//     per user through the admin API before the run (the actor is put in the
//     admin group first), and each is used once.
//   - email-login: BeginChallenge(method email) + VerifyChallenge with the code
//     read from authd's development outbox (Config.OutboxDir, watched with
//     fsnotify; files matched by destination, read once complete and removed).
//     Each of Config.EmailUsers users has an email factor enrolled through the
//     API in prepare (and removed after) and one login at a time.
//   - push-login: see pushLogin.
//
// The figures that count are authd's own: with Config.ServerCPU each result
// carries authd's CPU time per successful request and that divided by its CPU
// per health check in the same run (CPU × health); with Config.ServerHistograms
// authd's histogram (RPCHistogram) is scraped before and after each measurement
// and the p50/p99 of the scenario's RPCs in between are reported next to the
// tool's own percentiles; with Config.ServerPeakRSS authd's peak resident set
// (VmHWM) after each measurement; with Config.NotifydCPU a notifyd running
// apart is charged per message of the scenarios that send one per login.
//
// Latency is measured per request (per login for the two-RPC scenarios). In paced
// mode (a target rate), it is measured from when the request was due, not from
// when it was sent, so that a stall is not hidden (no coordinated omission).
//
// Security properties: the tool is for benchmarks only. Bench seeds are derived
// from an operator-chosen secret with HMAC-SHA-256 and are only as secret as it;
// never point the seeder at a production database. The API key is read from the
// data folder or flags and is never printed.
package bench

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc/status"

	"github.com/twofactor/twofactor/clients/client"
)

// Period is the TOTP time step of seeded factors, in seconds.
const Period = 30

// UserID names the i-th bench user.
func UserID(i int) string { return fmt.Sprintf("bench-%08d", i) }

// SeedFor derives a bench user's 160-bit TOTP seed from the bench secret:
// HMAC-SHA-256(secret, "totp" ‖ 0 ‖ userID), first 20 bytes.
func SeedFor(secret, userID string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("totp\x00" + userID))
	return m.Sum(nil)[:20]
}

// Code computes the 6-digit HOTP-SHA1 value of seed at a time step (RFC 4226 §5.3,
// RFC 6238 §4 with T = step).
func Code(seed []byte, step int64) string {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(step))
	m := hmac.New(sha1.New, seed)
	m.Write(msg[:])
	sum := m.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	v := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	return fmt.Sprintf("%06d", v%1_000_000)
}

// Scenario names, in the order Run measures them.
const (
	Health      = "health"
	TOTPLogin   = "totp-login"
	AppPassword = "app-password"
	BackupCode  = "backup-code"
	PushLogin   = "push-login"
	AdminCode   = "admin-code"
	EmailLogin  = "email-login"
)

// Scenarios lists every scenario.
var Scenarios = []string{Health, TOTPLogin, AppPassword, BackupCode, AdminCode, EmailLogin, PushLogin}

// messageScenarios deliver one message through notifyd per login.
var messageScenarios = []string{EmailLogin, PushLogin}

// Config says how to load authd.
type Config struct {
	// Client is connected to authd with a key holding the login and selfservice
	// roles (the generated admin key has both).
	Client *client.Client
	// Workers run requests concurrently (default 16).
	Workers int
	// Duration of each measurement (default 10 s); Warmup runs first, unrecorded
	// (default 1 s; negative: none).
	Duration, Warmup time.Duration
	// HalfRate measures every scenario but health a second time, paced at half
	// the rate it reached unpaced.
	HalfRate bool
	// Secret derives the seeded users' TOTP seeds (the seeder's secret).
	Secret string
	// FirstUser and Users select the seeded users totp-login rotates over.
	FirstUser, Users int
	// Spread makes the rotation jump across all Users (slot u logs in user
	// u·p mod Users, p a prime) instead of walking them in order, so that a run of
	// a few thousand logins reads pages from all of a large database.
	Spread bool
	// Cursor is where the rotation starts (carry Report.Cursor from run to run so
	// that a later run does not replay a user of an earlier one in the same step).
	Cursor uint64
	// AppPasswordUsers get one app password each for app-password (default 1000).
	AppPasswordUsers int
	// AppPasswordInvalidEvery makes every n-th app-password request an invalid
	// one (default 8; negative: none).
	AppPasswordInvalidEvery int
	// BackupUsers get a set of backup codes each for backup-code (default 2000,
	// 20 000 codes).
	BackupUsers int
	// AdminCodeUsers get one admin code each for admin-code (default 10 000),
	// issued by AdminActor (default "bench-admin"), whom the run first puts in
	// AdminGroup (default "admin", authd's default -admin-groups).
	AdminCodeUsers         int
	AdminActor, AdminGroup string
	// OutboxDir is authd's (or notifyd's) development outbox, where email-login
	// reads its codes; EmailUsers get an email factor each (default 4 × Workers).
	OutboxDir  string
	EmailUsers int
	// Now is the clock (default time.Now); it must agree with authd's.
	Now func() time.Time
	// Log, if set, receives progress lines.
	Log io.Writer
	// ServerCPU, if set, reads the CPU time authd has used (ProcessCPU); each
	// Result then carries the server's CPU per successful request.
	ServerCPU func() time.Duration
	// ServerHistograms, if set, reads authd's RPC latency histograms
	// (ScrapeHistograms); each Result then carries the server-side percentiles of
	// its scenario's RPCs.
	ServerHistograms func(ctx context.Context) (Histograms, error)
	// ServerPeakRSS, if set, reads authd's peak resident set so far (PeakRSS);
	// each Result then carries it as it was after the measurement.
	ServerPeakRSS func() int64
	// NotifydCPU and NotifydPeakRSS read a notifyd running apart: each result of
	// a scenario that sends messages (email-login, push-login) then carries
	// notifyd's CPU per login (one message each), and every result its peak RSS.
	NotifydCPU     func() time.Duration
	NotifydPeakRSS func() int64
}

func (c *Config) defaults() {
	if c.Workers <= 0 {
		c.Workers = 16
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.Warmup == 0 {
		c.Warmup = time.Second
	}
	if c.AppPasswordUsers <= 0 {
		c.AppPasswordUsers = 1000
	}
	if c.AppPasswordInvalidEvery == 0 {
		c.AppPasswordInvalidEvery = 8
	}
	if c.BackupUsers <= 0 {
		c.BackupUsers = 2000
	}
	if c.AdminCodeUsers <= 0 {
		c.AdminCodeUsers = 10000
	}
	if c.AdminActor == "" {
		c.AdminActor = "bench-admin"
	}
	if c.EmailUsers <= 0 {
		c.EmailUsers = 4 * c.Workers
	}
	if c.AdminGroup == "" {
		c.AdminGroup = "admin"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
}

// Result is one scenario's measurement.
type Result struct {
	Scenario string
	// Rate is the paced target in requests/s; 0 means as fast as possible.
	Rate     float64
	Workers  int
	Duration time.Duration
	OK       int
	// Errors counts failed requests by kind: a gRPC code, or an unexpected answer.
	Errors map[string]int
	// Waits counts the times a worker waited for a fresh TOTP step because every
	// user had logged in during the current one.
	Waits int
	// PerSecond is successful requests per second.
	PerSecond          float64
	P50, P95, P99, Max time.Duration
	// Ratio is PerSecond over the health check's PerSecond in the same run.
	Ratio float64
	// ServerCPUPerOp is authd's CPU time per successful request (with
	// Config.ServerCPU).
	ServerCPUPerOp time.Duration
	// CPURatio is ServerCPUPerOp over the health check's in the same run: the
	// figure the targets are stated in.
	CPURatio float64
	// TOTPRatio is ServerCPUPerOp over totp-login's (at the maximum rate) in the
	// same run, for the other logins.
	TOTPRatio float64 `json:",omitempty"`
	// PeakRSS and NotifydPeakRSS are authd's and notifyd's peak resident set in
	// bytes (VmHWM) after the measurement: the peak of the whole run so far.
	PeakRSS        int64 `json:",omitempty"`
	NotifydPeakRSS int64 `json:",omitempty"`
	// NotifydCPUPerOp is notifyd's CPU time per successful login of a scenario
	// that sends one message per login (with Config.NotifydCPU).
	NotifydCPUPerOp time.Duration `json:",omitempty"`
	// Server holds authd's own latency of each RPC the scenario calls, from its
	// histogram (with Config.ServerHistograms), in the order the scenario calls them.
	Server []ServerLatency
	// ServerError says why Server is empty when a scrape failed.
	ServerError string `json:",omitempty"`
}

// ServerLatency is one RPC's latency as authd measured it during a measurement.
type ServerLatency struct {
	Method   string
	Count    uint64
	P50, P99 time.Duration
}

// ErrorCount sums Errors.
func (r Result) ErrorCount() int {
	n := 0
	for _, v := range r.Errors {
		n += v
	}
	return n
}

// Report is a run's results.
type Report struct {
	Results []Result
	// Cursor is where the totp-login rotation stopped.
	Cursor uint64
}

// scenario is one kind of request.
type scenario interface {
	prepare(ctx context.Context) error
	// do performs one request; errWaited means no request was made (the worker
	// waited, at most until until).
	do(ctx context.Context, until time.Time) error
	cleanup(ctx context.Context)
}

// errWaited: the worker waited (for a TOTP step) instead of making a request.
var errWaited = errors.New("waited")

// unexpected is an answer that is not the one the scenario expects.
type unexpected string

func (u unexpected) Error() string { return string(u) }

// Run measures the named scenarios (all when names is empty) in the order of
// Scenarios. Health is always measured first, as the baseline.
func Run(ctx context.Context, cfg Config, names ...string) (Report, error) {
	cfg.defaults()
	if cfg.Client == nil {
		return Report{}, errors.New("bench: Config.Client is required")
	}
	want := map[string]bool{Health: true}
	for _, n := range names {
		if !slices.Contains(Scenarios, n) {
			return Report{}, fmt.Errorf("bench: unknown scenario %q (want one of %s)", n, strings.Join(Scenarios, ", "))
		}
		want[n] = true
	}
	if len(names) == 0 {
		for _, n := range Scenarios {
			want[n] = true
		}
	}
	var rep Report
	var health float64
	var healthCPU time.Duration
	tl := &totpLogin{cfg: &cfg}
	tl.cursor.Store(cfg.Cursor)
	for _, name := range Scenarios {
		if !want[name] {
			continue
		}
		sc, err := newScenario(&cfg, name, tl)
		if err != nil {
			return rep, err
		}
		fmt.Fprintf(cfg.Log, "%s: preparing\n", name)
		if err := sc.prepare(ctx); err != nil {
			return rep, fmt.Errorf("bench: prepare %s: %w", name, err)
		}
		if cfg.Warmup > 0 {
			measure(ctx, sc, cfg.Workers, 0, cfg.Warmup, cfg.Now)
		}
		fmt.Fprintf(cfg.Log, "%s: measuring %v with %d workers\n", name, cfg.Duration, cfg.Workers)
		r := cfg.measure(ctx, name, sc, 0)
		if name == Health {
			health, healthCPU = r.PerSecond, r.ServerCPUPerOp
		}
		rep.Results = append(rep.Results, r)
		if cfg.HalfRate && name != Health && r.PerSecond > 0 {
			fmt.Fprintf(cfg.Log, "%s: measuring %v paced at %.0f/s\n", name, cfg.Duration, r.PerSecond/2)
			h := cfg.measure(ctx, name, sc, r.PerSecond/2)
			rep.Results = append(rep.Results, h)
		}
		sc.cleanup(context.WithoutCancel(ctx))
		if err := ctx.Err(); err != nil {
			return rep, err
		}
	}
	rep.ratios(health, healthCPU)
	rep.Cursor = tl.cursor.Load()
	return rep, nil
}

// ratios sets each result's ratios to the health check's rate and CPU, and the
// other logins' CPU ratio to totp-login's.
func (rep *Report) ratios(health float64, healthCPU time.Duration) {
	var totpCPU time.Duration
	for _, r := range rep.Results {
		if r.Scenario == TOTPLogin && r.Rate == 0 {
			totpCPU = r.ServerCPUPerOp
		}
	}
	for i := range rep.Results {
		r := &rep.Results[i]
		if health > 0 {
			r.Ratio = r.PerSecond / health
		}
		if healthCPU > 0 {
			r.CPURatio = float64(r.ServerCPUPerOp) / float64(healthCPU)
		}
		if totpCPU > 0 && r.Scenario != Health && r.Scenario != TOTPLogin {
			r.TOTPRatio = float64(r.ServerCPUPerOp) / float64(totpCPU)
		}
	}
}

// measure measures one scenario, with authd's CPU and histograms read before and
// after when the Config can.
func newScenario(cfg *Config, name string, tl *totpLogin) (scenario, error) {
	switch name {
	case TOTPLogin:
		if cfg.Users <= 0 {
			return nil, errors.New("bench: totp-login needs Config.Users (seeded users)")
		}
		tl.last = make([]atomic.Int64, cfg.Users)
		return tl, nil
	case AppPassword:
		return &appPassword{cfg: cfg}, nil
	case BackupCode:
		return &backupCode{cfg: cfg}, nil
	case AdminCode:
		return &adminCode{cfg: cfg}, nil
	case PushLogin:
		return &pushLogin{cfg: cfg}, nil
	case EmailLogin:
		return &emailLogin{cfg: cfg}, nil
	}
	return healthCheck{cfg.Client}, nil
}

func (c *Config) measure(ctx context.Context, name string, sc scenario, rate float64) Result {
	var hBefore Histograms
	var hErr error
	if c.ServerHistograms != nil {
		hBefore, hErr = c.ServerHistograms(ctx)
	}
	before := c.readCPU()
	r := measure(ctx, sc, c.Workers, rate, c.Duration, c.Now)
	r.Scenario = name
	c.account(&r, before)
	if c.ServerHistograms == nil {
		return r
	}
	var hAfter Histograms
	if hErr == nil {
		hAfter, hErr = c.ServerHistograms(ctx)
	}
	if hErr != nil {
		r.ServerError = hErr.Error()
		return r
	}
	for _, m := range scenarioMethods[name] {
		d := hAfter[m].Sub(hBefore[m])
		r.Server = append(r.Server, ServerLatency{Method: m, Count: d.Total(), P50: d.Quantile(0.50), P99: d.Quantile(0.99)})
	}
	return r
}

// cpuTimes are authd's and notifyd's CPU time at one moment (0 when not read).
type cpuTimes struct{ authd, notifyd time.Duration }

func (c *Config) readCPU() cpuTimes {
	var t cpuTimes
	if c.ServerCPU != nil {
		t.authd = c.ServerCPU()
	}
	if c.NotifydCPU != nil {
		t.notifyd = c.NotifydCPU()
	}
	return t
}

// account sets r's CPU per request since before and the processes' peak memory.
func (c *Config) account(r *Result, before cpuTimes) {
	after := c.readCPU()
	if r.OK > 0 && c.ServerCPU != nil {
		r.ServerCPUPerOp = (after.authd - before.authd) / time.Duration(r.OK)
	}
	if r.OK > 0 && c.NotifydCPU != nil && slices.Contains(messageScenarios, r.Scenario) {
		r.NotifydCPUPerOp = (after.notifyd - before.notifyd) / time.Duration(r.OK)
	}
	if c.ServerPeakRSS != nil {
		r.PeakRSS = c.ServerPeakRSS()
	}
	if c.NotifydPeakRSS != nil {
		r.NotifydPeakRSS = c.NotifydPeakRSS()
	}
}

// measure runs sc with workers for d, as fast as possible (rate 0) or paced at
// rate requests/s in total.
func measure(ctx context.Context, sc scenario, workers int, rate float64, d time.Duration, now func() time.Time) Result {
	type tally struct {
		lat   []time.Duration
		errs  map[string]int
		waits int
	}
	tallies := make([]tally, workers)
	start := now()
	deadline := start.Add(d)
	ctx, cancel := context.WithDeadline(ctx, deadline.Add(5*time.Second))
	defer cancel()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := &tallies[w]
			t.errs = map[string]int{}
			var interval time.Duration
			next := start
			if rate > 0 {
				interval = time.Duration(float64(workers) / rate * float64(time.Second))
				next = start.Add(interval * time.Duration(w) / time.Duration(workers))
			}
			for {
				var due time.Time
				if rate > 0 {
					if !next.Before(deadline) {
						return
					}
					if wait := next.Sub(now()); wait > 0 {
						time.Sleep(wait)
					}
					due = next
					next = next.Add(interval)
				} else {
					due = now()
					if !due.Before(deadline) {
						return
					}
				}
				err := sc.do(ctx, deadline)
				lat := now().Sub(due)
				switch {
				case err == nil:
					t.lat = append(t.lat, lat)
				case errors.Is(err, errWaited):
					t.waits++
				default:
					t.errs[errorKind(err)]++
				}
				if ctx.Err() != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := now().Sub(start)
	r := Result{Rate: rate, Workers: workers, Duration: elapsed, Errors: map[string]int{}}
	var all []time.Duration
	for _, t := range tallies {
		all = append(all, t.lat...)
		for k, v := range t.errs {
			r.Errors[k] += v
		}
		r.Waits += t.waits
	}
	r.OK = len(all)
	if elapsed > 0 {
		r.PerSecond = float64(r.OK) / elapsed.Seconds()
	}
	if len(all) > 0 {
		sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
		r.P50, r.P95, r.P99 = pct(all, 50), pct(all, 95), pct(all, 99)
		r.Max = all[len(all)-1]
	}
	return r
}

func pct(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func errorKind(err error) string {
	var u unexpected
	if errors.As(err, &u) {
		return string(u)
	}
	if st, ok := status.FromError(err); ok {
		return st.Code().String()
	}
	return err.Error()
}

// Print writes rep as tables: the tool's view (rate, its latency per request or
// login), then authd's (its CPU per request and that over a health check's, and
// its own latency of each RPC, from its histogram).
func Print(w io.Writer, rep Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\trate\tworkers\tok\terrors\tok/s\tp50\tp95\tp99\tmax\t× health (rate)\tauthd CPU/op\tCPU × health\tCPU × totp\t")
	for _, r := range rep.Results {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%.0f\t%s\t%s\t%s\t%s\t%.2f\t%s\t%s\t%s\t\n", r.Scenario, rateOf(r), r.Workers, r.OK, r.ErrorCount(),
			r.PerSecond, ms(r.P50), ms(r.P95), ms(r.P99), ms(r.Max), r.Ratio, micros(r.ServerCPUPerOp), ratio(r.CPURatio), ratio(r.TOTPRatio))
	}
	tw.Flush()
	printServer(w, rep)
	printProcesses(w, rep)
	for _, r := range rep.Results {
		if len(r.Errors) > 0 || r.Waits > 0 {
			fmt.Fprintf(w, "%s: errors %v, step waits %d\n", r.Scenario, r.Errors, r.Waits)
		}
	}
}

func rateOf(r Result) string {
	if r.Rate > 0 {
		return fmt.Sprintf("%.0f/s", r.Rate)
	}
	return "max"
}

// printServer writes authd's own percentiles per scenario and RPC, beside the
// tool's p99 of the whole request or login.
func printServer(w io.Writer, rep Report) {
	have := false
	for _, r := range rep.Results {
		have = have || len(r.Server) > 0 || r.ServerError != ""
	}
	if !have {
		return
	}
	fmt.Fprintf(w, "\nauthd's %s:\n", RPCHistogram)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\trate\tRPC\tcalls\tauthd p50\tauthd p99\ttool p99\t")
	for _, r := range rep.Results {
		if r.ServerError != "" {
			fmt.Fprintf(tw, "%s\t%s\t%s\t\t\t\t\t\n", r.Scenario, rateOf(r), r.ServerError)
		}
		for _, l := range r.Server {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t\n", r.Scenario, rateOf(r), l.Method[strings.LastIndexByte(l.Method, '/')+1:],
				l.Count, ms(l.P50), ms(l.P99), ms(r.P99))
		}
	}
	tw.Flush()
}

// printProcesses writes the processes' peak memory after each measurement and
// notifyd's CPU per message.
func printProcesses(w io.Writer, rep Report) {
	have := false
	for _, r := range rep.Results {
		have = have || r.PeakRSS > 0 || r.NotifydPeakRSS > 0
	}
	if !have {
		return
	}
	fmt.Fprintln(w, "\npeak resident set so far (VmHWM), notifyd's CPU per message:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\trate\tauthd peak RSS\tnotifyd peak RSS\tnotifyd CPU/msg\t")
	for _, r := range rep.Results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", r.Scenario, rateOf(r), mib(r.PeakRSS), mib(r.NotifydPeakRSS), micros(r.NotifydCPUPerOp))
	}
	tw.Flush()
}

func mib(n int64) string {
	if n <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
}

func micros(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
}

func ratio(x float64) string {
	if x <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", x)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }
