package push

import (
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/twofactor/twofactor/providers/push/pushsig"
	"github.com/twofactor/twofactor/storage"
)

// Endpoint is where notifyd sends a device's opaque wake-up.
type Endpoint struct {
	// Kind is storage.PushEndpointWebPush, PushEndpointNtfy or PushEndpointPoll.
	Kind string `json:"kind"`
	// URL is the Web Push subscription's endpoint or the ntfy / UnifiedPush topic URL.
	URL string `json:"url,omitempty"`
	// P256dh and Auth are the Web Push subscription's keys (base64url, RFC 8291 §3).
	P256dh string `json:"p256dh,omitempty"`
	Auth   string `json:"auth,omitempty"`
	// Token is an ntfy access token (optional).
	Token string `json:"token,omitempty"`
}

// Fields is the endpoint's part of a signed enrollment: kind, URL, p256dh, auth, token.
func (e Endpoint) Fields() []string { return []string{e.Kind, e.URL, e.P256dh, e.Auth, e.Token} }

func (s *Service) validEndpoint(e Endpoint) error {
	switch e.Kind {
	case storage.PushEndpointPoll:
		if e.URL != "" || e.P256dh != "" || e.Auth != "" || e.Token != "" {
			return inputErr("endpoint", "poll takes no URL or keys")
		}
		return nil
	case storage.PushEndpointWebPush:
		if err := validKeys(e.P256dh, e.Auth); err != nil {
			return err
		}
		if e.Token != "" {
			return inputErr("endpoint.token", "only for ntfy")
		}
	case storage.PushEndpointNtfy:
		if e.P256dh != "" || e.Auth != "" {
			return inputErr("endpoint", "ntfy takes no Web Push keys")
		}
		if len(e.Token) > 256 || strings.ContainsAny(e.Token, "\r\n") {
			return inputErr("endpoint.token", "at most 256 characters on one line")
		}
	default:
		return inputErr("endpoint.kind", "want webpush, ntfy or poll")
	}
	return s.validURL(e.URL)
}

func (s *Service) validURL(raw string) error {
	if raw == "" || len(raw) > 1024 {
		return inputErr("endpoint.url", "want 1 to 1024 characters")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" {
		return inputErr("endpoint.url", "not an absolute URL without credentials")
	}
	host := strings.ToLower(u.Hostname())
	switch {
	case u.Scheme == "http" && (s.cfg.AllowHTTP || hostIn(host, s.cfg.HTTPEndpointHosts)):
	case u.Scheme != "https":
		return inputErr("endpoint.url", "must be https (plain http only to the hosts of push-http-endpoint-hosts)")
	case len(s.cfg.EndpointHosts) != 0 && !hostIn(host, s.cfg.EndpointHosts):
		return inputErr("endpoint.url", "host %q is not an allowed push service", host)
	}
	return s.publicHost(host)
}

// publicHost refuses an endpoint notifyd would never wake: its host an IP literal
// in a range notify/egress refuses (loopback, RFC 1918, link-local and cloud
// metadata, ULA, CGNAT, IPv4-mapped forms, …) or localhost, unless
// Config.AllowInternal allows it (egress.Dialer.CheckHost, the very policy of
// notifyd's dial). Any other host name is not resolved here: its DNS may change
// after enrollment, and notifyd checks the addresses it resolves to at each dial.
// The reason names the host, never the URL's path (an ntfy topic is a capability).
func (s *Service) publicHost(host string) error {
	if err := s.egress.CheckHost(host); err != nil {
		return inputErr("endpoint.url", "host %q is not a public address, notifyd would never wake this endpoint (allow it with push-allow-internal)", host)
	}
	return nil
}

// hostIn tells whether host is one of hosts or under one of its ".suffix" domains.
func hostIn(host string, hosts []string) bool {
	for _, h := range hosts {
		h = strings.ToLower(h)
		if host == h || (strings.HasPrefix(h, ".") && strings.HasSuffix(host, h)) {
			return true
		}
	}
	return false
}

func validKeys(p256dh, auth string) error {
	k, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(p256dh, "="))
	if err != nil {
		return inputErr("endpoint.p256dh", "not base64url")
	}
	if _, err := ecdh.P256().NewPublicKey(k); err != nil {
		return inputErr("endpoint.p256dh", "not an uncompressed P-256 point")
	}
	a, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(auth, "="))
	if err != nil || len(a) != 16 {
		return inputErr("endpoint.auth", "want 16 bytes in base64url")
	}
	return nil
}

// sealEndpoint seals e for device d (nil for poll).
func (s *Service) sealEndpoint(d *storage.PushDevice, e Endpoint) error {
	d.EndpointKind = e.Kind
	d.SealedEndpoint, d.EndpointKeyID = nil, ""
	if e.Kind == storage.PushEndpointPoll {
		return nil
	}
	raw, err := json.Marshal(e)
	if err != nil {
		return err
	}
	d.EndpointKeyID, d.SealedEndpoint, err = s.ring.Seal(raw, d.AAD())
	return err
}

