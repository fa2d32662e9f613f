// Package channeltest has the checks the channel tests share.
package channeltest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/channels"
)

// Message returns a message to +15550100 with code 424242.
func Message(dest string) channels.Message {
	return channels.Message{ChallengeID: "ch-42", Channel: notify.ChannelSMS, Destination: dest,
		Subject: "Sign-in code", Text: "Your code is 424242. @example.org #424242", Code: "424242",
		ExpiresAt: time.Date(2026, 3, 1, 12, 5, 0, 0, time.UTC)}
}

// Notice returns a notice (no code) to dest, with no subject: a channel supplies its
// kind's default.
func Notice(dest string) channels.Message {
	return channels.Message{Kind: notify.KindNotice, ChallengeID: "n-42", Channel: notify.ChannelSMS, Destination: dest,
		Text: "Your sign-in number was changed to +49 •••• ••12.", ExpiresAt: time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)}
}

// Kind classifies a Send result: "ok", "retry <delay>", "permanent <reason>" or "error".
func Kind(err error) string {
	if err == nil {
		return "ok"
	}
	var ra notify.RetryAfter
	if errors.As(err, &ra) {
		return "retry " + ra.D.String()
	}
	var p notify.Permanent
	if errors.As(err, &p) {
		return "permanent " + p.Reason
	}
	return "error"
}

// Clean fails the test if err's text holds any of secrets.
func Clean(t testing.TB, err error, secrets ...string) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(err.Error(), s) {
			t.Errorf("error %q holds the secret %q", err, s)
		}
	}
}
