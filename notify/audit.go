package notify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TailAudit delivers audit events to fn in stream order through the durable consumer
// durableName on the audit stream. A tail that was offline resumes where it stopped and
// receives the events it missed. fromStart matters only when the durable consumer does not
// exist yet: true starts at the oldest kept event, false at the next new one.
//
// Delivery is at least once: each event is acknowledged only after fn returns nil, and an
// event may be seen again after a failure or a crash (NATS 2.9 may also repeat an event
// handed back after a failure), so consumers dedupe by AuditEvent.ID. If fn fails, the
// event is handed back to the server and TailAudit returns fn's error; the next tail
// starts with that event again. Order is strict: the consumer allows one unacknowledged event at a time.
// A payload that cannot be decoded is terminated (kept in the stream, never redelivered to
// this consumer) rather than blocking the tail. TailAudit returns nil when ctx ends.
//
// While fn runs the event is kept in progress, so fn may take longer than the ack wait.
// An event the server handed to a pull request that was being withdrawn (possible on
// servers older than 2.10) comes back after the ack wait, 5 seconds by default.
func TailAudit(ctx context.Context, js jetstream.JetStream, names Names, durableName string, fromStart bool, fn func(AuditEvent) error, opts ...TailOption) error {
	if err := validToken("audit durable name", durableName); err != nil {
		return err
	}
	tc := tailConfig{ackWait: 5 * time.Second}
	for _, o := range opts {
		o(&tc)
	}
	policy := jetstream.DeliverNewPolicy
	if fromStart {
		policy = jetstream.DeliverAllPolicy
	}
	cons, err := durableConsumer(ctx, js, names.AuditStream(), jetstream.ConsumerConfig{
		Durable:       durableName,
		Description:   "twofactor audit tail",
		FilterSubject: names.AuditAll(),
		DeliverPolicy: policy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       tc.ackWait,
		MaxAckPending: 1,
		MaxDeliver:    -1,
	})
	if err != nil {
		return err
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("notify: audit tail %s: %w", durableName, err)
	}
	// Stopping hands unprocessed events back at once (instead of after AckWait). The
	// pull request is withdrawn first (unsubscribe, flush) and only then are the events
	// naked, so the server cannot redeliver them to the request nobody reads any more.
	var handBack []jetstream.Msg
	defer func() {
		it.Drain()
		for {
			m, err := it.Next()
			if err != nil {
				break
			}
			handBack = append(handBack, m)
		}
		withdraw(js, it)
		for _, m := range handBack {
			_ = m.Nak()
		}
		_ = js.Conn().Flush()
	}()
	stopOnDone := context.AfterFunc(ctx, it.Drain)
	defer stopOnDone()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return fmt.Errorf("notify: audit tail %s: %w", durableName, err)
		}
		if ctx.Err() != nil {
			handBack = append(handBack, msg)
			continue // drain the rest
		}
		ev, err := DecodeAuditEvent(msg.Data())
		if err != nil {
			_ = msg.TermWithReason("undecodable audit event")
			continue
		}
		if err := inProgressWhile(msg, tc.ackWait, func() error { return fn(ev) }); err != nil {
			handBack = append(handBack, msg)
			return fmt.Errorf("notify: audit tail %s: event %s: %w", durableName, ev.ID, err)
		}
		if err := msg.DoubleAck(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("notify: audit tail %s: ack event %s: %w", durableName, ev.ID, err)
		}
	}
}

// TailOption adjusts TailAudit.
type TailOption func(*tailConfig)

type tailConfig struct{ ackWait time.Duration }

// TailAckWait sets the consumer's ack wait (default 5s, minimum 100ms).
func TailAckWait(d time.Duration) TailOption {
	return func(c *tailConfig) { c.ackWait = max(d, 100*time.Millisecond) }
}

// inProgressWhile runs f, telling the server every ackWait/3 that msg is still being
// worked on, so that it is not redelivered meanwhile.
func inProgressWhile(msg jetstream.Msg, ackWait time.Duration, f func() error) error {
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(ackWait / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	}()
	return f()
}

// withdraw waits until a drained or stopped iterator has unsubscribed and the server has
// processed it, so that no pull request of ours is left on the server.
func withdraw(js jetstream.JetStream, it any) {
	if c, ok := it.(interface{ Closed() <-chan struct{} }); ok {
		select {
		case <-c.Closed():
		case <-time.After(5 * time.Second):
		}
	}
	_ = js.Conn().Flush()
}

// durableConsumer binds to an existing durable consumer, keeping its position, or creates
// it with cfg. Settings that the server allows to change are updated.
func durableConsumer(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	for attempt := 0; attempt < 3; attempt++ {
		c, err := js.Consumer(ctx, stream, cfg.Durable)
		if err == nil {
			// Keep the position-defining settings of the existing consumer.
			info := c.CachedInfo().Config
			cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = info.DeliverPolicy, info.OptStartSeq, info.OptStartTime
			if c, err = js.UpdateConsumer(ctx, stream, cfg); err != nil {
				return nil, fmt.Errorf("notify: update consumer %s on %s: %w", cfg.Durable, stream, err)
			}
			return c, nil
		}
		if !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, fmt.Errorf("notify: consumer %s on %s: %w", cfg.Durable, stream, err)
		}
		c, err = js.CreateConsumer(ctx, stream, cfg)
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, jetstream.ErrConsumerExists) {
			return nil, fmt.Errorf("notify: create consumer %s on %s: %w", cfg.Durable, stream, err)
		}
		// Another replica created it first: bind to it.
	}
	return nil, fmt.Errorf("notify: consumer %s on %s: kept changing while binding", cfg.Durable, stream)
}
