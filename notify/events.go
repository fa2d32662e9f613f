package notify

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// SchemaVersion is the version written in the "v" field of every payload. Decoders accept
// this version and 0 (absent); a later version is refused so that an old consumer never
// misreads a payload whose meaning changed. Adding optional fields does not bump it.
const SchemaVersion = 1

// Audit event names (the <event> in <p>.audit.<event>).
const (
	EventFactorEnrolled           = "factor.enrolled"
	EventFactorRemoved            = "factor.removed"
	EventChallengeBegun           = "challenge.begun"
	EventChallengeAccepted        = "challenge.accepted"
	EventChallengeRejected        = "challenge.rejected"
	EventChallengeExpired         = "challenge.expired"
	EventLockout                  = "lockout"
	EventBackupCodesIssued        = "backupcodes.issued"
	EventBackupCodeUsed           = "backupcode.used"
	EventBackupCodesRunningLow    = "backupcodes.running_low"
	EventAdminCodeIssued          = "admincode.issued"
	EventAdminCodeUsed            = "admincode.used"
	EventAppPasswordIssued        = "apppassword.issued"
	EventAppPasswordRevoked       = "apppassword.revoked"
	EventAdminReset               = "admin.reset"
	EventPolicyChanged            = "policy.changed"
	EventWebAuthnCounterRegressed = "webauthn.counter_regressed"
	EventAdminCodeExpired         = "admincode.expired"
	EventAppPasswordRejected      = "apppassword.rejected"
	EventUserDeleted              = "user.deleted"
	EventUserGroupsSet            = "user.groups_set"
	EventGroupAdminsSet           = "group.admins_set"
	EventThrottled                = "throttled"
	EventThrottleCleared          = "throttle.cleared"
	// Remembered devices: remembered (a token issued), used (a token accepted and
	// rotated, or accepted again within the grace), rejected (a token not
	// accepted), theft_detected (a rotated-away token replayed: series revoked),
	// revoked (by the user, an admin, the per-user cap or a credentials change).
	EventDeviceRemembered    = "device.remembered"
	EventDeviceUsed          = "device.used"
	EventDeviceRejected      = "device.rejected"
	EventDeviceTheftDetected = "device.theft_detected"
	EventDeviceRevoked       = "device.revoked"
)

// AuditEvents lists every event name above.
var AuditEvents = []string{
	EventFactorEnrolled, EventFactorRemoved, EventChallengeBegun, EventChallengeAccepted,
	EventChallengeRejected, EventChallengeExpired, EventLockout, EventBackupCodesIssued,
	EventBackupCodeUsed, EventBackupCodesRunningLow, EventAdminCodeIssued, EventAdminCodeUsed,
	EventAppPasswordIssued, EventAppPasswordRevoked, EventAdminReset, EventPolicyChanged,
	EventWebAuthnCounterRegressed, EventAdminCodeExpired, EventAppPasswordRejected, EventUserDeleted,
	EventUserGroupsSet, EventGroupAdminsSet, EventThrottled, EventThrottleCleared,
	EventDeviceRemembered, EventDeviceUsed, EventDeviceRejected, EventDeviceTheftDetected, EventDeviceRevoked,
}

// AuditEvent is one security-relevant event (see the package documentation for the field
// table). It never carries a secret: no codes, passwords, seeds or keys.
type AuditEvent struct {
	V         int               `json:"v"`
	ID        string            `json:"id"`
	Time      time.Time         `json:"time"`
	Event     string            `json:"event"`
	UserID    string            `json:"user_id,omitempty"`
	Actor     string            `json:"actor,omitempty"`
	Caller    string            `json:"caller,omitempty"`
	Method    string            `json:"method,omitempty"`
	Result    string            `json:"result,omitempty"`
	ClientIP  string            `json:"client_ip,omitempty"`
	UserAgent string            `json:"user_agent,omitempty"`
	RequestID string            `json:"request_id,omitempty"`
	Details   map[string]string `json:"details,omitempty"`
}

// GatewaySendVersion is the version of GatewaySend payloads. Version 3 names the
// message's kind (a code or a notice) in clear and binds it into the sealed part's
// associated data; version 2 (no kind: a code, or a notice when the code is empty) is
// still decoded and opened, never written; version 1 carried destination and code in
// clear and is still decoded, never written (notifyd refuses it).
const GatewaySendVersion = 3

// Kinds of gateway sends (GatewaySend.Kind).
const (
	// KindCode is a one-time code of a challenge or an enrollment, published on
	// <p>.gateway.send.<channel>; its delivery status is recorded on the challenge.
	KindCode = "code"
	// KindNotice is a message without a code (a destination was changed, a push
	// was refused as "not me"), published on <p>.gateway.notice.<channel> with its
	// own, longer expiry; its status never counts as a challenge's delivery.
	KindNotice = "notice"
)

