package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/twofactor/twofactor/notify/tglink"
)

// TelegramBinding says that a Telegram chat sent "/start <token>" to the bot: authd
// looks the token up among its pending Telegram enrollments and binds the chat.
type TelegramBinding struct {
	UpdateID int64     // Telegram's update id (the message id is derived from it)
	Time     time.Time // when notifyd received it
	Token    string    // the start token, secret until used
	ChatID   string    // the chat to send codes to
}

// telegramBindingWire is the JSON form on <p>.gateway.telegram.bound (version 1).
type telegramBindingWire struct {
	V        int       `json:"v"`
	UpdateID int64     `json:"update_id"`
	Time     time.Time `json:"time"`
	KeyID    string    `json:"key_id"`
	Sealed   []byte    `json:"sealed"`
}

type telegramBindingSecret struct {
	Token  string `json:"token"`
	ChatID string `json:"chat_id"`
}

func bindingMsgID(updateID int64) string { return "tgbind-" + strconv.FormatInt(updateID, 10) }

func bindingAAD(msgID string) []byte { return []byte("twofactor/telegram-bound/v1\x00" + msgID) }

// PublishTelegramBinding seals b's token and chat id under key and publishes it on
// <p>.gateway.telegram.bound. The message id derives from the update id, so a retry
// after a lost acknowledgement is stored once.
func PublishTelegramBinding(ctx context.Context, js jetstream.JetStream, names Names, key *DeliveryKey, b TelegramBinding) error {
	if err := tglink.ValidToken(b.Token); err != nil {
		return fmt.Errorf("notify: telegram binding %w", err)
	}
	if b.ChatID == "" || len(b.ChatID) > 32 {
		return errors.New("notify: telegram binding chat id: want 1 to 32 characters")
	}
	id := bindingMsgID(b.UpdateID)
	pt, _ := json.Marshal(telegramBindingSecret{Token: b.Token, ChatID: b.ChatID})
	keyID, sealed, err := key.Seal(pt, bindingAAD(id))
	if err != nil {
		return err
	}
	data, _ := json.Marshal(telegramBindingWire{V: 1, UpdateID: b.UpdateID, Time: b.Time.UTC(), KeyID: keyID, Sealed: sealed})
	if _, err := js.Publish(ctx, names.TelegramBound(), data, jetstream.WithMsgID(id)); err != nil {
		return fmt.Errorf("notify: publish %s (msg id %s): %w", names.TelegramBound(), id, err)
	}
	return nil
}

// OpenTelegramBinding decodes and opens a payload of <p>.gateway.telegram.bound.
func OpenTelegramBinding(key *DeliveryKey, data []byte) (TelegramBinding, error) {
	var w telegramBindingWire
	if err := decode("telegram binding", data, &w, &w.V); err != nil {
		return TelegramBinding{}, err
	}
	pt, err := key.Open(w.KeyID, w.Sealed, bindingAAD(bindingMsgID(w.UpdateID)))
	if err != nil {
		return TelegramBinding{}, err
	}
	var s telegramBindingSecret
	if json.Unmarshal(pt, &s) != nil || tglink.ValidToken(s.Token) != nil || s.ChatID == "" || len(s.ChatID) > 32 {
		return TelegramBinding{}, ErrUnsealPayload
	}
	return TelegramBinding{UpdateID: w.UpdateID, Time: w.Time, Token: s.Token, ChatID: s.ChatID}, nil
}

// SubscribeOptions tunes the durable consumers of SubscribeTelegramBindings and
// SubscribeGatewayStatus. The zero value is fine.
type SubscribeOptions struct {
	// Durable names the consumer shared by every authd replica; default
	// "authd-telegram-bindings" or "authd-gateway-status".
	Durable string
	// MaxDeliver is the number of attempts of fn before the message is dead-lettered;
	// default 5.
	MaxDeliver int
	// Backoff between attempts; default ExponentialBackoff(time.Second, time.Minute).
	Backoff func(attempt int) time.Duration
	Logger  *slog.Logger
}

func (o SubscribeOptions) worker(names Names, stream, subject, durable string) WorkerConfig {
	if o.Durable == "" {
		o.Durable = durable
	}
	if o.Backoff == nil {
		o.Backoff = ExponentialBackoff(time.Second, time.Minute)
	}
	return WorkerConfig{Names: names, Stream: stream, Durable: o.Durable, FilterSubjects: []string{subject},
		MaxDeliver: o.MaxDeliver, Backoff: o.Backoff, NoStatus: true, Logger: o.Logger}
}

// SubscribeTelegramBindings calls fn with each chat binding notifyd announces, through a
// durable consumer: a binding announced while authd was down is handled when it is back,
// and each binding is handled by one replica. fn returning nil acknowledges the binding;
// a Permanent error (unknown or expired token) drops it to the dead letters (token and
// chat id redacted); any other error retries with backoff. stop (or the end of ctx)
// ends the subscription; stop waits for a call of fn in flight.
func SubscribeTelegramBindings(ctx context.Context, js jetstream.JetStream, names Names, key *DeliveryKey,
	fn func(ctx context.Context, token, chatID string) error, opts SubscribeOptions) (stop func(), err error) {
	cfg := opts.worker(names, names.BindingStream(), names.TelegramBound(), "authd-telegram-bindings")
	return subscribe(ctx, js, cfg, func(ctx context.Context, m Message) error {
		b, err := OpenTelegramBinding(key, m.Data)
		if err != nil {
			return Permanent{Err: err, Reason: ReasonUndecodable}
		}
		return fn(ctx, b.Token, b.ChatID)
	})
}

// SubscribeGatewayStatus calls fn with each delivery status notifyd publishes (and those
// of the last StatusMaxAge when the durable consumer is new), through a durable consumer
// shared by every authd replica, so authd can record delivered or failed on the
// challenge. fn must be idempotent (a status can be handed over twice after a crash)
// and should ignore unknown challenges; errors are handled as by
// SubscribeTelegramBindings.
func SubscribeGatewayStatus(ctx context.Context, js jetstream.JetStream, names Names,
	fn func(ctx context.Context, s GatewayStatus) error, opts SubscribeOptions) (stop func(), err error) {
	cfg := opts.worker(names, names.GatewayStatusStream(), names.GatewayStatus(), "authd-gateway-status")
	return subscribe(ctx, js, cfg, func(ctx context.Context, m Message) error {
		s, err := DecodeGatewayStatus(m.Data)
		if err != nil {
			return Permanent{Err: err, Reason: ReasonUndecodable}
		}
		return fn(ctx, s)
	})
}

func subscribe(ctx context.Context, js jetstream.JetStream, cfg WorkerConfig, h Handler) (func(), error) {
	w, err := NewWorker(ctx, js, cfg, h)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := w.Run(ctx); err != nil {
			w.log.Error("subscription ended", "err", err)
		}
	}()
	return func() { cancel(); <-done }, nil
}
