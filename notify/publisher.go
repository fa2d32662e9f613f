package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Publisher is what authd uses to emit events. It is safe for concurrent use.
type Publisher struct {
	js    jetstream.JetStream
	nc    *nats.Conn
	names Names
	now   func() time.Time
	newID func() string
	key   *DeliveryKey
}

// NewPublisher returns a publisher over js (JetStream subjects) and nc (core NATS
// broadcasts). nc may be nil if only JetStream subjects are published.
func NewPublisher(js jetstream.JetStream, nc *nats.Conn, names Names) *Publisher {
	return &Publisher{js: js, nc: nc, names: names, now: time.Now, newID: uuid.NewString}
}

// WithClock returns a copy of p that stamps events with now instead of time.Now.
func (p *Publisher) WithClock(now func() time.Time) *Publisher {
	c := *p
	c.now = now
	return &c
}

// Connected tells whether p's JetStream connection is up.
func (p *Publisher) Connected() bool {
	nc := p.js.Conn()
	return nc != nil && nc.IsConnected()
}

// Names returns the names p publishes under.
func (p *Publisher) Names() Names { return p.names }

func (p *Publisher) publishJSON(ctx context.Context, subject, msgID string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return unpublished(fmt.Errorf("notify: encode %s: %w", subject, err))
	}
	return p.publish(ctx, subject, msgID, data)
}

// publish publishes data on subject with message id msgID and waits for the
// stream's acknowledgement; its error says (ErrNotPublished) when nothing was
// stored for certain. A connection already closed is told here, before
// publishing: once the request is sent, a close while it waits returns the same
// nats.ErrConnectionClosed, and the message may be stored.
func (p *Publisher) publish(ctx context.Context, subject, msgID string, data []byte) error {
	if nc := p.js.Conn(); nc != nil && nc.IsClosed() {
		return unpublished(fmt.Errorf("notify: publish %s (msg id %s): %w", subject, msgID, nats.ErrConnectionClosed))
	}
	if _, err := p.js.Publish(ctx, subject, data, jetstream.WithMsgID(msgID)); err != nil {
		return markUnpublished(fmt.Errorf("notify: publish %s (msg id %s): %w", subject, msgID, err))
	}
	return nil
}

// PublishAudit publishes ev on <p>.audit.<ev.Event>. An empty ID is filled with a random
// UUID, a zero Time with the clock, V with SchemaVersion. The JetStream message id is
// ev.ID, so publishing the same event twice (a retry) stores it once.
func (p *Publisher) PublishAudit(ctx context.Context, ev AuditEvent) error {
	if err := validEvent(ev.Event); err != nil {
		return err
	}
	if ev.ID == "" {
		ev.ID = p.newID()
	}
	if ev.Time.IsZero() {
		ev.Time = p.now()
	}
	ev.Time = ev.Time.UTC()
	ev.V = SchemaVersion
	return p.publishJSON(ctx, p.names.Audit(ev.Event), ev.ID, ev)
}

// ErrNotConnected is returned by PublishAuditAsync while the connection to NATS is
// down: the event is not handed to the client's reconnect buffer, where it would
// wait (and, if the buffer filled, stall every later publish) for the outage to end.
var ErrNotConnected = errors.New("notify: not connected to NATS")

// ErrInvalidEvent wraps the refusal of an audit event that can never be
// published (an invalid event name): retrying it is pointless.
var ErrInvalidEvent = errors.New("notify: invalid audit event")

// AuditAck is the pending acknowledgement of an audit event published with
// PublishAuditAsync.
type AuditAck struct {
	subject, msgID string
	f              jetstream.PubAckFuture
}