// Bounds of a GatewaySend's fields, checked when it is sealed and when it is opened.
const (
	MaxDestinationLen = 512     // e-mail address, E.164 number, chat id, webhook target
	MaxCodeLen        = 32      // the one-time code (6 to 10 digits in practice)
	MaxSubjectLen     = 512     // e-mail subject
	MaxTextLen        = 8 << 10 // rendered message body
	MaxLocaleLen      = 35      // BCP 47 tag
	MaxUserIDLen      = 256

	maxSealed = 64 << 10 // the sealed JSON of the fields above, escaping included
)

// GatewaySend asks notifyd to deliver a one-time code (Kind KindCode) or a notice
// without one (Kind KindNotice: Code empty, Text set) over a channel. Destination,
// Code, Subject, Text and Locale are its secret part: PublishGatewaySend seals them
// under the DeliveryKey, and DeliveryKey.OpenGatewaySend restores them on the worker's
// side. It is never marshalled as is (it has no JSON form of its own).
//
// ChallengeID is the id the message is published under (its JetStream message id, and
// the challenge_id of its GatewayStatus events): the challenge id for a first send, a
// distinct id for a resend of the same code (otpcode.Send.MessageID(): "<id>_<seq>"), so
// that neither JetStream's de-duplication nor the workers' delivered ids drop it; a
// notice's own id for a notice.
type GatewaySend struct {
	V           int
	Kind        string // KindCode ("" when sealing) or KindNotice
	ChallengeID string
	Channel     string
	UserID      string
	ExpiresAt   time.Time

	// The secret part.
	Destination string // address, E.164 number or chat id
	Code        string // the one-time code ("" in a notice)
	Subject     string // e-mail subject, rendered by authd (optional)
	Text        string // message body, rendered by authd from its templates (required for a notice)
	Locale      string // the user's locale, if the backend gave one (optional)

	// KeyID and Sealed are set by DecodeGatewaySend on a version-2 or 3 payload; the
	// secret part is empty until DeliveryKey.OpenGatewaySend.
	KeyID  string
	Sealed []byte
}

// gatewaySendWire is the JSON form of a GatewaySend.
type gatewaySendWire struct {
	V           int       `json:"v"`
	Kind        string    `json:"kind,omitempty"` // version 3
	ChallengeID string    `json:"challenge_id"`
	Channel     string    `json:"channel"`
	UserID      string    `json:"user_id,omitempty"`
	ExpiresAt   time.Time `json:"expires_at"`
	KeyID       string    `json:"key_id,omitempty"`
	Sealed      []byte    `json:"sealed,omitempty"`
	// Version 1 only: read, never written.
	Destination string `json:"destination,omitempty"`
	Code        string `json:"code,omitempty"`
}

// gatewaySecret is the sealed part of a GatewaySend.
type gatewaySecret struct {
	Destination string `json:"d"`
	Code        string `json:"c"`
	Subject     string `json:"s,omitempty"`
	Text        string `json:"t,omitempty"`
	Locale      string `json:"l,omitempty"`
}

// PushRequest asks notifyd to send a push login request to an enrolled device.
type PushRequest struct {
	V           int       `json:"v"`
	ChallengeID string    `json:"challenge_id"`
	UserID      string    `json:"user_id"`
	DeviceID    string    `json:"device_id"`
	Number      int       `json:"number"`
	ExpiresAt   time.Time `json:"expires_at"`
	Endpoint    string    `json:"endpoint,omitempty"`
	Client      string    `json:"client,omitempty"`
	ClientIP    string    `json:"client_ip,omitempty"`
	UserAgent   string    `json:"user_agent,omitempty"`
}

// Delivery states in GatewayStatus.State. authd records StatusQueued on the challenge
// when PublishGatewaySend returns; notifyd publishes StatusDelivered (once the provider
// accepted the message) or StatusFailed.
const (
	StatusQueued    = "queued"
	StatusDelivered = "delivered"
	StatusFailed    = "failed"
)

// Reasons in GatewayStatus.Reason for a StatusFailed.
const (
	ReasonExpired         = "expired"          // the code expired before it could be sent
	ReasonMaxDeliveries   = "max_deliveries"   // every attempt failed
	ReasonRejected        = "rejected"         // the provider refused it (bad number, 4xx)
	ReasonUndecodable     = "undecodable"      // the payload did not decode or open
	ReasonCaptchaRequired = "captcha_required" // Signal asks the operator to solve a captcha
	ReasonNotConfigured   = "not_configured"   // no provider configured for the channel
	ReasonProviderAuth    = "provider_auth"    // the provider refused our credentials (401/403)
)