// OpenEndpoint returns a device's endpoint in clear (for notifyd's delivery).
func (s *Service) OpenEndpoint(d *storage.PushDevice) (Endpoint, error) {
	if d.EndpointKind == storage.PushEndpointPoll || len(d.SealedEndpoint) == 0 {
		return Endpoint{Kind: storage.PushEndpointPoll}, nil
	}
	raw, err := s.ring.Open(d.EndpointKeyID, d.SealedEndpoint, d.AAD())
	if err != nil {
		return Endpoint{}, err
	}
	var e Endpoint
	if err := json.Unmarshal(raw, &e); err != nil {
		return Endpoint{}, err
	}
	return e, nil
}

// Request is a signed device request.
type Request struct {
	DeviceID string
	// TimestampMillis is the device's clock, Unix milliseconds.
	TimestampMillis int64
	Nonce           []byte
	Signature       []byte
}

// Authenticate checks a device request: purpose and fields are what the device
// signed after its id, timestamp and nonce (RequestMessage). The device must be
// active, the timestamp within Window of now, the signature valid, and the nonce
// new: it is remembered in the shared store (one atomic insert) until the
// timestamp leaves the window, so a request is accepted once on all replicas.
// Any failure is ErrUnauthenticated.
func (s *Service) Authenticate(ctx context.Context, r Request, purpose string, fields ...string) (*storage.PushDevice, error) {
	if r.DeviceID == "" || len(r.DeviceID) > 36 || len(r.Nonce) < minNonceLen || len(r.Nonce) > maxNonceLen ||
		len(r.Signature) == 0 || len(r.Signature) > maxSigLen {
		return nil, ErrUnauthenticated
	}
	now := s.now()
	ts := time.UnixMilli(r.TimestampMillis)
	if ts.Before(now.Add(-s.cfg.Window)) || ts.After(now.Add(s.cfg.Window)) {
		return nil, ErrUnauthenticated
	}
	d, err := s.store.GetActivePushDevice(ctx, r.DeviceID)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, ErrUnauthenticated
		}
		return nil, err
	}
	pub, err := devicePublicKey(d)
	if err != nil {
		return nil, ErrUnauthenticated
	}
	msg := RequestMessage(purpose, r.DeviceID, r.TimestampMillis, r.Nonce, fields...)
	if !pushsig.VerifySignature(pub, msg, r.Signature) {
		return nil, ErrUnauthenticated
	}
	fresh, err := s.store.RememberPushNonce(ctx, d.ID, r.Nonce, ts.Add(s.cfg.Window+time.Second))
	if err != nil {
		return nil, err
	}
	if !fresh {
		return nil, ErrUnauthenticated
	}
	return d, nil
}

func devicePublicKey(d *storage.PushDevice) (*ecdsa.PublicKey, error) {
	pub, _, err := pushsig.ParsePublicKey(d.PublicKey)
	return pub, err
}

// Devices lists a user's active devices.
func (s *Service) Devices(ctx context.Context, userID string) ([]storage.PushDevice, error) {
	return s.store.ListPushDevices(ctx, userID, true)
}

// Revoke revokes a user's device: its requests fail from now on and it gets no
// more pushes. ErrNotFound when the user has no such active device.
func (s *Service) Revoke(ctx context.Context, userID, deviceID string) error {
	if err := s.store.RevokePushDevice(ctx, userID, deviceID, s.now()); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return ErrNotFound
		}
		return err
	}
	return nil
}

// RetireEndpoint turns device d to polling after its push service answered 404
// or 410 for the endpoint d holds (RFC 8030 §7.3): the device keeps working by
// polling. It reports whether it changed the device.
func (s *Service) RetireEndpoint(ctx context.Context, d *storage.PushDevice) (bool, error) {
	if len(d.SealedEndpoint) == 0 {
		return false, nil
	}
	return s.store.RetirePushEndpoint(ctx, d.ID, d.SealedEndpoint, s.now())
}

// SetEndpoint replaces the endpoint of an authenticated device (a browser renews
// its subscription, a phone moves to another distributor).
func (s *Service) SetEndpoint(ctx context.Context, d *storage.PushDevice, e Endpoint) error {
	if err := s.validEndpoint(e); err != nil {
		return err
	}
	nd := *d
	if err := s.sealEndpoint(&nd, e); err != nil {
		return err
	}
	return s.store.SetPushEndpoint(ctx, d.ID, nd.EndpointKind, nd.EndpointKeyID, nd.SealedEndpoint)
}

// Wake is the opaque push a device receives: which challenge to fetch, for which
// of the user's devices. It carries nothing of the login.
type Wake struct {
	V           int    `json:"v"`
	ChallengeID string `json:"challenge_id"`
	DeviceID    string `json:"device_id"`
}

// WakePayload is the JSON of a Wake (version 1).
func WakePayload(challengeID, deviceID string) []byte {
	b, _ := json.Marshal(Wake{V: 1, ChallengeID: challengeID, DeviceID: deviceID})
	return b
}

// Usable tells whether a device is still active (not revoked, its factor not removed).
func (s *Service) Usable(ctx context.Context, deviceID string) (bool, error) {
	_, err := s.store.GetActivePushDevice(ctx, deviceID)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}