// Wait blocks until JetStream has stored the event (nil), refused it, or ctx ends.
func (a *AuditAck) Wait(ctx context.Context) error {
	select {
	case <-a.f.Ok():
		return nil
	case err := <-a.f.Err():
		return fmt.Errorf("notify: publish %s (msg id %s): %w", a.subject, a.msgID, err)
	case <-ctx.Done():
		return fmt.Errorf("notify: publish %s (msg id %s): no acknowledgement: %w", a.subject, a.msgID, ctx.Err())
	}
}

// PublishAuditAsync is PublishAudit without waiting for JetStream's acknowledgement:
// the event is sent (in order with earlier ones on this connection) and the
// returned AuditAck reports later whether it was stored. The message id is ev.ID,
// so a retry after a lost acknowledgement stores the event once. It fails at once
// with ErrNotConnected while NATS is unreachable. An acknowledgement that never
// comes is bounded by the JetStream context's async publish timeout
// (jetstream.WithPublishAsyncTimeout) and by AuditAck.Wait's context.
func (p *Publisher) PublishAuditAsync(ev AuditEvent) (*AuditAck, error) {
	if err := validEvent(ev.Event); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}
	if !p.Connected() {
		return nil, ErrNotConnected
	}
	if ev.ID == "" {
		ev.ID = p.newID()
	}
	if ev.Time.IsZero() {
		ev.Time = p.now()
	}
	ev.Time = ev.Time.UTC()
	ev.V = SchemaVersion
	subject := p.names.Audit(ev.Event)
	data, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("notify: encode %s: %w", subject, err)
	}
	f, err := p.js.PublishAsync(subject, data, jetstream.WithMsgID(ev.ID))
	if err != nil {
		return nil, fmt.Errorf("notify: publish %s (msg id %s): %w", subject, ev.ID, err)
	}
	return &AuditAck{subject: subject, msgID: ev.ID, f: f}, nil
}

// WithDeliveryKey returns a copy of p that seals gateway sends under k. Without a key,
// PublishGatewaySend refuses to publish: a code is never put on NATS in clear.
func (p *Publisher) WithDeliveryKey(k *DeliveryKey) *Publisher {
	c := *p
	c.key = k
	return &c
}

// PublishGatewaySend seals g's secret part (destination, code, text) under the delivery
// key and publishes it on <p>.gateway.send.<g.Channel> (a notice on
// <p>.gateway.notice.<g.Channel>) with the challenge id (a notice's own id) as the
// message id, so a retried BeginChallenge does not send the code twice. Publish only
// after the challenge is stored; record StatusQueued on it once this returns.
func (p *Publisher) PublishGatewaySend(ctx context.Context, g GatewaySend) error {
	if p.key == nil {
		return unpublished(errors.New("notify: publish gateway send: no delivery key (Publisher.WithDeliveryKey)"))
	}
	data, err := p.key.SealGatewaySend(g)
	if err != nil {
		return unpublished(err)
	}
	return p.publish(ctx, p.names.GatewaySubject(g.Kind, g.Channel), g.ChallengeID, data)
}

// PublishPushRequest publishes r on <p>.push.request with the challenge id as message id.
func (p *Publisher) PublishPushRequest(ctx context.Context, r PushRequest) error {
	if err := validToken("push request challenge id", r.ChallengeID); err != nil {
		return unpublished(err)
	}
	r.V = SchemaVersion
	return p.publishJSON(ctx, p.names.PushRequest(), r.ChallengeID, r)
}

// PublishGatewayStatus publishes s on <p>.gateway.status. An empty ID is filled with a
// random UUID and used as the message id.
func (p *Publisher) PublishGatewayStatus(ctx context.Context, s GatewayStatus) error {
	if s.ID == "" {
		s.ID = p.newID()
	}
	if s.Time.IsZero() {
		s.Time = p.now()
	}
	s.Time = s.Time.UTC()
	s.V = SchemaVersion
	return p.publishJSON(ctx, p.names.GatewayStatus(), s.ID, s)
}

func (p *Publisher) core() (*nats.Conn, error) {
	if p.nc == nil {
		return nil, errors.New("notify: publisher has no core NATS connection")
	}
	return p.nc, nil
}