// GatewayStatus reports the outcome of a delivery: notifyd publishes StatusFailed when a
// message was dead-lettered or expired (and StatusDelivered when configured to), authd
// reads it (SubscribeGatewayStatus) so that delivery failures become visible to the
// login. It never carries the code or the destination.
type GatewayStatus struct {
	V           int       `json:"v"`
	ID          string    `json:"id"`
	Time        time.Time `json:"time"`
	ChallengeID string    `json:"challenge_id"`
	Channel     string    `json:"channel,omitempty"`
	Subject     string    `json:"subject"`
	State       string    `json:"state"`
	Reason      string    `json:"reason,omitempty"`
	Attempts    int       `json:"attempts"`
	Error       string    `json:"error,omitempty"`
	// Kind is KindNotice for a notice's outcome ("" for a code): authd records no
	// notice on a challenge.
	Kind string `json:"kind,omitempty"`
}

// DecodeAuditEvent parses an audit payload and checks its version and event name.
func DecodeAuditEvent(data []byte) (AuditEvent, error) {
	var e AuditEvent
	if err := decode("audit event", data, &e, &e.V); err != nil {
		return AuditEvent{}, err
	}
	if err := validEvent(e.Event); err != nil {
		return AuditEvent{}, err
	}
	return e, nil
}

// DecodeGatewaySend parses a gateway send payload and checks its version, kind,
// challenge id, channel and bounds. A version-2 or 3 payload comes back with KeyID and
// Sealed set and the secret part empty (see DeliveryKey.OpenGatewaySend); a version-1
// payload with its clear destination and code. Kind is set for version 3 and
// KindCode for older payloads (OpenGatewaySend tells a version-2 notice by its empty
// code).
func DecodeGatewaySend(data []byte) (GatewaySend, error) {
	var w gatewaySendWire
	if err := decodeMax("gateway send", data, &w, &w.V, GatewaySendVersion); err != nil {
		return GatewaySend{}, err
	}
	g := GatewaySend{V: w.V, Kind: w.Kind, ChallengeID: w.ChallengeID, Channel: w.Channel, UserID: w.UserID,
		ExpiresAt: w.ExpiresAt, KeyID: w.KeyID, Sealed: w.Sealed}
	if err := g.checkHeader(); err != nil {
		return GatewaySend{}, err
	}
	if w.V >= 2 {
		if w.Destination != "" || w.Code != "" {
			return GatewaySend{}, errors.New("notify: gateway send: a sealed payload carries no clear destination or code")
		}
		if len(w.Sealed) == 0 || len(w.Sealed) > maxSealed || w.KeyID == "" {
			return GatewaySend{}, fmt.Errorf("notify: gateway send sealed: want key_id and 1 to %d bytes", maxSealed)
		}
		return g, nil
	}
	g.Destination, g.Code = w.Destination, w.Code
	if err := g.secret().check(); err != nil {
		return GatewaySend{}, err
	}
	return g, nil
}

// checkHeader checks the clear part of a decoded payload; it sets Kind for the
// versions without one.
func (g *GatewaySend) checkHeader() error {
	switch {
	case g.V >= 3 && g.Kind != KindCode && g.Kind != KindNotice:
		return fmt.Errorf("notify: gateway send kind %q: want %s or %s", g.Kind, KindCode, KindNotice)
	case g.V < 3 && g.Kind != "":
		return fmt.Errorf("notify: gateway send: a version-%d payload has no kind", g.V)
	case g.V < 3:
		g.Kind = KindCode
	}
	if err := validToken("gateway send challenge_id", g.ChallengeID); err != nil {
		return err
	}
	if !ValidChannel(g.Channel) {
		return fmt.Errorf("notify: gateway send channel %q: want one of %v", g.Channel, GatewayChannels)
	}
	if len(g.UserID) > MaxUserIDLen {
		return fmt.Errorf("notify: gateway send user_id: longer than %d bytes", MaxUserIDLen)
	}
	return nil
}

func (g GatewaySend) secret() gatewaySecret {
	return gatewaySecret{Destination: g.Destination, Code: g.Code, Subject: g.Subject, Text: g.Text, Locale: g.Locale}
}

func (s gatewaySecret) check() error {
	for _, f := range []struct {
		name string
		v    string
		max  int
	}{{"destination", s.Destination, MaxDestinationLen}, {"code", s.Code, MaxCodeLen},
		{"subject", s.Subject, MaxSubjectLen}, {"text", s.Text, MaxTextLen}, {"locale", s.Locale, MaxLocaleLen}} {
		if len(f.v) > f.max {
			return fmt.Errorf("notify: gateway send %s: longer than %d bytes", f.name, f.max)
		}
		if !utf8.ValidString(f.v) {
			return fmt.Errorf("notify: gateway send %s: not valid UTF-8", f.name)
		}
	}
	return nil
}

