package app

import (
	"context"
	"time"

	"github.com/twofactor/twofactor/audit"
	"github.com/twofactor/twofactor/server"
)

// auditCloseTimeout bounds how long stopping waits for the audit trail to store
// what is queued, and for the relay's round in flight.
const auditCloseTimeout = 10 * time.Second

// startAudit builds the audit trail (the outbox writer the server records into)
// and starts its relay to NATS. Stopping (the closers, in reverse) stores what
// the trail still queues, then stops the relay and releases its lease; rows not
// yet published wait in the store for the next relay.
func (a *App) startAudit(m *server.Metrics) (*audit.Trail, error) {
	am := audit.NewMetrics(m.Registry())
	linger := a.cfg.AuditRelayLinger
	if linger <= 0 {
		linger = -1 // none (the relay's zero is its default)
	}
	relay, err := audit.NewRelay(audit.RelayConfig{
		Store: a.store, Events: a.events, Log: a.log, Metrics: am, PublishTimeout: a.cfg.AuditPublishTimeout,
		Linger: linger,
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); relay.Run(ctx) }()
	a.closers = append(a.closers, func() { cancel(); <-done })
	trail := audit.NewTrail(audit.TrailConfig{Store: a.store, Log: a.log, Metrics: am, Stored: relay.Kick})
	a.closers = append(a.closers, func() {
		ctx, cancel := context.WithTimeout(context.Background(), auditCloseTimeout)
		defer cancel()
		if err := trail.Close(ctx); err != nil {
			a.log.Error("audit trail not stored on close", "error", err.Error())
		}
	})
	return trail, nil
}
