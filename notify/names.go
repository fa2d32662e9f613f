package notify

import (
	"fmt"
	"strings"
)

// DefaultPrefix is the subject prefix used when none is configured.
const DefaultPrefix = "twofactor"

// Channels a one-time code can be sent through (the last token of a gateway send subject).
const (
	ChannelEmail    = "email"
	ChannelSMS      = "sms"
	ChannelTelegram = "telegram"
	ChannelSignal   = "signal"
	// ChannelPush is not a gateway channel; it names push delivery in GatewayStatus.
	ChannelPush = "push"
)

// GatewayChannels lists the channels accepted by Names.GatewaySend, in a stable order.
var GatewayChannels = []string{ChannelEmail, ChannelSMS, ChannelTelegram, ChannelSignal}

// Names derives every subject, stream and bucket name from one prefix, so that tests and
// tenants can share a NATS server without colliding. The zero value uses DefaultPrefix.
type Names struct {
	prefix string
}

// DefaultNames returns the names for DefaultPrefix.
func DefaultNames() Names { return Names{prefix: DefaultPrefix} }

// NewNames validates prefix and returns the names derived from it. A prefix is one subject
// token of 1 to 32 characters from [a-z0-9_-]: lower case only, because stream names are
// its upper-case form and two prefixes differing only in case would share streams.
func NewNames(prefix string) (Names, error) {
	if len(prefix) == 0 || len(prefix) > 32 {
		return Names{}, fmt.Errorf("notify: prefix %q: want 1 to 32 characters", prefix)
	}
	for _, c := range prefix {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return Names{}, fmt.Errorf("notify: prefix %q: character %q not in [a-z0-9_-]", prefix, c)
		}
	}
	return Names{prefix: prefix}, nil
}

// Prefix returns the subject prefix.
func (n Names) Prefix() string {
	if n.prefix == "" {
		return DefaultPrefix
	}
	return n.prefix
}

func (n Names) subj(rest string) string { return n.Prefix() + "." + rest }
func (n Names) stream(suffix string) string {
	return strings.ToUpper(n.Prefix()) + "_" + suffix
}

// GatewaySend is the subject a one-time code for channel is published on:
// <p>.gateway.send.<channel>. It does not validate channel; ValidChannel does.
func (n Names) GatewaySend(channel string) string { return n.subj("gateway.send." + channel) }

// GatewaySendAll is the wildcard covering every gateway channel: <p>.gateway.send.*.
func (n Names) GatewaySendAll() string { return n.subj("gateway.send.*") }

// GatewayNotice is the subject a notice (a message without a code) for channel is
// published on: <p>.gateway.notice.<channel>. It does not validate channel.
func (n Names) GatewayNotice(channel string) string { return n.subj("gateway.notice." + channel) }

// GatewayNoticeAll is the wildcard covering every channel's notices: <p>.gateway.notice.*.
func (n Names) GatewayNoticeAll() string { return n.subj("gateway.notice.*") }

// GatewaySubject is the subject a gateway send of kind is published on: GatewayNotice
// for KindNotice, GatewaySend otherwise.
func (n Names) GatewaySubject(kind, channel string) string {
	if kind == KindNotice {
		return n.GatewayNotice(channel)
	}
	return n.GatewaySend(channel)
}

// KindOf tells whether subject is a gateway send (KindCode) or a notice (KindNotice)
// subject of a valid channel; "" for any other subject.
func (n Names) KindOf(subject string) string {
	if c, ok := strings.CutPrefix(subject, n.subj("gateway.send.")); ok && ValidChannel(c) {
		return KindCode
	}
	if c, ok := strings.CutPrefix(subject, n.subj("gateway.notice.")); ok && ValidChannel(c) {
		return KindNotice
	}
	return ""
}

// PushRequest is the subject of push login requests: <p>.push.request.
func (n Names) PushRequest() string { return n.subj("push.request") }

// PushResponse is the core NATS subject announcing a device's answer: <p>.push.response.<id>.
func (n Names) PushResponse(challengeID string) string {
	return n.subj("push.response." + challengeID)
}

// TelegramBound is the subject notifyd announces a Telegram chat binding on (a chat sent
// "/start <token>"): <p>.gateway.telegram.bound.
func (n Names) TelegramBound() string { return n.subj("gateway.telegram.bound") }

func (n Names) isBinding(subject string) (string, bool) {
	if subject == n.TelegramBound() {
		return ChannelTelegram, true
	}
	return "", false
}

// GatewayStatus is the subject delivery results are published on: <p>.gateway.status.
func (n Names) GatewayStatus() string { return n.subj("gateway.status") }