// checkKind checks that the secret part fits kind: a code has one, a notice has none
// and has a text; both have a destination.
func (s gatewaySecret) checkKind(kind string) error {
	switch {
	case s.Destination == "":
		return errors.New("notify: gateway send: destination is required")
	case kind == KindCode && s.Code == "":
		return errors.New("notify: gateway send: a code send needs its code")
	case kind == KindNotice && (s.Code != "" || s.Text == ""):
		return errors.New("notify: gateway send: a notice has a text and no code")
	case kind != KindCode && kind != KindNotice:
		return fmt.Errorf("notify: gateway send kind %q: want %s or %s", kind, KindCode, KindNotice)
	}
	return s.check()
}

// gatewayAAD binds a sealed secret part to its kind (version 3), channel, challenge,
// user and expiry, so a blob copied into another message, or a notice relabelled as a
// code, does not open.
func gatewayAAD(g GatewaySend) []byte {
	head := "twofactor/gateway-send/v2\x00"
	if g.V >= 3 {
		head = "twofactor/gateway-send/v3\x00" + g.Kind + "\x00"
	}
	return []byte(head + g.Channel + "\x00" + g.ChallengeID + "\x00" + g.UserID +
		"\x00" + strconv.FormatInt(g.ExpiresAt.UnixNano(), 10))
}

// SealGatewaySend returns the version-3 payload of g: its secret part sealed under k.
// Kind "" is KindCode.
func (k *DeliveryKey) SealGatewaySend(g GatewaySend) ([]byte, error) {
	g.V = GatewaySendVersion
	if g.Kind == "" {
		g.Kind = KindCode
	}
	if err := g.checkHeader(); err != nil {
		return nil, err
	}
	sec := g.secret()
	if err := sec.checkKind(g.Kind); err != nil {
		return nil, err
	}
	g.ExpiresAt = g.ExpiresAt.UTC()
	pt, _ := json.Marshal(sec)
	keyID, sealed, err := k.Seal(pt, gatewayAAD(g))
	if err != nil {
		return nil, err
	}
	return json.Marshal(gatewaySendWire{V: g.V, Kind: g.Kind, ChallengeID: g.ChallengeID, Channel: g.Channel,
		UserID: g.UserID, ExpiresAt: g.ExpiresAt, KeyID: keyID, Sealed: sealed})
}

// OpenGatewaySend restores the secret part of a decoded version-2 or 3 GatewaySend
// and checks it against its kind (a version-2 payload without a code is a notice). A
// version-1 payload (clear, from an older authd) is returned as it is.
func (k *DeliveryKey) OpenGatewaySend(g GatewaySend) (GatewaySend, error) {
	if g.V < 2 {
		return g, nil
	}
	pt, err := k.Open(g.KeyID, g.Sealed, gatewayAAD(g))
	if err != nil {
		return GatewaySend{}, err
	}
	var sec gatewaySecret
	if json.Unmarshal(pt, &sec) != nil {
		return GatewaySend{}, ErrUnsealPayload
	}
	if g.V == 2 && sec.Code == "" {
		g.Kind = KindNotice
	}
	if err := sec.checkKind(g.Kind); err != nil {
		return GatewaySend{}, err
	}
	g.Destination, g.Code, g.Subject, g.Text, g.Locale = sec.Destination, sec.Code, sec.Subject, sec.Text, sec.Locale
	return g, nil
}

// DecodePushRequest parses a push request payload and checks its version and challenge id.
func DecodePushRequest(data []byte) (PushRequest, error) {
	var p PushRequest
	if err := decode("push request", data, &p, &p.V); err != nil {
		return PushRequest{}, err
	}
	if err := validToken("push request challenge_id", p.ChallengeID); err != nil {
		return PushRequest{}, err
	}
	return p, nil
}

// DecodeGatewayStatus parses a gateway status payload and checks its version.
func DecodeGatewayStatus(data []byte) (GatewayStatus, error) {
	var s GatewayStatus
	if err := decode("gateway status", data, &s, &s.V); err != nil {
		return GatewayStatus{}, err
	}
	return s, nil
}

func decode(what string, data []byte, into any, v *int) error {
	return decodeMax(what, data, into, v, SchemaVersion)
}

func decodeMax(what string, data []byte, into any, v *int, max int) error {
	if err := json.Unmarshal(data, into); err != nil {
		// The JSON error may quote payload bytes; a gateway send carries a code, so only
		// the kind of failure is reported.
		return fmt.Errorf("notify: %s payload is not valid JSON for the schema (%d bytes)", what, len(data))
	}
	if *v < 0 || *v > max {
		return fmt.Errorf("notify: %s payload version %d: this build reads versions up to %d", what, *v, max)
	}
	return nil
}
