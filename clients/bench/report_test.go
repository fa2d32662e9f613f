package bench

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestReportRatiosAndProcesses: each login's CPU is set against totp-login's at
// the maximum rate, and the memory table prints what the probes read.
func TestReportRatiosAndProcesses(t *testing.T) {
	rep := Report{Results: []Result{
		{Scenario: Health, PerSecond: 1000, ServerCPUPerOp: 40 * time.Microsecond, PeakRSS: 50 << 20},
		{Scenario: TOTPLogin, PerSecond: 100, ServerCPUPerOp: 400 * time.Microsecond, PeakRSS: 60 << 20},
		{Scenario: TOTPLogin, Rate: 50, PerSecond: 50, ServerCPUPerOp: 800 * time.Microsecond, PeakRSS: 61 << 20},
		{Scenario: EmailLogin, PerSecond: 40, ServerCPUPerOp: 1000 * time.Microsecond, PeakRSS: 70 << 20,
			NotifydPeakRSS: 20 << 20, NotifydCPUPerOp: 250 * time.Microsecond},
	}}
	rep.ratios(1000, 40*time.Microsecond)
	for i, want := range []struct{ rate, cpu, totp float64 }{{1, 1, 0}, {0.1, 10, 0}, {0.05, 20, 0}, {0.04, 25, 2.5}} {
		r := rep.Results[i]
		if r.Ratio != want.rate || r.CPURatio != want.cpu || r.TOTPRatio != want.totp {
			t.Errorf("%s %v: ratios %v %v %v, want %+v", r.Scenario, r.Rate, r.Ratio, r.CPURatio, r.TOTPRatio, want)
		}
	}
	var out strings.Builder
	Print(&out, rep)
	for _, want := range []string{"CPU × totp", "2.50", "authd peak RSS", "70.0MiB", "20.0MiB", "250µs"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("Print: no %q in\n%s", want, out.String())
		}
	}
}

// TestSpreadVisitsEveryUser: the spread rotation is a permutation of the users.
func TestSpreadVisitsEveryUser(t *testing.T) {
	for _, n := range []int{1, 2, 7, 1000, 100_000} {
		tl := &totpLogin{cfg: &Config{Spread: true}, last: make([]atomic.Int64, n)}
		seen := make([]bool, n)
		for u := range n {
			i := tl.spread(u)
			if i < 0 || i >= n || seen[i] {
				t.Fatalf("n=%d: slot %d maps to %d, seen before or out of range", n, u, i)
			}
			seen[i] = true
		}
		if n > 2 && tl.spread(1) == 1 {
			t.Errorf("n=%d: slot 1 is user 1: not spread", n)
		}
	}
}
