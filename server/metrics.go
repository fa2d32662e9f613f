package server

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the Prometheus series authd exports, on a registry of their own
// (served on a separate port, never through the gRPC listener). Labels hold method
// names, codes, factors and results only: never a user, an IP or a secret.
type Metrics struct {
	reg           *prometheus.Registry
	rpcs          *prometheus.CounterVec
	rpcLatency    *prometheus.HistogramVec
	verifications *prometheus.CounterVec
	throttled     *prometheus.CounterVec
	locks         *prometheus.CounterVec
}

// NewMetrics builds the series on a new registry, with the Go runtime and process
// collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		rpcs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "twofactor_rpc_requests_total", Help: "gRPC calls handled, by full method and status code.",
		}, []string{"method", "code"}),
		rpcLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "twofactor_rpc_duration_seconds", Help: "gRPC call latency, by full method and status code.",
			// Sub-millisecond bounds: most RPCs take well under 1 ms, and p50/p99 are
			// read from these buckets (authbench -metrics-url).
			Buckets: []float64{.0001, .00025, .0005, .00075, .001, .0015, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method", "code"}),
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "twofactor_verifications_total", Help: "Second-factor and app-password verifications, by factor and result.",
		}, []string{"factor", "result"}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "twofactor_throttled_total", Help: "Attempts refused because a user, login or client network was delayed or locked, by the subject kind.",
		}, []string{"kind"}),
		locks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "twofactor_throttle_locks_total", Help: "Hard locks started, by subject kind.",
		}, []string{"kind"}),
	}
	m.reg.MustRegister(m.rpcs, m.rpcLatency, m.verifications, m.throttled, m.locks,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is the registry the series live on (for adding more).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the series in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

func (m *Metrics) rpc(method, code string, d time.Duration) {
	m.rpcs.WithLabelValues(method, code).Inc()
	m.rpcLatency.WithLabelValues(method, code).Observe(d.Seconds())
}

func (m *Metrics) verification(factor, result string) {
	m.verifications.WithLabelValues(factor, result).Inc()
}
