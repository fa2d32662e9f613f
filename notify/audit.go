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
// Each event is acknowledged only after fn returns nil. If fn fails, the event is handed
// back to the server and TailAudit returns fn's error; the next tail starts with that
// event again. Order is strict: the consumer allows one unacknowledged event at a time.
// A payload that cannot be decoded is terminated (kept in the stream, never redelivered to
// this consumer) rather than blocking the tail. TailAudit returns nil when ctx ends.
func TailAudit(ctx context.Context, js jetstream.JetStream, names Names, durableName string, fromStart bool, fn func(AuditEvent) error) error {
	if err := validToken("audit durable name", durableName); err != nil {
		return err
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
		AckWait:       30 * time.Second,
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
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return fmt.Errorf("notify: audit tail %s: %w", durableName, err)
		}
		ev, err := DecodeAuditEvent(msg.Data())
		if err != nil {
			_ = msg.TermWithReason("undecodable audit event")
			continue
		}
		if err := fn(ev); err != nil {
			_ = msg.Nak()
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
