package notify

import (
	"encoding/json"
	"fmt"
	"time"
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

// GatewaySend asks notifyd to deliver a one-time code over a channel. It is the only payload
// carrying a secret (Code); see the package documentation for how it is contained.
type GatewaySend struct {
	V           int       `json:"v"`
	ChallengeID string    `json:"challenge_id"`
	Channel     string    `json:"channel"`
	UserID      string    `json:"user_id"`
	Destination string    `json:"destination"`
	Code        string    `json:"code"`
	ExpiresAt   time.Time `json:"expires_at"`
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

// Delivery states in GatewayStatus.State.
const (
	StatusDelivered = "delivered"
	StatusFailed    = "failed"
)

// GatewayStatus reports the outcome of a delivery: notifyd publishes StatusFailed when a
// message was dead-lettered (and StatusDelivered when configured to), authd reads it so
// that delivery failures become visible to the login.
type GatewayStatus struct {
	V           int       `json:"v"`
	ID          string    `json:"id"`
	Time        time.Time `json:"time"`
	ChallengeID string    `json:"challenge_id"`
	Channel     string    `json:"channel,omitempty"`
	Subject     string    `json:"subject"`
	State       string    `json:"state"`
	Attempts    int       `json:"attempts"`
	Error       string    `json:"error,omitempty"`
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

// DecodeGatewaySend parses a gateway send payload and checks its version, challenge id and
// channel.
func DecodeGatewaySend(data []byte) (GatewaySend, error) {
	var g GatewaySend
	if err := decode("gateway send", data, &g, &g.V); err != nil {
		return GatewaySend{}, err
	}
	if err := validToken("gateway send challenge_id", g.ChallengeID); err != nil {
		return GatewaySend{}, err
	}
	if !ValidChannel(g.Channel) {
		return GatewaySend{}, fmt.Errorf("notify: gateway send channel %q: want one of %v", g.Channel, GatewayChannels)
	}
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
	if err := json.Unmarshal(data, into); err != nil {
		// The JSON error may quote payload bytes; a gateway send carries a code, so only
		// the kind of failure is reported.
		return fmt.Errorf("notify: %s payload is not valid JSON for the schema (%d bytes)", what, len(data))
	}
	if *v < 0 || *v > SchemaVersion {
		return fmt.Errorf("notify: %s payload version %d: this build reads versions up to %d", what, *v, SchemaVersion)
	}
	return nil
}
