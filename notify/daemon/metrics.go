package daemon

import (
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/channels/ntfy"
	"github.com/twofactor/twofactor/notify/channels/webpush"
	"github.com/twofactor/twofactor/notify/egress"
)

// Metrics are notifyd's Prometheus metrics.
type Metrics struct {
	reg *prometheus.Registry
	// The delivery metrics are labelled with the channel and the message's kind
	// (code or notice: notify.KindCode, notify.KindNotice).
	Sent     *prometheus.CounterVec   // channel, kind: messages the provider accepted
	Failed   *prometheus.CounterVec   // channel, kind, reason: messages given up (dead letter or expired)
	Attempts *prometheus.CounterVec   // channel, kind, result: provider calls (ok, retry, permanent, error)
	Latency  *prometheus.HistogramVec // channel, kind: provider call duration
	// Alert is 1 while a channel needs an operator (reason captcha_required or
	// provider_auth), back to 0 after the next accepted message.
	Alert    *prometheus.GaugeVec
	Bindings prometheus.Counter // Telegram chat bindings published
	// Pushes counts push wake-ups by endpoint kind (webpush, ntfy) and result
	// (ok, gone, refused, retry, permanent, error).
	Pushes *prometheus.CounterVec
}

// NewMetrics returns the metrics registered in a registry of their own.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		Sent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "notifyd_sent_total",
			Help: "Messages the provider accepted, by channel and kind (code, notice)."}, []string{"channel", "kind"}),
		Failed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "notifyd_failed_total",
			Help: "Messages given up (dead-lettered or expired), by channel, kind (code, notice) and reason."}, []string{"channel", "kind", "reason"}),
		Attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "notifyd_send_attempts_total",
			Help: "Provider calls by channel, kind (code, notice) and result (ok, retry, permanent, error)."}, []string{"channel", "kind", "result"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "notifyd_send_duration_seconds",
			Help: "Duration of provider calls, by channel and kind (code, notice).", Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)}, []string{"channel", "kind"}),
		Alert: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "notifyd_operator_alert",
			Help: "1 while a channel needs an operator: captcha_required (Signal) or provider_auth (credentials refused)."}, []string{"channel", "reason"}),
		Bindings: prometheus.NewCounter(prometheus.CounterOpts{Name: "notifyd_telegram_bindings_total",
			Help: "Telegram chat bindings published for authd."}),
		Pushes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "notifyd_push_wakeups_total",
			Help: "Push-approval wake-ups sent to devices, by endpoint kind and result (ok, gone, refused, retry, permanent, error)."}, []string{"kind", "result"}),
	}
	m.reg.MustRegister(m.Sent, m.Failed, m.Attempts, m.Latency, m.Alert, m.Bindings, m.Pushes,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// alertReasons are the failures an operator must act on.
var alertReasons = []string{notify.ReasonCaptchaRequired, notify.ReasonProviderAuth}

func (m *Metrics) sent(ch, kind string, d time.Duration, err error) {
	m.Latency.WithLabelValues(ch, kind).Observe(d.Seconds())
	var ra notify.RetryAfter
	var perm notify.Permanent
	switch {
	case err == nil:
		m.Attempts.WithLabelValues(ch, kind, "ok").Inc()
		for _, r := range alertReasons {
			m.Alert.WithLabelValues(ch, r).Set(0)
		}
	case errors.As(err, &ra):
		m.Attempts.WithLabelValues(ch, kind, "retry").Inc()
	case errors.As(err, &perm):
		m.Attempts.WithLabelValues(ch, kind, "permanent").Inc()
		for _, r := range alertReasons {
			if perm.Reason == r {
				m.Alert.WithLabelValues(ch, r).Set(1)
			}
		}
	default:
		m.Attempts.WithLabelValues(ch, kind, "error").Inc()
	}
}

func (m *Metrics) observe(ch, kind string, o notify.Outcome) {
	switch o.Result {
	case notify.OutcomeDelivered:
		m.Sent.WithLabelValues(ch, kind).Inc()
	case notify.OutcomeDeadLettered, notify.OutcomeExpired:
		m.Failed.WithLabelValues(ch, kind, notify.FailureReason(o.Err)).Inc()
	}
}

// pushed counts one device's wake-up (pushdelivery.Deps.Observe).
func (m *Metrics) pushed(kind string, err error) {
	var ra notify.RetryAfter
	var perm notify.Permanent
	result := "error"
	switch {
	case err == nil:
		result = "ok"
	case errors.Is(err, webpush.ErrGone) || errors.Is(err, ntfy.ErrGone):
		result = "gone"
	case errors.Is(err, egress.ErrRefused):
		result = "refused"
	case errors.As(err, &ra):
		result = "retry"
	case errors.As(err, &perm):
		result = "permanent"
	}
	m.Pushes.WithLabelValues(kind, result).Inc()
}
