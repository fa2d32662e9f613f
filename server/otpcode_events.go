package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/providers/otpcode"
	"github.com/twofactor/twofactor/storage"
)

// GatewaySender publishes a code's Send as a gateway send
// (<prefix>.gateway.send.<channel>) for the notifyd workers, under the Send's
// message id (a resend has its own, so JetStream's de-duplication keeps it),
// and a notice (a changed destination, a push refused as not me) as a gateway
// notice (<prefix>.gateway.notice.<channel>, kind notice, no code) under the
// notice's own id and expiry. Events must carry the delivery key
// (Publisher.WithDeliveryKey): the destination, the code and the rendered text
// are sealed for notifyd.
type GatewaySender struct {
	Events *notify.Publisher
}

// SendOutOfBand publishes s.
func (g GatewaySender) SendOutOfBand(ctx context.Context, s *otpcode.Send) error {
	if g.Events == nil {
		return fmt.Errorf("server: no event publisher for out-of-band sends: %w", notify.ErrNotPublished)
	}
	kind := notify.KindCode
	switch s.Kind {
	case otpcode.KindCode:
	case otpcode.KindNotice:
		kind = notify.KindNotice
	default:
		return fmt.Errorf("server: out-of-band send of unknown kind %q: %w", s.Kind, notify.ErrNotPublished)
	}
	return g.Events.PublishGatewaySend(ctx, notify.GatewaySend{Kind: kind,
		ChallengeID: s.MessageID(), Channel: s.Channel, UserID: s.UserID, ExpiresAt: s.ExpiresAt,
		Destination: s.Destination, Code: s.Code, Subject: s.Subject, Text: s.Text, Locale: s.Locale,
	})
}

// NoticePublishTimeout bounds the publish of a replaced destination's notice.
// It runs inside the replacement's transaction, which holds the user's
// throttle row (and on SQLite the one writer), so a NATS that does not answer
// must not hold them for the publisher's default of 5 s. A timeout undoes the
// replacement like any failed publish; the retry republishes under the same id
// (a notice that did reach the stream is then deduplicated).
const NoticePublishTimeout = 2 * time.Second

// sendNotice publishes a notice within NoticePublishTimeout.
func sendNotice(ctx context.Context, out OutOfBandSender, s *otpcode.Send) error {
	ctx, cancel := context.WithTimeout(ctx, NoticePublishTimeout)
	defer cancel()
	return out.SendOutOfBand(ctx, s)
}

// OTPCodeEvents handles what notifyd reports back to authd: Telegram chat
// bindings and delivery statuses. server/app subscribes them (durable
// consumers, one replica each).
type OTPCodeEvents struct {
	Provider *otpcode.Provider
	Out      OutOfBandSender
}

// ErrPermanent marks an event that retrying will not help (an unknown or used
// token): the subscriber drops it to the dead letters.
var ErrPermanent = errors.New("permanent")

// Binding completes the Telegram enrollment whose token the chat sent with
// /start, and tells a replaced chat of the change: the notice is handed over in
// the binding's transaction, so that a failure undoes the binding and the
// binding event, fetched again, binds and tells then.
func (h OTPCodeEvents) Binding(ctx context.Context, token, chatID string) error {
	_, err := h.Provider.BindTelegramThen(ctx, token, chatID, func(ctx context.Context, fin *otpcode.Finished) error {
		if fin.Notice != nil && h.Out != nil {
			return sendNotice(ctx, h.Out, fin.Notice)
		}
		return nil
	})
	switch {
	case errors.Is(err, otpcode.ErrBadToken), errors.Is(err, otpcode.ErrDestination), errors.Is(err, otpcode.ErrNotPending):
		return notify.Permanent{Err: errors.Join(ErrPermanent, err), Reason: notify.ReasonRejected}
	case err != nil:
		return err
	}
	return nil
}

// Status records a delivery status on the code it names (by its message id);
// unknown ids are ignored, and so is a notice's status: a notice is no
// challenge's delivery.
func (h OTPCodeEvents) Status(ctx context.Context, s notify.GatewayStatus) error {
	if s.Kind == notify.KindNotice {
		return nil
	}
	state := storage.DeliveryFailed
	if s.State == notify.StatusDelivered {
		state = storage.DeliveryDelivered
	} else if s.State != notify.StatusFailed {
		return nil
	}
	_, err := h.Provider.RecordDelivery(ctx, s.ChallengeID, otpcode.Delivery{State: state, Reason: s.Error, At: s.Time})
	return err
}

// sweepOTPCodes deletes sent codes and link tokens an hour past their expiry,
// and the daily send counters of days before yesterday.
func (s *Server) sweepOTPCodes(ctx context.Context, now time.Time) error {
	if _, err := s.store.DeleteOTPCodesBefore(ctx, now.Add(-time.Hour)); err != nil {
		return err
	}
	if _, err := s.store.DeleteOTPLinkTokensBefore(ctx, now.Add(-time.Hour)); err != nil {
		return err
	}
	_, err := s.store.DeleteOTPSendCountersBefore(ctx, now.Add(-24*time.Hour))
	return err
}
