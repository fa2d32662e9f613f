package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/channels/outbox"
	"github.com/twofactor/twofactor/notify/daemon"
	"github.com/twofactor/twofactor/notify/pushdelivery"
	"github.com/twofactor/twofactor/providers/push"
)

// startDelivery gives the publisher the delivery key, so that codes are published
// sealed. In embedded mode it also runs notifyd's workers in this process: every
// channel to the development outbox (<data-dir>/outbox/), unless notify-config names
// real channels; while Telegram goes to the outbox (no bot), DevService's
// SimulateTelegramStart stands in for pressing Start. With an external NATS, notifyd
// runs apart and shares the key file.
func (a *App) startDelivery(ctx context.Context, js jetstream.JetStream, names notify.Names) error {
	a.js, a.names = js, names
	if !a.cfg.Embedded() {
		key, err := notify.LoadDeliveryKey(a.cfg.DeliveryKeyFile)
		if errors.Is(err, fs.ErrNotExist) {
			a.log.Warn("no delivery key: codes by email, SMS, Telegram or Signal cannot be published until `authd init` writes it (share it with notifyd)",
				"path", a.cfg.DeliveryKeyFile)
			return nil
		}
		if err != nil {
			return err
		}
		a.events = a.events.WithDeliveryKey(key)
		return nil
	}
	o, err := daemon.EmbeddedOptions(js, names, a.cfg.DeliveryKeyFile, a.cfg.OutboxDir, a.log.With("component", "notifyd"))
	if err != nil {
		return err
	}
	if a.cfg.NotifyConfig != "" {
		dc, err := daemon.Parse("authd notify-config", []string{"--config", a.cfg.NotifyConfig, "--data-dir", a.cfg.DataDir},
			func(string) string { return "" })
		if err != nil {
			return fmt.Errorf("notify-config: %w", err)
		}
		if err := dc.ApplyChannels(&o, a.log); err != nil {
			return fmt.Errorf("notify-config: %w", err)
		}
	}
	d, err := daemon.Start(ctx, o)
	if err != nil {
		return err
	}
	a.closers = append(a.closers, d.Stop)
	a.events = a.events.WithDeliveryKey(o.Key)
	if _, toOutbox := o.Senders[notify.ChannelTelegram].(*outbox.Sender); toOutbox && o.Telegram == nil {
		a.devTelegram = d.SimulateTelegramStart
	}
	return nil
}

// startPushDelivery runs, in embedded mode, notifyd's push worker in this process
// (pushdelivery, on the same store and key ring as the push factor): Web Push with
// the VAPID key file when vapid-subscriber is set, ntfy / UnifiedPush always, through
// notify/egress's client: public addresses, and what push-allow-internal and
// push-http-endpoint-hosts allow. With an external NATS, notifyd delivers pushes
// (its -database-url and -push-allow-internal).
func (a *App) startPushDelivery(ctx context.Context, svc *push.Service) error {
	if !a.cfg.Embedded() || svc == nil {
		return nil
	}
	log := a.log.With("component", "notifyd")
	wp, nt, err := daemon.PushSenders(a.cfg.VAPIDKeyFile, a.cfg.VAPIDSubscriber, daemon.PushClient(a.cfg.pushAllow, a.cfg.pushTLS), log)
	if err != nil {
		return err
	}
	w, err := pushdelivery.NewWorker(ctx, a.js, a.names, pushdelivery.Deps{Push: svc, WebPush: wp, Ntfy: nt, Logger: log})
	if err != nil {
		return err
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := w.Run(rctx); err != nil {
			log.Error("push worker stopped", "err", err)
		}
	}()
	a.closers = append(a.closers, func() { cancel(); <-done })
	return nil
}

// OnGatewayStatus consumes <p>.gateway.status through the durable consumer
// "authd-gateway-status" shared by the replicas, calling fn with each delivery result
// (queued is recorded when the send is published; notifyd reports delivered or failed)
// until the app closes. fn must be idempotent and return nil for an unknown challenge.
// The factor wiring calls it once, e.g. to record the state on the challenge.
func (a *App) OnGatewayStatus(fn func(ctx context.Context, s notify.GatewayStatus) error) error {
	stop, err := notify.SubscribeGatewayStatus(context.Background(), a.js, a.names, fn, notify.SubscribeOptions{Logger: a.log})
	if err != nil {
		return err
	}
	a.closers = append(a.closers, stop)
	return nil
}

// OnTelegramBinding consumes the chat bindings notifyd announces (a chat sent
// "/start <token>"), through the durable consumer "authd-telegram-bindings", so a
// binding announced while authd was down is not lost. fn returns a notify.Permanent
// for an unknown or expired token (the binding is dropped), any other error to retry.
func (a *App) OnTelegramBinding(fn func(ctx context.Context, token, chatID string) error) error {
	key, err := notify.LoadDeliveryKey(a.cfg.DeliveryKeyFile)
	if err != nil {
		return err
	}
	stop, err := notify.SubscribeTelegramBindings(context.Background(), a.js, a.names, key, fn,
		notify.SubscribeOptions{Logger: a.log, Backoff: notify.ExponentialBackoff(time.Second, time.Minute)})
	if err != nil {
		return err
	}
	a.closers = append(a.closers, stop)
	return nil
}

// Events is the publisher (sealed gateway sends, audit events, announcements).
func (a *App) Events() *notify.Publisher { return a.events }