// announcer is core() for a broadcast: while the connection is down it fails at
// once with ErrNotConnected, rather than buffering the message and then waiting
// HealthTimeout for a flush that cannot succeed (which would hold up every RPC
// that announces something for the whole outage).
func (p *Publisher) announcer() (*nats.Conn, error) {
	nc, err := p.core()
	if err != nil {
		return nil, err
	}
	if !nc.IsConnected() {
		return nil, ErrNotConnected
	}
	return nc, nil
}

// flush waits until the server has processed everything sent on nc, bounded by ctx or,
// when ctx has no deadline, by HealthTimeout.
func flush(ctx context.Context, nc *nats.Conn) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, HealthTimeout)
		defer cancel()
	}
	return nc.FlushWithContext(ctx)
}

type revokedMsg struct {
	V             int    `json:"v"`
	AppPasswordID string `json:"app_password_id"`
}

// AnnounceRevoked broadcasts on core NATS that an app password was revoked, so that every
// replica drops it from its cache. It returns once the server has the message (flush);
// a replica that is disconnected misses it, so caches must also expire on their own.
func (p *Publisher) AnnounceRevoked(ctx context.Context, appPasswordID string) error {
	if appPasswordID == "" || len(appPasswordID) > 256 {
		return fmt.Errorf("notify: announce revoked: app password id length %d, want 1..256", len(appPasswordID))
	}
	nc, err := p.announcer()
	if err != nil {
		return err
	}
	data, _ := json.Marshal(revokedMsg{V: SchemaVersion, AppPasswordID: appPasswordID})
	if err := nc.Publish(p.names.AppPasswordRevoked(), data); err != nil {
		return fmt.Errorf("notify: announce revoked: %w", err)
	}
	if err := flush(ctx, nc); err != nil {
		return fmt.Errorf("notify: announce revoked: flush: %w", err)
	}
	return nil
}

// SubscribeRevoked calls fn with each revoked app password id announced from now on, on
// one goroutine, in order. The subscription is registered with the server before it
// returns. Malformed announcements are ignored.
func (p *Publisher) SubscribeRevoked(fn func(id string)) (unsubscribe func(), err error) {
	nc, err := p.core()
	if err != nil {
		return nil, err
	}
	sub, err := nc.Subscribe(p.names.AppPasswordRevoked(), func(m *nats.Msg) {
		var r revokedMsg
		if json.Unmarshal(m.Data, &r) != nil || r.AppPasswordID == "" || r.V > SchemaVersion {
			return
		}
		fn(r.AppPasswordID)
	})
	if err != nil {
		return nil, fmt.Errorf("notify: subscribe revoked: %w", err)
	}
	if err := nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("notify: subscribe revoked: flush: %w", err)
	}
	return func() { _ = sub.Unsubscribe() }, nil
}

// ThrottleSubject names one throttled subject (a kind such as "user" or "ip" and
// the key its count is kept under) in a throttle-failure announcement.
type ThrottleSubject struct {
	Kind string `json:"kind"`
	Key  string `json:"key"`
}

type throttleFailedMsg struct {
	V        int               `json:"v"`
	Subjects []ThrottleSubject `json:"subjects"`
}

// maxThrottleKey bounds an announced key (user ids and network keys are far shorter).
const maxThrottleKey = 512

