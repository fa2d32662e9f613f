package notify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamConfig sizes the streams. Zero fields take the defaults of DefaultStreamConfig.
type StreamConfig struct {
	// GatewayMaxAge drops an undelivered code once it could no longer be used: set it to
	// the one-time code lifetime. Default 10 minutes (ASVS 4.0 V2.7.2).
	GatewayMaxAge time.Duration
	// NoticeMaxAge drops an undelivered notice (a message without a code, such as a
	// changed destination): longer than a code's, since a notice is still worth
	// reading hours later. DeliveredTTL must not be shorter. Default 24 hours.
	NoticeMaxAge time.Duration
	// PushMaxAge drops an undelivered push request: the challenge lifetime. Default 5 min.
	PushMaxAge time.Duration
	// BindingMaxAge drops a Telegram binding authd has not taken: the binding token's
	// lifetime. Default 1 hour.
	BindingMaxAge time.Duration
	// AuditMaxAge is how long audit events are kept. Default 30 days.
	AuditMaxAge time.Duration
	// StatusMaxAge is how long gateway status events are kept. Default 24 hours.
	StatusMaxAge time.Duration
	// DeadLetterMaxAge is how long dead letters are kept. Default 7 days.
	DeadLetterMaxAge time.Duration
	// AuditDedupeWindow is how long the audit stream remembers an event id to drop a
	// retried publish of it. The server keeps every id of the window in memory
	// (~100 bytes each: 2 800 events/s for 2 minutes held ~35 MB), so it is shorter
	// than other streams' 2 minutes; a publish is retried within seconds
	// (authd's acknowledgement wait is 2 s). Default 30 s.
	AuditDedupeWindow time.Duration
	// DeliveredTTL is how long workers remember a delivered message id; it must exceed the
	// longest time a message can stay in a work queue. Default 24 hours.
	DeliveredTTL time.Duration
	// Replicas per stream (1 for a single server, 3 for a cluster). Default 1.
	Replicas int
	// Memory selects memory storage instead of file storage (tests only).
	Memory bool
}

// DefaultStreamConfig returns the defaults described on StreamConfig.
func DefaultStreamConfig() StreamConfig {
	return StreamConfig{
		GatewayMaxAge:     10 * time.Minute,
		NoticeMaxAge:      24 * time.Hour,
		PushMaxAge:        5 * time.Minute,
		BindingMaxAge:     time.Hour,
		AuditMaxAge:       30 * 24 * time.Hour,
		AuditDedupeWindow: 30 * time.Second,
		StatusMaxAge:      24 * time.Hour,
		DeadLetterMaxAge:  7 * 24 * time.Hour,
		DeliveredTTL:      24 * time.Hour,
		Replicas:          1,
	}
}

func (c StreamConfig) withDefaults() StreamConfig {
	d := DefaultStreamConfig()
	set := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&c.GatewayMaxAge, d.GatewayMaxAge)
	set(&c.NoticeMaxAge, d.NoticeMaxAge)
	set(&c.PushMaxAge, d.PushMaxAge)
	set(&c.BindingMaxAge, d.BindingMaxAge)
	set(&c.AuditMaxAge, d.AuditMaxAge)
	set(&c.AuditDedupeWindow, d.AuditDedupeWindow)
	set(&c.StatusMaxAge, d.StatusMaxAge)
	set(&c.DeadLetterMaxAge, d.DeadLetterMaxAge)
	set(&c.DeliveredTTL, d.DeliveredTTL)
	if c.Replicas <= 0 {
		c.Replicas = d.Replicas
	}
	return c
}

// dedupeWindow is the JetStream duplicate window: a message id seen within it is dropped.
// It may not exceed the stream's max age.
func dedupeWindow(maxAge time.Duration) time.Duration {
	const w = 2 * time.Minute
	if maxAge < w {
		return maxAge
	}
	return w
}

// StreamConfigs returns the JetStream configurations EnsureStreams applies, for
// inspection and for operators who manage streams themselves.
func StreamConfigs(names Names, cfg StreamConfig) []jetstream.StreamConfig {
	cfg = cfg.withDefaults()
	storage := jetstream.FileStorage
	if cfg.Memory {
		storage = jetstream.MemoryStorage
	}
	mk := func(name, desc string, subjects []string, ret jetstream.RetentionPolicy, maxAge time.Duration) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name:        name,
			Description: desc,
			Subjects:    subjects,
			Retention:   ret,
			MaxAge:      maxAge,
			Duplicates:  dedupeWindow(maxAge),
			Storage:     storage,
			Replicas:    cfg.Replicas,
			Discard:     jetstream.DiscardOld,
		}
	}
	audit := mk(names.AuditStream(), "twofactor audit events", []string{names.AuditAll()}, jetstream.LimitsPolicy, cfg.AuditMaxAge)
	audit.Duplicates = min(cfg.AuditDedupeWindow, cfg.AuditMaxAge)
	return []jetstream.StreamConfig{
		mk(names.GatewayStream(), "twofactor one-time codes to deliver", []string{names.GatewaySendAll()}, jetstream.WorkQueuePolicy, cfg.GatewayMaxAge),
		mk(names.NoticeStream(), "twofactor notices to deliver", []string{names.GatewayNoticeAll()}, jetstream.WorkQueuePolicy, cfg.NoticeMaxAge),
		mk(names.PushStream(), "twofactor push login requests to deliver", []string{names.PushRequest()}, jetstream.WorkQueuePolicy, cfg.PushMaxAge),
		mk(names.GatewayStatusStream(), "twofactor delivery results", []string{names.GatewayStatus()}, jetstream.LimitsPolicy, cfg.StatusMaxAge),
		audit,
		mk(names.DeadLetterStream(), "twofactor messages that could not be delivered", []string{names.DeadLetterAll()}, jetstream.LimitsPolicy, cfg.DeadLetterMaxAge),
		mk(names.BindingStream(), "twofactor Telegram chats bound by a start token", []string{names.TelegramBound()}, jetstream.WorkQueuePolicy, cfg.BindingMaxAge),
	}
}

// EnsureStreams creates or updates every stream and the delivered-ids bucket. It is
// idempotent and safe when several replicas start at once: a create that loses the race to
// another replica is retried as an update.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, names Names, cfg StreamConfig) error {
	cfg = cfg.withDefaults()
	for _, sc := range StreamConfigs(names, cfg) {
		if err := ensureStream(ctx, js, sc); err != nil {
			return err
		}
	}
	kvc := jetstream.KeyValueConfig{
		Bucket:      names.DeliveredBucket(),
		Description: "twofactor message ids already delivered by a worker",
		TTL:         cfg.DeliveredTTL,
		History:     1,
		Replicas:    cfg.Replicas,
		Storage:     jetstream.FileStorage,
	}
	if cfg.Memory {
		kvc.Storage = jetstream.MemoryStorage
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if _, err = js.CreateOrUpdateKeyValue(ctx, kvc); err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) && !errors.Is(err, jetstream.ErrBucketExists) {
			break
		}
	}
	return fmt.Errorf("notify: ensure bucket %s: %w", kvc.Bucket, err)
}

func ensureStream(ctx context.Context, js jetstream.JetStream, sc jetstream.StreamConfig) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if _, err = js.CreateOrUpdateStream(ctx, sc); err == nil {
			return nil
		}
		// Two replicas both saw "not found" and both created; the loser updates next round.
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			break
		}
	}
	return fmt.Errorf("notify: ensure stream %s: %w", sc.Name, err)
}
