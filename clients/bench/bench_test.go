package bench_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twofactor/twofactor/clients/bench"
	"github.com/twofactor/twofactor/clients/bench/seed"
	"github.com/twofactor/twofactor/clients/client"
	"github.com/twofactor/twofactor/server/app"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// TestCode checks the code computation against RFC 6238 Appendix B (SHA-1 seed
// "12345678901234567890"; the 8-digit values' last six digits).
func TestCode(t *testing.T) {
	seed := []byte("12345678901234567890")
	for _, tc := range []struct {
		unix int64
		want string
	}{
		{59, "287082"},
		{1111111109, "081804"},
		{1111111111, "050471"},
		{1234567890, "005924"},
		{2000000000, "279037"},
		{20000000000, "353130"},
	} {
		if got := bench.Code(seed, tc.unix/bench.Period); got != tc.want {
			t.Errorf("Code(T=%d) = %s, want %s", tc.unix, got, tc.want)
		}
	}
}

func TestSeedForIsStablePerUser(t *testing.T) {
	a, b := bench.SeedFor("s", bench.UserID(1)), bench.SeedFor("s", bench.UserID(2))
	if len(a) != 20 || string(a) == string(b) || string(a) != string(bench.SeedFor("s", bench.UserID(1))) {
		t.Fatalf("SeedFor: want 20 stable bytes distinct per user")
	}
	if string(a) == string(bench.SeedFor("t", bench.UserID(1))) {
		t.Fatal("SeedFor: the secret must change the seed")
	}
}

// TestSmoke seeds 100 users, starts a whole authd in-process and runs every
// scenario for about a second with two workers: every request must succeed.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts authd and loads it for a few seconds")
	}
	ctx := context.Background()
	dir := t.TempDir()
	dbURL := storagetest.URL(t)
	res, err := seed.Seed(ctx, seed.Options{DatabaseURL: dbURL, KeyFile: filepath.Join(dir, "keys.json"), Secret: "smoke", Count: 100, Batch: 30, Tx: 40})
	if err != nil {
		t.Fatal(err)
	}
	if res.Users != 100 {
		t.Fatalf("seeded %d users, want 100", res.Users)
	}
	// Seeding again is idempotent.
	if _, err := seed.Seed(ctx, seed.Options{DatabaseURL: dbURL, KeyFile: filepath.Join(dir, "keys.json"), Secret: "smoke", Count: 100}); err != nil {
		t.Fatalf("seed again: %v", err)
	}

	cfg, err := app.Parse("authd", []string{"-data-dir", dir, "-listen", "127.0.0.1:0", "-metrics-listen", "127.0.0.1:0", "-database-url", dbURL, "-breached-mode", "off", "-push-daily-cap", "1000000",
		"-otp-user-daily-cap", "10000", "-otp-destination-daily-cap", "10000"},
		func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	a, err := app.New(sctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(sctx) }()
	t.Cleanup(func() { cancel(); <-done })

	key, err := client.FindAPIKey("", dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(client.Options{Addr: a.Addr(), APIKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rep, err := bench.Run(ctx, bench.Config{
		Client: c, Workers: 2, Duration: time.Second, Warmup: -1, Secret: "smoke", Users: 100,
		AppPasswordUsers: 20, BackupUsers: 300, AdminCodeUsers: 3000,
		ServerCPU: selfCPU(t), ServerPeakRSS: selfRSS(t), OutboxDir: filepath.Join(dir, "outbox"),
		ServerHistograms: bench.ScrapeHistograms("http://" + a.MetricsAddr() + "/metrics"),
	})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	bench.Print(&out, rep)
	t.Log("\n" + out.String())
	if len(rep.Results) != len(bench.Scenarios) {
		t.Fatalf("got %d results, want one per scenario (%d)", len(rep.Results), len(bench.Scenarios))
	}
	for i, r := range rep.Results {
		if r.Scenario != bench.Scenarios[i] {
			t.Errorf("result %d is %s, want %s", i, r.Scenario, bench.Scenarios[i])
		}
		if r.OK == 0 || r.ErrorCount() != 0 {
			t.Errorf("%s: %d ok, errors %v; want some and none", r.Scenario, r.OK, r.Errors)
		}
		if r.Ratio <= 0 || r.P50 <= 0 || r.P99 < r.P50 {
			t.Errorf("%s: ratio %.2f, p50 %v, p99 %v: want positive and ordered", r.Scenario, r.Ratio, r.P50, r.P99)
		}
		checkServerSide(t, r)
	}
	if rep.Cursor == 0 {
		t.Error("the TOTP rotation cursor did not move")
	}
}

// selfCPU reads this test process's CPU time: authd runs in it.
func selfCPU(t *testing.T) func() time.Duration {
	cpu, err := bench.ProcessCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	return cpu
}

// selfRSS reads this test process's peak resident set.
func selfRSS(t *testing.T) func() int64 {
	rss, err := bench.ProcessPeakRSS(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	return rss
}

// checkServerSide: every scenario got authd's CPU ratio and, for each RPC it
// calls, as many histogram observations as it made successful calls at least.
func checkServerSide(t *testing.T, r bench.Result) {
	t.Helper()
	if r.ServerError != "" || len(r.Server) == 0 {
		t.Errorf("%s: no server-side latency (%s)", r.Scenario, r.ServerError)
	}
	if r.CPURatio <= 0 {
		t.Errorf("%s: CPU × health %.2f, want positive", r.Scenario, r.CPURatio)
	}
	if (r.TOTPRatio > 0) == (r.Scenario == bench.Health || r.Scenario == bench.TOTPLogin) {
		t.Errorf("%s: CPU × totp %.2f: want one for every login but totp-login", r.Scenario, r.TOTPRatio)
	}
	if r.PeakRSS < 1<<20 {
		t.Errorf("%s: peak RSS %d bytes, want authd's (this process's)", r.Scenario, r.PeakRSS)
	}
	for _, l := range r.Server {
		if l.Count < uint64(r.OK) || l.P50 <= 0 || l.P99 < l.P50 {
			t.Errorf("%s %s: %d calls (ok %d), p50 %v, p99 %v", r.Scenario, l.Method, l.Count, r.OK, l.P50, l.P99)
		}
	}
}
