package notify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func defaultOptions() []nats.Option {
	return []nats.Option{
		nats.Name("twofactor"),
		nats.MaxReconnects(-1), // never give up: replicas outlive NATS restarts
		nats.ReconnectWait(500 * time.Millisecond),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		nats.ReconnectBufSize(8 << 20), // publishes made while reconnecting are buffered
		nats.PingInterval(20 * time.Second),
		nats.MaxPingsOutstanding(3),
		nats.Timeout(5 * time.Second),
	}
}

// Connect connects to an external NATS server or cluster (url may list several servers,
// comma separated) with reconnect settings for a long-running service: reconnect forever,
// jittered waits, an 8 MiB reconnect buffer. The first connection must succeed (pass
// nats.RetryOnFailedConnect(true) to start while NATS is down). opts override the defaults.
func Connect(url string, opts ...nats.Option) (*nats.Conn, error) {
	nc, err := nats.Connect(url, append(defaultOptions(), opts...)...)
	if err != nil {
		// The URL may carry credentials (nats://user:pass@host); do not repeat it.
		return nil, fmt.Errorf("notify: connect to NATS: %w", err)
	}
	return nc, nil
}

// HealthTimeout bounds the JetStream round trip made by Healthy.
const HealthTimeout = 2 * time.Second

// Healthy reports whether nc is connected and JetStream answers an account info request
// within HealthTimeout. Use it as a readiness check.
func Healthy(nc *nats.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), HealthTimeout)
	defer cancel()
	return HealthyContext(ctx, nc)
}

// HealthyContext is Healthy with the caller's deadline.
func HealthyContext(ctx context.Context, nc *nats.Conn) error {
	if nc == nil {
		return errors.New("notify: health: no NATS connection")
	}
	if st := nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("notify: health: NATS connection is %v", st)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("notify: health: %w", err)
	}
	if _, err := js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("notify: health: JetStream account info: %w", err)
	}
	return nil
}
