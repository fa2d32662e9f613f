// Package daemon is notifyd: the workers that take sealed one-time codes off
// <p>.gateway.send.<channel> and sealed notices (messages without a code) off
// <p>.gateway.notice.<channel>, open them with the delivery key and hand them to the
// channel configured for each (notify/channels/...), and the Telegram update receiver
// that turns "/start <token>" into a binding event for authd, and (with
// -database-url) the push worker of notify/pushdelivery, which wakes push-approval
// devices through Web Push or ntfy (see that package's security properties; the
// endpoints are opened with authd's key ring, in memory). cmd/notifyd is a thin
// main around Run; authd's embedded mode calls Start with OutboxSenders to run the
// same workers in-process; there, with Telegram to the outbox and no bot,
// SimulateTelegramStart stands in for a chat pressing Start (development only).
//
// # Delivery semantics
//
//   - One durable pull consumer per channel for codes ("notifyd-<channel>") and one for
//     notices ("notifyd-notice-<channel>", on the notice stream whose max age is a
//     notice's, 24 h by default), shared by every replica: each message is handled by
//     one worker at a time. A payload whose kind is not its subject's is refused.
//   - A message is acknowledged only after the provider accepted it; its id is recorded
//     in the delivered-ids bucket first, so a worker killed between sending and
//     acknowledging does not send it again (notify.Worker).
//   - A provider's retry hint (Retry-After, Telegram's retry_after) is honoured with a
//     delayed negative acknowledgement; other failures back off exponentially; after
//     MaxDeliver attempts, or at once for a refusal, the message goes to the dead
//     letters with its sealed part redacted and a failed status is published on
//     <p>.gateway.status with a reason (rejected, provider_auth, captcha_required,
//     max_deliveries, ...), which authd records on the challenge.
//   - A code whose expires_at has passed (by the injected clock) is not sent: the
//     message is removed and a failed status with reason "expired" is published.
//   - Per channel: at most Concurrency messages in flight and Rate sends per second
//     (token bucket of Burst), codes and notices together (one semaphore and one
//     limiter per channel, shared by its two consumers).
//
// # Security properties
//
//   - Payloads are opened with the delivery key only in memory; a payload in clear
//     (version 1) is refused, so a misconfigured authd cannot make codes cross NATS in
//     clear unnoticed (OWASP ASVS 4.0 V8.3.4, V9.2).
//   - Errors, logs, dead letters and status events never hold the code, the destination
//     or a credential: channel errors carry codes only, and every error is scrubbed of
//     the message's destination and code before it leaves the handler (ASVS V7.1.1).
//   - Metrics and health are served on a loopback address by default (ASVS V14.3).
//   - Only private Telegram chats are bound: a group chat would show codes to others.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/channels"
	"github.com/twofactor/twofactor/notify/channels/telegram"
	"github.com/twofactor/twofactor/notify/pushdelivery"
)

// Limits bound one channel's sending.
type Limits struct {
	Concurrency int     // messages in flight; default 4
	Rate        float64 // sends per second; 0: unlimited
	Burst       int     // token bucket size; default 1 (or Rate rounded up)
}

// Options configures Start.
type Options struct {
	JS    jetstream.JetStream
	Names notify.Names
	Key   *notify.DeliveryKey
	// Senders maps a gateway channel to its provider. A channel without a sender gets a
	// worker that fails its messages at once with reason not_configured, so the backend
	// learns about it instead of waiting.
	Senders map[string]channels.Sender
	Limits  map[string]Limits
	// MaxDeliver is the number of attempts before dead-lettering; default 5.
	MaxDeliver int
	// Backoff between attempts; default notify.ExponentialBackoff(2s, 1m).
	Backoff func(attempt int) time.Duration
	// DrainTimeout is how long sends in flight may finish after Stop; default 10s.
	DrainTimeout time.Duration
	// AckWait as in notify.WorkerConfig; default 30s.
	AckWait time.Duration
	// Telegram, when set with TelegramPoll, long-polls the bot's updates and publishes
	// chat bindings; with a webhook, mount TelegramWebhook instead.
	Telegram     *telegram.Bot
	TelegramPoll bool
	// TelegramReplies, without a Telegram bot, receives the bot's answers to simulated
	// /start updates (SimulateTelegramStart): the development outbox.
	TelegramReplies channels.Sender
	// Push, when set, runs the push worker (pushdelivery.NewWorker) beside the
	// gateway channels' workers.
	Push    *pushdelivery.Deps
	Now     func() time.Time
	Logger  *slog.Logger
	Metrics *Metrics // default: a fresh set (not registered anywhere)
	// Observe, if set, sees every settled delivery (tests).
	Observe func(notify.Outcome)

	afterRecord func(notify.Message) bool // crash injection (tests)
}

