package notify_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/natstest"
)

func TestEnsureStreamsIdempotent(t *testing.T) {
	_, js, names := natstest.StartBare(t)
	ctx := context.Background()
	cfg := natstest.TestStreamConfig()
	cfg.GatewayMaxAge = 7 * time.Minute
	for i := 0; i < 3; i++ {
		if err := notify.EnsureStreams(ctx, js, names, cfg); err != nil {
			t.Fatalf("EnsureStreams #%d: %v", i+1, err)
		}
	}
	want := map[string]struct {
		ret    jetstream.RetentionPolicy
		maxAge time.Duration
		subj   string
	}{
		names.GatewayStream():       {jetstream.WorkQueuePolicy, 7 * time.Minute, names.GatewaySendAll()},
		names.NoticeStream():        {jetstream.WorkQueuePolicy, cfg.NoticeMaxAge, names.GatewayNoticeAll()},
		names.PushStream():          {jetstream.WorkQueuePolicy, cfg.PushMaxAge, names.PushRequest()},
		names.GatewayStatusStream(): {jetstream.LimitsPolicy, cfg.StatusMaxAge, names.GatewayStatus()},
		names.AuditStream():         {jetstream.LimitsPolicy, cfg.AuditMaxAge, names.AuditAll()},
		names.DeadLetterStream():    {jetstream.LimitsPolicy, cfg.DeadLetterMaxAge, names.DeadLetterAll()},
	}
	for name, w := range want {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		c := s.CachedInfo().Config
		if c.Retention != w.ret || c.MaxAge != w.maxAge || len(c.Subjects) != 1 || c.Subjects[0] != w.subj {
			t.Errorf("%s: retention %v max age %v subjects %v; want %v %v %v", name, c.Retention, c.MaxAge, c.Subjects, w.ret, w.maxAge, w.subj)
		}
		if c.Duplicates <= 0 || c.Duplicates > c.MaxAge {
			t.Errorf("%s: duplicate window %v (max age %v)", name, c.Duplicates, c.MaxAge)
		}
		if name == names.AuditStream() && c.Duplicates != 30*time.Second {
			t.Errorf("audit stream: duplicate window %v, want the default 30s (its ids are held in memory)", c.Duplicates)
		}
	}
	kv, err := js.KeyValue(ctx, names.DeliveredBucket())
	if err != nil {
		t.Fatal(err)
	}
	st, _ := kv.Status(ctx)
	if st.TTL() != cfg.DeliveredTTL {
		t.Errorf("delivered bucket TTL %v, want %v", st.TTL(), cfg.DeliveredTTL)
	}

	// A changed setting is applied by a later call.
	cfg.AuditMaxAge = 2 * time.Hour
	if err := notify.EnsureStreams(ctx, js, names, cfg); err != nil {
		t.Fatal(err)
	}
	s, _ := js.Stream(ctx, names.AuditStream())
	if got := s.CachedInfo().Config.MaxAge; got != 2*time.Hour {
		t.Errorf("audit max age after update %v, want 2h", got)
	}
}

func TestEnsureStreamsConcurrent(t *testing.T) {
	_, js, names := natstest.StartBare(t)
	const replicas = 6
	errs := make(chan error, replicas)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < replicas; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs <- notify.EnsureStreams(context.Background(), js, names, natstest.TestStreamConfig())
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent EnsureStreams: %v", err)
		}
	}
	for _, name := range names.Streams() {
		if _, err := js.Stream(context.Background(), name); err != nil {
			t.Errorf("stream %s missing: %v", name, err)
		}
	}
}

func TestEnsureStreamsRefusesRetentionChange(t *testing.T) {
	_, js, names := natstest.StartBare(t)
	ctx := context.Background()
	// Someone created the audit stream as a work queue: EnsureStreams must say so, not
	// silently keep it.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: names.AuditStream(), Subjects: []string{names.AuditAll()},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	err := notify.EnsureStreams(ctx, js, names, natstest.TestStreamConfig())
	if err == nil {
		t.Fatal("EnsureStreams accepted an audit stream with work-queue retention")
	}
	t.Logf("error (expected): %v", err)
}
