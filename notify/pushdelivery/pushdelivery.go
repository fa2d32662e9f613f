// Package pushdelivery is notifyd's handler of push login requests
// (<p>.push.request): for each active device of the user it sends the opaque wake-up
// (providers/push.Wake: challenge id and device id) through the device's endpoint,
// Web Push (notify/channels/webpush) or ntfy / UnifiedPush (notify/channels/ntfy).
//
// Register it on a notify.Worker built from WorkerConfig:
//
//	w, err := pushdelivery.NewWorker(ctx, js, names, deps) // then go w.Run(ctx)
//
// # Security properties
//
//   - The request on NATS names the challenge, the user and the expiry, nothing of the
//     login and no number (authd publishes it so); the device fetches the context
//     over the authenticated device API.
//   - Endpoints are read from the store and opened with the key ring only here, in
//     memory, per delivery; errors never quote them.
//   - A push service's 404/410 retires the endpoint (RFC 8030 §7.3) and the device
//     keeps polling; one device's refusal does not fail the others; a failed push
//     transport never blocks a login, which the user can still approve by polling.
//   - An expired request is dropped (acknowledged) without a delivery.
//   - The endpoint URL is the enrolling user's choice: notifyd's client
//     (notify/egress) connects only to public unicast addresses, checked on the
//     address dialled, unless the operator allows a network or a name
//     (push-allow-internal); a refused address fails that device's delivery at once
//     (logged with the host, no retry) and the device polls.
package pushdelivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/channels/ntfy"
	"github.com/twofactor/twofactor/notify/channels/webpush"
	"github.com/twofactor/twofactor/notify/egress"
	"github.com/twofactor/twofactor/providers/push"
	"github.com/twofactor/twofactor/storage"
)

// Deps are what the handler needs. WebPush or Ntfy may be nil: devices of that
// kind then get no push and poll.
type Deps struct {
	Push    *push.Service
	WebPush *webpush.Sender
	Ntfy    *ntfy.Sender
	Now     func() time.Time
	Logger  *slog.Logger
	// Observe, if set, is called for each device's delivery (metrics, tests).
	Observe func(deviceID, kind string, err error)
}

// WorkerConfig is the worker for push requests: the push stream, one durable
// consumer shared by every notifyd, short backoff (a push is useful for minutes).
func WorkerConfig(names notify.Names) notify.WorkerConfig {
	return notify.WorkerConfig{
		Names: names, Stream: names.PushStream(), Durable: "notifyd-push",
		FilterSubjects: []string{names.PushRequest()}, MaxDeliver: 4, Concurrency: 4,
		Backoff: notify.ExponentialBackoff(time.Second, 20*time.Second),
	}
}

// NewWorker is the push worker notifyd runs: WorkerConfig's consumer with Handler(d).
func NewWorker(ctx context.Context, js jetstream.JetStream, names notify.Names, d Deps) (*notify.Worker, error) {
	cfg := WorkerConfig(names)
	if d.Logger != nil {
		cfg.Logger = d.Logger
	}
	return notify.NewWorker(ctx, js, cfg, Handler(d))
}

// Handler returns the notify.Handler delivering push requests.
func Handler(d Deps) notify.Handler {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	return func(ctx context.Context, m notify.Message) error {
		r, err := notify.DecodePushRequest(m.Data)
		if err != nil {
			return notify.Permanent{Err: err}
		}
		if !r.ExpiresAt.IsZero() && !d.Now().Before(r.ExpiresAt) {
			return nil // the login is over: nothing to wake
		}
		devices, err := d.Push.Devices(ctx, r.UserID)
		if err != nil {
			return fmt.Errorf("push delivery: list devices: %w", err)
		}
		var retry error
		for i := range devices {
			dev := &devices[i]
			if r.DeviceID != "" && dev.ID != r.DeviceID {
				continue
			}
			if err := d.deliver(ctx, dev, r.ChallengeID); err != nil {
				retry = worse(retry, err)
			}
		}
		return retry
	}
}

// deliver wakes one device. It returns only errors worth a retry of the request;
// a gone endpoint is retired, other refusals are logged.
func (d Deps) deliver(ctx context.Context, dev *storage.PushDevice, challengeID string) error {
	ep, err := d.Push.OpenEndpoint(dev)
	if err != nil {
		d.Logger.Error("push delivery: endpoint does not open", "device", dev.ID, "err", err)
		return nil
	}
	payload := push.WakePayload(challengeID, dev.ID)
	switch {
	case ep.Kind == storage.PushEndpointWebPush && d.WebPush != nil:
		err = d.WebPush.Send(ctx, webpush.Subscription{Endpoint: ep.URL, P256dh: ep.P256dh, Auth: ep.Auth}, payload)
	case ep.Kind == storage.PushEndpointNtfy && d.Ntfy != nil:
		err = d.Ntfy.Send(ctx, ep.URL, ep.Token, payload)
	default:
		return nil // polls
	}
	if d.Observe != nil {
		d.Observe(dev.ID, ep.Kind, err)
	}
	var perm notify.Permanent
	var refused *egress.RefusedError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, webpush.ErrGone) || errors.Is(err, ntfy.ErrGone):
		if _, rerr := d.Push.RetireEndpoint(ctx, dev); rerr != nil {
			return fmt.Errorf("push delivery: retire endpoint: %w", rerr)
		}
		d.Logger.Info("push delivery: endpoint gone, device now polls", "device", dev.ID, "kind", ep.Kind)
		return nil
	case errors.As(err, &refused):
		// The endpoint's host is not a public address (notify/egress): named by host
		// and address only, never the URL (a capability); not retried.
		d.Logger.Warn("push delivery: endpoint address refused: not public and not allowed by push-allow-internal, device polls",
			"device", dev.ID, "kind", ep.Kind, "host", refused.Host, "addr", refused.Addr.String())
		return nil
	case errors.As(err, &perm):
		d.Logger.Warn("push delivery: refused", "device", dev.ID, "kind", ep.Kind, "err", err)
		return nil
	}
	return err
}

// worse keeps the error that asks for the longest wait: a RetryAfter over a plain
// error, the longer of two RetryAfters.
func worse(a, b error) error {
	var ra, rb notify.RetryAfter
	aRetry, bRetry := errors.As(a, &ra), errors.As(b, &rb)
	switch {
	case a == nil:
		return b
	case bRetry && (!aRetry || rb.D > ra.D):
		return b
	}
	return a
}