// Daemon is a running set of workers.
type Daemon struct {
	opts   Options
	cancel context.CancelFunc
	wg     sync.WaitGroup
	nc     *nats.Conn
}

func (o *Options) defaults() error {
	if o.JS == nil || o.Key == nil {
		return errors.New("notifyd: JetStream and the delivery key are required")
	}
	if o.MaxDeliver <= 0 {
		o.MaxDeliver = 5
	}
	if o.Backoff == nil {
		o.Backoff = notify.ExponentialBackoff(2*time.Second, time.Minute)
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 10 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	for ch := range o.Senders {
		if !notify.ValidChannel(ch) {
			return fmt.Errorf("notifyd: sender for unknown channel %q", ch)
		}
	}
	return nil
}

// Start creates the durable consumers and runs one worker per gateway channel (and the
// Telegram poller when configured) until Stop. It fails if the streams do not exist yet
// (authd creates them: see WaitStreams).
func Start(ctx context.Context, o Options) (*Daemon, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	d := &Daemon{opts: o, nc: o.JS.Conn()}
	var workers []*notify.Worker
	for _, ch := range notify.GatewayChannels {
		// Codes and notices share the channel's rate and its concurrency: one
		// semaphore bounds both consumers' sends in flight.
		limiter, slots := d.limiter(ch), make(chan struct{}, d.concurrency(ch))
		for _, kind := range []string{notify.KindCode, notify.KindNotice} {
			w, err := d.newWorker(ctx, ch, kind, limiter, slots)
			if err != nil {
				return nil, err
			}
			workers = append(workers, w)
		}
	}
	if o.Push != nil {
		w, err := d.newPushWorker(ctx)
		if err != nil {
			return nil, err
		}
		workers = append(workers, w)
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d.cancel = cancel
	for _, w := range workers {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			if err := w.Run(rctx); err != nil {
				o.Logger.Error("notifyd worker stopped", "err", err)
			}
		}()
	}
	if o.Telegram != nil && o.TelegramPoll {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			if err := o.Telegram.Poll(rctx, o.Logger, d.TelegramUpdate); err != nil {
				o.Logger.Error("telegram: polling stopped (fix the bot token and restart)", "err", err)
			}
		}()
	}
	return d, nil
}

// Stop stops taking messages, lets sends in flight finish (DrainTimeout) and returns
// when every worker has stopped.
func (d *Daemon) Stop() {
	d.cancel()
	d.wg.Wait()
}

// Healthy reports whether NATS and JetStream answer.
func (d *Daemon) Healthy(ctx context.Context) error { return notify.HealthyContext(ctx, d.nc) }

// newPushWorker is pushdelivery's worker on o.Push, with the daemon's clock and logger.
func (d *Daemon) newPushWorker(ctx context.Context) (*notify.Worker, error) {
	pd := *d.opts.Push
	if pd.Now == nil {
		pd.Now = d.opts.Now
	}
	if pd.Logger == nil {
		pd.Logger = d.opts.Logger
	}
	observe := pd.Observe
	pd.Observe = func(deviceID, kind string, err error) {
		d.opts.Metrics.pushed(kind, err)
		if observe != nil {
			observe(deviceID, kind, err)
		}
	}
	return pushdelivery.NewWorker(ctx, d.opts.JS, d.opts.Names, pd)
}

// limiter is channel ch's send rate (nil: unlimited).
func (d *Daemon) limiter(ch string) *rate.Limiter {
	lim := d.opts.Limits[ch]
	if lim.Rate <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(lim.Rate), max(lim.Burst, 1))
}

// concurrency is channel ch's bound on sends in flight, codes and notices together.
func (d *Daemon) concurrency(ch string) int {
	if c := d.opts.Limits[ch].Concurrency; c > 0 {
		return c
	}
	return 4
}