// Audit is the subject of one audit event: <p>.audit.<event>, e.g. <p>.audit.factor.enrolled.
func (n Names) Audit(event string) string { return n.subj("audit." + event) }

// AuditAll is the wildcard covering every audit event: <p>.audit.>.
func (n Names) AuditAll() string { return n.subj("audit.>") }

// AppPasswordRevoked is the core NATS broadcast subject for cache invalidation.
func (n Names) AppPasswordRevoked() string { return n.subj("apppassword.revoked") }

// ThrottleFailed is the core NATS broadcast subject announcing that failures were
// recorded for throttle subjects: <p>.throttle.failed. Replicas forget that those
// subjects were clean.
func (n Names) ThrottleFailed() string { return n.subj("throttle.failed") }

// DeadLetter maps an original subject to its dead-letter subject:
// <p>.gateway.send.sms becomes <p>.deadletter.gateway.send.sms. A subject outside the
// prefix keeps all its tokens: foo.bar becomes <p>.deadletter.foo.bar.
func (n Names) DeadLetter(original string) string {
	return n.subj("deadletter." + strings.TrimPrefix(original, n.Prefix()+"."))
}

// DeadLetterAll is the wildcard covering every dead-letter subject: <p>.deadletter.>.
func (n Names) DeadLetterAll() string { return n.subj("deadletter.>") }

// ChannelOf returns the channel a gateway send, notice or push request subject is for.
func (n Names) ChannelOf(subject string) (string, bool) {
	if subject == n.PushRequest() {
		return ChannelPush, true
	}
	if n.KindOf(subject) == "" {
		return "", false
	}
	return subject[strings.LastIndexByte(subject, '.')+1:], true
}

// Stream names: the upper-case prefix and a suffix, e.g. TWOFACTOR_AUDIT.

// GatewayStream holds <p>.gateway.send.* (work queue).
func (n Names) GatewayStream() string { return n.stream("GATEWAY") }

// NoticeStream holds <p>.gateway.notice.* (work queue).
func (n Names) NoticeStream() string { return n.stream("NOTICES") }

// PushStream holds <p>.push.request (work queue).
func (n Names) PushStream() string { return n.stream("PUSH") }

// GatewayStatusStream holds <p>.gateway.status (limits).
func (n Names) GatewayStatusStream() string { return n.stream("GATEWAY_STATUS") }

// BindingStream holds <p>.gateway.telegram.bound (work queue).
func (n Names) BindingStream() string { return n.stream("BINDINGS") }

// AuditStream holds <p>.audit.> (limits).
func (n Names) AuditStream() string { return n.stream("AUDIT") }

// DeadLetterStream holds <p>.deadletter.> (limits).
func (n Names) DeadLetterStream() string { return n.stream("DEADLETTER") }

// DeliveredBucket is the key-value bucket in which workers remember delivered message ids.
func (n Names) DeliveredBucket() string { return n.stream("DELIVERED") }

// Streams lists every stream name EnsureStreams creates, the KV bucket's backing stream
// (KV_<bucket>) included.
func (n Names) Streams() []string {
	return []string{n.GatewayStream(), n.NoticeStream(), n.PushStream(), n.GatewayStatusStream(), n.AuditStream(),
		n.DeadLetterStream(), n.BindingStream(), "KV_" + n.DeliveredBucket()}
}

// ValidChannel reports whether c is one of GatewayChannels.
func ValidChannel(c string) bool {
	for _, g := range GatewayChannels {
		if c == g {
			return true
		}
	}
	return false
}

// validToken checks that s can be used as one subject token (and as a message id): 1 to 128
// characters from [A-Za-z0-9_-]. Challenge and app-password ids are UUIDs or similar.
func validToken(what, s string) error {
	if len(s) == 0 || len(s) > 128 {
		return fmt.Errorf("notify: %s: want 1 to 128 characters, got %d", what, len(s))
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("notify: %s: character %q not in [A-Za-z0-9_-]", what, c)
		}
	}
	return nil
}

// validEvent checks an audit event name: dot-separated tokens of [a-z0-9_].
func validEvent(ev string) error {
	if len(ev) == 0 || len(ev) > 64 {
		return fmt.Errorf("notify: audit event name: want 1 to 64 characters, got %d", len(ev))
	}
	for _, tok := range strings.Split(ev, ".") {
		if tok == "" {
			return fmt.Errorf("notify: audit event name %q: empty token", ev)
		}
		for _, c := range tok {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
				return fmt.Errorf("notify: audit event name %q: character %q not in [a-z0-9_.]", ev, c)
			}
		}
	}
	return nil
}
