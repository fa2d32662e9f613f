package audit

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the audit trail's Prometheus series. They count events, never name
// one: no user, IP or secret is a label.
type Metrics struct {
	pending   prometheus.Gauge
	published prometheus.Counter
	failed    prometheus.Counter
	lost      prometheus.Counter
	dropped   prometheus.Counter
}

// NewMetrics builds the series and registers them on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "twofactor_audit_pending",
			Help: "Audit events stored but not yet published to NATS (the outbox), as last counted by this replica's relay.",
		}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "twofactor_audit_published_total",
			Help: "Audit events this replica's relay published to NATS and marked published.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "twofactor_audit_publish_failures_total",
			Help: "Publications of audit events to NATS that failed; each such event stays in the outbox and is retried.",
		}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "twofactor_audit_lost_total",
			Help: "Audit events the store refused (not stored, so never published).",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "twofactor_audit_unpublishable_total",
			Help: "Stored audit events NATS can never take (an invalid event name); kept in the store, not retried.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.pending, m.published, m.failed, m.lost, m.dropped)
	}
	return m
}

func (m *Metrics) setPending(n int64) {
	if m != nil {
		m.pending.Set(float64(n))
	}
}

func (m *Metrics) addPublished(n int) {
	if m != nil && n > 0 {
		m.published.Add(float64(n))
	}
}

func (m *Metrics) addFailed(n int) {
	if m != nil && n > 0 {
		m.failed.Add(float64(n))
	}
}

func (m *Metrics) addLost() {
	if m != nil {
		m.lost.Inc()
	}
}

func (m *Metrics) addDropped() {
	if m != nil {
		m.dropped.Inc()
	}
}