// AnnounceThrottleFailed broadcasts on core NATS that failures were just recorded
// for subjects, so that every replica stops taking them to be clean. It returns once
// the server has the message (flush); a replica that misses it relies on its cache
// entries expiring. The message holds subject keys (user ids, network prefixes),
// never a secret.
func (p *Publisher) AnnounceThrottleFailed(ctx context.Context, subjects []ThrottleSubject) error {
	if len(subjects) == 0 {
		return nil
	}
	for _, s := range subjects {
		if s.Kind == "" || s.Key == "" || len(s.Kind) > 16 || len(s.Key) > maxThrottleKey {
			return fmt.Errorf("notify: announce throttle failure: subject kind %d, key %d bytes: want 1..16 and 1..%d", len(s.Kind), len(s.Key), maxThrottleKey)
		}
	}
	nc, err := p.announcer()
	if err != nil {
		return err
	}
	data, _ := json.Marshal(throttleFailedMsg{V: SchemaVersion, Subjects: subjects})
	if err := nc.Publish(p.names.ThrottleFailed(), data); err != nil {
		return fmt.Errorf("notify: announce throttle failure: %w", err)
	}
	if err := flush(ctx, nc); err != nil {
		return fmt.Errorf("notify: announce throttle failure: flush: %w", err)
	}
	return nil
}

// SubscribeThrottleFailed calls fn with each subject announced by
// AnnounceThrottleFailed from now on, on one goroutine, in order. The subscription is
// registered with the server before it returns. Malformed announcements are ignored.
func (p *Publisher) SubscribeThrottleFailed(fn func(ThrottleSubject)) (unsubscribe func(), err error) {
	nc, err := p.core()
	if err != nil {
		return nil, err
	}
	sub, err := nc.Subscribe(p.names.ThrottleFailed(), func(m *nats.Msg) {
		var r throttleFailedMsg
		if json.Unmarshal(m.Data, &r) != nil || r.V > SchemaVersion {
			return
		}
		for _, s := range r.Subjects {
			if s.Kind != "" && s.Key != "" {
				fn(s)
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("notify: subscribe throttle failures: %w", err)
	}
	if err := nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("notify: subscribe throttle failures: flush: %w", err)
	}
	return func() { _ = sub.Unsubscribe() }, nil
}

// AnnouncePushResponse wakes every VerifyChallenge waiting on challengeID. The payload is
// empty: the decision itself is read from the store, never trusted from NATS.
func (p *Publisher) AnnouncePushResponse(ctx context.Context, challengeID string) error {
	if err := validToken("push response challenge id", challengeID); err != nil {
		return err
	}
	nc, err := p.announcer()
	if err != nil {
		return err
	}
	if err := nc.Publish(p.names.PushResponse(challengeID), nil); err != nil {
		return fmt.Errorf("notify: announce push response: %w", err)
	}
	if err := flush(ctx, nc); err != nil {
		return fmt.Errorf("notify: announce push response: flush: %w", err)
	}
	return nil
}

// SubscribePushResponse subscribes to the wake-up for challengeID and returns once the
// server has registered the subscription. The channel is closed at the first wake-up.
// To avoid a lost wake-up, subscribe first, then check the store, then wait on the
// channel. Call stop when done.
func (p *Publisher) SubscribePushResponse(challengeID string) (<-chan struct{}, func(), error) {
	if err := validToken("push response challenge id", challengeID); err != nil {
		return nil, nil, err
	}
	nc, err := p.core()
	if err != nil {
		return nil, nil, err
	}
	ch := make(chan struct{})
	var once sync.Once
	sub, err := nc.Subscribe(p.names.PushResponse(challengeID), func(*nats.Msg) {
		once.Do(func() { close(ch) })
	})
	if err != nil {
		return nil, nil, fmt.Errorf("notify: subscribe push response: %w", err)
	}
	if err := nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, nil, fmt.Errorf("notify: subscribe push response: flush: %w", err)
	}
	return ch, func() { _ = sub.Unsubscribe() }, nil
}

// WaitPushResponse blocks until a wake-up for challengeID arrives or ctx ends. It only
// sees announcements made after it subscribed; callers that also read the store should use
// SubscribePushResponse.
func (p *Publisher) WaitPushResponse(ctx context.Context, challengeID string) error {
	ch, stop, err := p.SubscribePushResponse(challengeID)
	if err != nil {
		return err
	}
	defer stop()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