// newWorker is the worker of channel ch's codes (durable notifyd-<ch> on the gateway
// stream) or notices (notifyd-notice-<ch> on the notice stream); slots is the
// channel's semaphore, shared by both.
func (d *Daemon) newWorker(ctx context.Context, ch, kind string, limiter *rate.Limiter, slots chan struct{}) (*notify.Worker, error) {
	o := d.opts
	stream, durable := o.Names.GatewayStream(), "notifyd-"+ch
	if kind == notify.KindNotice {
		stream, durable = o.Names.NoticeStream(), "notifyd-notice-"+ch
	}
	cfg := notify.WorkerConfig{
		Names: o.Names, Stream: stream, Durable: durable,
		FilterSubjects: []string{o.Names.GatewaySubject(kind, ch)},
		MaxDeliver:     o.MaxDeliver, Backoff: o.Backoff, AckWait: o.AckWait,
		Concurrency: cap(slots), Slots: slots, DrainTimeout: o.DrainTimeout, Now: o.Now,
		ReportDelivered: true, Logger: o.Logger, AfterRecord: o.afterRecord,
		Observe: func(out notify.Outcome) {
			o.Metrics.observe(ch, kind, out)
			if o.Observe != nil {
				o.Observe(out)
			}
		},
	}
	return notify.NewWorker(ctx, o.JS, cfg, d.handler(ch, kind, o.Senders[ch], limiter))
}

// handler opens, checks and sends one gateway message.
func (d *Daemon) handler(ch, kind string, s channels.Sender, limiter *rate.Limiter) notify.Handler {
	o := d.opts
	return func(ctx context.Context, m notify.Message) error {
		g, err := d.open(ch, kind, m)
		if err != nil {
			return err
		}
		if !g.ExpiresAt.IsZero() && !o.Now().Before(g.ExpiresAt) {
			return notify.Expired{At: g.ExpiresAt}
		}
		if s == nil {
			return notify.Permanent{Err: fmt.Errorf("no provider configured for channel %s", ch), Reason: notify.ReasonNotConfigured}
		}
		if limiter != nil {
			if err := limiter.Wait(ctx); err != nil {
				return fmt.Errorf("rate limit wait: %w", err)
			}
			if !g.ExpiresAt.IsZero() && !o.Now().Before(g.ExpiresAt) {
				return notify.Expired{At: g.ExpiresAt}
			}
		}
		msg := channels.Message{Kind: g.Kind, ChallengeID: g.ChallengeID, Channel: ch, Destination: g.Destination,
			Subject: g.Subject, Text: g.Text, Code: g.Code, ExpiresAt: g.ExpiresAt, Locale: g.Locale}
		start := time.Now()
		err = s.Send(ctx, msg)
		o.Metrics.sent(ch, kind, time.Since(start), err)
		return Scrub(err, g.Destination, g.Code)
	}
}

func (d *Daemon) open(ch, kind string, m notify.Message) (notify.GatewaySend, error) {
	g, err := notify.DecodeGatewaySend(m.Data)
	if err != nil {
		return g, notify.Permanent{Err: err, Reason: notify.ReasonUndecodable}
	}
	if g.Channel != ch || g.ChallengeID != m.ID {
		return g, notify.Permanent{Err: errors.New("payload channel or challenge id does not match the message"), Reason: notify.ReasonUndecodable}
	}
	if g.V < 2 {
		return g, notify.Permanent{Err: errors.New("payload in clear (version 1) refused: upgrade authd so that it seals codes"), Reason: notify.ReasonUndecodable}
	}
	g, err = d.opts.Key.OpenGatewaySend(g)
	if err != nil {
		return g, notify.Permanent{Err: fmt.Errorf("%w (is the delivery key the one authd uses?)", err), Reason: notify.ReasonUndecodable}
	}
	if g.Kind != kind {
		return g, notify.Permanent{Err: fmt.Errorf("a %s payload on the %s subject", g.Kind, kind), Reason: notify.ReasonUndecodable}
	}
	return g, nil
}

// Scrub returns err with every occurrence of the secrets replaced by "[redacted]",
// keeping its kind (notify.RetryAfter, notify.Permanent, notify.Expired).
func Scrub(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	text := err.Error()
	dirty := false
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			dirty = true
		}
	}
	if !dirty {
		return err
	}
	clean := func(e error) error {
		t := e.Error()
		for _, s := range secrets {
			if s != "" {
				t = strings.ReplaceAll(t, s, "[redacted]")
			}
		}
		return errors.New(t)
	}
	var ra notify.RetryAfter
	var perm notify.Permanent
	var exp notify.Expired
	switch {
	case errors.As(err, &exp):
		return exp
	case errors.As(err, &ra):
		if ra.Err == nil {
			return notify.RetryAfter{D: ra.D}
		}
		return notify.RetryAfter{D: ra.D, Err: clean(ra.Err)}
	case errors.As(err, &perm):
		return notify.Permanent{Err: clean(perm.Err), Reason: perm.Reason}
	}
	return clean(err)
}
