// Package pushdevice is a push-approval device in Go: it holds an ECDSA P-256 key,
// signs every DeviceService request as providers/push specifies (pushsig), and
// calls the service. `authctl device` and the tests use it; it is also the
// reference for device implementers.
//
// # Security properties
//
//   - The private key never leaves the device: only the public key is sent, and
//     the key file is written with mode 0600 (a phone keeps it in its keystore; a
//     browser as a non-extractable WebCrypto key).
//   - Each request has a fresh 16-byte nonce from crypto/rand and the current
//     time, so the server accepts it once and only within its window.
//   - The device shows the login's context and asks for the number; an approval
//     without the right number is a denial (number matching, NIST SP 800-63B-4
//     §3.1.3).
package pushdevice

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/push/pushsig"
)

// Device is an enrolled (or enrolling) device.
type Device struct {
	ID     string
	UserID string
	Key    *ecdsa.PrivateKey
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// New makes a device with a fresh key, not enrolled yet.
func New() (*Device, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return &Device{Key: k}, nil
}

func (d *Device) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// Auth signs a request: purpose and the request's own fields, in pushsig's order.
func (d *Device) Auth(purpose string, fields ...string) (*pb.DeviceAuth, error) {
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	a := &pb.DeviceAuth{DeviceId: d.ID, TimestampMs: d.now().UnixMilli(), Nonce: nonce}
	id := d.ID
	if purpose == pushsig.PurposeEnroll {
		id = ""
	}
	sig, err := pushsig.SignP1363(d.Key, pushsig.RequestMessage(purpose, id, a.TimestampMs, nonce, fields...))
	if err != nil {
		return nil, err
	}
	a.Signature = sig
	return a, nil
}

// EndpointFields are an endpoint's signed fields: kind, URL, p256dh, auth, token.
func EndpointFields(ep *pb.PushEndpoint) []string {
	switch k := ep.GetKind().(type) {
	case *pb.PushEndpoint_WebPush:
		return []string{"webpush", k.WebPush.GetEndpoint(), k.WebPush.GetP256Dh(), k.WebPush.GetAuth(), ""}
	case *pb.PushEndpoint_Ntfy:
		return []string{"ntfy", k.Ntfy.GetUrl(), "", "", k.Ntfy.GetToken()}
	}
	return []string{"poll", "", "", "", ""}
}

// Enroll finishes the enrollment of d with a token from BeginEnrollment(push).
func (d *Device) Enroll(ctx context.Context, c pb.DeviceServiceClient, token, name, platform string, ep *pb.PushEndpoint) error {
	if ep == nil {
		ep = &pb.PushEndpoint{Kind: &pb.PushEndpoint_Poll{Poll: &pb.PollOnly{}}}
	}
	pub, err := x509.MarshalPKIXPublicKey(&d.Key.PublicKey)
	if err != nil {
		return err
	}
	fields := append([]string{token, string(pub), name, platform}, EndpointFields(ep)...)
	auth, err := d.Auth(pushsig.PurposeEnroll, fields...)
	if err != nil {
		return err
	}
	resp, err := c.FinishDeviceEnrollment(ctx, &pb.FinishDeviceEnrollmentRequest{Auth: auth, Token: token,
		PublicKey: pub, Name: name, Platform: platform, Endpoint: ep})
	if err != nil {
		return err
	}
	d.ID, d.UserID = resp.GetDeviceId(), resp.GetUserId()
	return nil
}

// Pending lists the pushes waiting for the device's user.
func (d *Device) Pending(ctx context.Context, c pb.DeviceServiceClient) ([]*pb.PendingPush, error) {
	auth, err := d.Auth(pushsig.PurposeListPending)
	if err != nil {
		return nil, err
	}
	resp, err := c.ListPendingPushes(ctx, &pb.ListPendingPushesRequest{Auth: auth})
	return resp.GetPushes(), err
}

// Watch opens the stream of pushes for the device's user.
func (d *Device) Watch(ctx context.Context, c pb.DeviceServiceClient) (pb.DeviceService_WatchPushesClient, error) {
	auth, err := d.Auth(pushsig.PurposeWatch)
	if err != nil {
		return nil, err
	}
	return c.WatchPushes(ctx, &pb.WatchPushesRequest{Auth: auth})
}

// Context fetches what to show about one push.
func (d *Device) Context(ctx context.Context, c pb.DeviceServiceClient, challengeID string) (*pb.GetPushContextResponse, error) {
	auth, err := d.Auth(pushsig.PurposeGetContext, challengeID)
	if err != nil {
		return nil, err
	}
	return c.GetPushContext(ctx, &pb.GetPushContextRequest{Auth: auth, ChallengeId: challengeID})
}

// DecisionName is the signed name of a decision.
func DecisionName(dec pb.PushDecision) string {
	switch dec {
	case pb.PushDecision_PUSH_DECISION_APPROVE:
		return "approve"
	case pb.PushDecision_PUSH_DECISION_DENY:
		return "deny"
	case pb.PushDecision_PUSH_DECISION_NOT_ME:
		return "not_me"
	}
	return ""
}

// Respond answers a push.
func (d *Device) Respond(ctx context.Context, c pb.DeviceServiceClient, challengeID string, dec pb.PushDecision, number string) (*pb.RespondPushResponse, error) {
	auth, err := d.Auth(pushsig.PurposeRespond, challengeID, DecisionName(dec), number)
	if err != nil {
		return nil, err
	}
	return c.RespondPush(ctx, &pb.RespondPushRequest{Auth: auth, ChallengeId: challengeID, Decision: dec, Number: number})
}

// UpdateEndpoint replaces the device's delivery endpoint.
func (d *Device) UpdateEndpoint(ctx context.Context, c pb.DeviceServiceClient, ep *pb.PushEndpoint) error {
	auth, err := d.Auth(pushsig.PurposeSetEndpoint, EndpointFields(ep)...)
	if err != nil {
		return err
	}
	_, err = c.UpdatePushEndpoint(ctx, &pb.UpdatePushEndpointRequest{Auth: auth, Endpoint: ep})
	return err
}

// keyFile is a device's file: {"device_id","user_id","server","private_key"(PKCS #8 DER)}.
type keyFile struct {
	DeviceID   string `json:"device_id"`
	UserID     string `json:"user_id"`
	Server     string `json:"server,omitempty"`
	PrivateKey []byte `json:"private_key"`
}

// Save writes the device (with its private key) to path, mode 0600, refusing to
// overwrite another file.
func (d *Device) Save(path, server string) error {
	der, err := x509.MarshalPKCS8PrivateKey(d.Key)
	if err != nil {
		return err
	}
	raw, _ := json.MarshalIndent(keyFile{DeviceID: d.ID, UserID: d.UserID, Server: server, PrivateKey: der}, "", "  ")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("device file: %w", err)
	}
	if _, err := f.Write(append(raw, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Load reads a device file Save wrote; it also returns the server address saved.
func Load(path string) (*Device, string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("device file: %w", err)
	}
	var f keyFile
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, "", fmt.Errorf("device file %s: %w", path, err)
	}
	k, err := x509.ParsePKCS8PrivateKey(f.PrivateKey)
	if err != nil {
		return nil, "", fmt.Errorf("device file %s: private key: %w", path, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() || f.DeviceID == "" {
		return nil, "", errors.New("device file " + path + ": not an enrolled P-256 device")
	}
	return &Device{ID: f.DeviceID, UserID: f.UserID, Key: ek}, f.Server, nil
}
