package bench_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/twofactor/twofactor/clients/bench"
)

// TestServerHistograms scrapes a real Prometheus registry over HTTP: two status
// codes of one method are summed, a snapshot is subtracted, and the quantiles
// interpolate inside the bucket that holds them as histogram_quantile does.
func TestServerHistograms(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: bench.RPCHistogram, Buckets: []float64{.001, .002, .004}},
		[]string{"method", "code"})
	reg.MustRegister(h)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	scrape := bench.ScrapeHistograms(srv.URL)
	ctx := context.Background()

	h.WithLabelValues(bench.MethodVerify, "OK").Observe(0.0035) // before the snapshot
	before, err := scrape(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		h.WithLabelValues(bench.MethodVerify, "OK").Observe(0.0005)
	}
	for range 49 {
		h.WithLabelValues(bench.MethodVerify, "Unavailable").Observe(0.0015)
	}
	h.WithLabelValues(bench.MethodVerify, "OK").Observe(3) // beyond the last bound
	h.WithLabelValues(bench.MethodBegin, "OK").Observe(0.0001)
	after, err := scrape(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d := after[bench.MethodVerify].Sub(before[bench.MethodVerify])
	if d.Total() != 100 {
		t.Fatalf("total %d, want 100", d.Total())
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{
		{0.25, 500 * time.Microsecond},                    // half-way through (0, 1 ms]
		{0.50, time.Millisecond},                          // the 50th of 50 in the first bucket
		{0.75, time.Millisecond + 510204*time.Nanosecond}, // 25 of 49 into (1, 2 ms]
		{0.995, 4 * time.Millisecond},                     // in +Inf: the highest finite bound
	} {
		if got := d.Quantile(tc.q); got < tc.want-time.Microsecond || got > tc.want+time.Microsecond {
			t.Errorf("q%.3f = %v, want %v", tc.q, got, tc.want)
		}
	}
	if n := after[bench.MethodBegin].Sub(before[bench.MethodBegin]).Total(); n != 1 {
		t.Errorf("BeginChallenge: %d observations, want 1 (absent from the first scrape)", n)
	}
	if q := after["/none"].Quantile(0.99); q != 0 {
		t.Errorf("a method never called: p99 %v, want 0", q)
	}
}

// FuzzParseHistograms: any exposition either parses or is refused, never a panic,
// and the quantiles of what parses are finite and ordered.
func FuzzParseHistograms(f *testing.F) {
	f.Add("# TYPE twofactor_rpc_duration_seconds histogram\n" +
		"twofactor_rpc_duration_seconds_bucket{method=\"m\",code=\"OK\",le=\"0.001\"} 3\n" +
		"twofactor_rpc_duration_seconds_bucket{method=\"m\",code=\"OK\",le=\"+Inf\"} 4\n" +
		"twofactor_rpc_duration_seconds_sum{method=\"m\",code=\"OK\"} 0.1\n" +
		"twofactor_rpc_duration_seconds_count{method=\"m\",code=\"OK\"} 4\n")
	f.Add("twofactor_rpc_duration_seconds 1\n")
	f.Fuzz(func(t *testing.T, text string) {
		hs, err := bench.ParseHistograms(strings.NewReader(text))
		if err != nil {
			return
		}
		for _, h := range hs {
			if p50, p99 := h.Quantile(0.5), h.Quantile(0.99); p50 < 0 || p99 < 0 {
				t.Fatalf("negative quantile: %v %v", p50, p99)
			}
			_ = h.Sub(h)
		}
	})
}
