package server

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/twofactor/twofactor/providers/otpcode"
	"github.com/twofactor/twofactor/providers/push"
	"github.com/twofactor/twofactor/storage"
)

// EventPushNotMeNotified is audited after a push refused as "this was not me":
// how many of the user's code destinations were sent a notice (details
// "notices", "failed"; no destination).
const EventPushNotMeNotified = "push.not_me_notified"

// NotMeNotifier tells a user, through their other channels, that a push
// sign-in was refused on one of their devices as "this was not me" (issue 14:
// "the user is told through their other devices"). It returns how many notices
// it handed to delivery; an error beside a count means some failed.
type NotMeNotifier interface {
	NotifyNotMe(ctx context.Context, n otpcode.NotMe) (sent int, err error)
}

// OTPNotMeNotifier sends the notice to each active code destination of the user
// (email, SMS, Telegram, Signal), rendered from the otpcode templates, through
// the same sealed notice path as a changed destination's (GatewaySender).
type OTPNotMeNotifier struct {
	Provider *otpcode.Provider
	Out      OutOfBandSender
}

// NotifyNotMe renders and hands over the notices; one that fails does not stop
// the others.
func (o OTPNotMeNotifier) NotifyNotMe(ctx context.Context, n otpcode.NotMe) (int, error) {
	sends, err := o.Provider.NotMeNotices(ctx, n)
	errs := []error{err}
	sent := 0
	for _, s := range sends {
		if err := o.Out.SendOutOfBand(ctx, s); err != nil {
			errs = append(errs, err)
			continue
		}
		sent++
	}
	return sent, errors.Join(errs...)
}

// notMeTimeout bounds the notices of one refused sign-in.
const notMeTimeout = 30 * time.Second

// notMe runs after device d answered challengeID with r: for "this was not me"
// it tells the user's other channels (NotMeNotifier) and audits how many were
// told. A failure is logged and audited; the answer itself stands. The notices
// do not end with the device's request (a phone that loses its network once it
// has answered): they run on its values only, for at most notMeTimeout.
func (s *deviceService) notMe(ctx context.Context, d *storage.PushDevice, challengeID string, r *push.Response) {
	if r.Event != push.EventNotMe || s.opts.NotMe == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), notMeTimeout)
	defer cancel()
	lc, err := s.push.NotMeContext(ctx, d, challengeID)
	sent := 0
	if err == nil {
		sent, err = s.opts.NotMe.NotifyNotMe(ctx, otpcode.NotMe{UserID: d.UserID, Challenge: challengeID, Device: d.Name, Time: lc.Time,
			Client: lc.Client, IP: lc.ClientIP})
	}
	details := map[string]string{"device_id": d.ID, "challenge_id": challengeID, "notices": strconv.Itoa(sent)}
	result := "notified"
	if err != nil {
		result, details["failed"] = "failed", "true"
		s.opts.Log.ErrorContext(ctx, "push: telling the user of a refused sign-in failed", "user", d.UserID, "notices", sent, "error", err.Error())
	}
	s.opts.Auditor.Record(ctx, AuditEvent{Event: EventPushNotMeNotified, UserID: d.UserID, Method: push.Method, Result: result, Details: details})
}
