package push_test

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/twofactor/twofactor/notify/egress"
	"github.com/twofactor/twofactor/providers/push"
	"github.com/twofactor/twofactor/storage"
)

// endpointHosts is the table of endpoint hosts: refused is whether notifyd's
// egress policy refuses the host without an allowance (an IP literal in a refused
// range, or localhost); internal whether the allowance below admits it.
var endpointHosts = []struct {
	url               string
	refused, internal bool
}{
	{"https://127.0.0.1/up", true, true},
	{"https://127.0.0.1:8443/up", true, true},
	{"https://10.0.0.5/up", true, true},
	{"https://192.168.1.1/up", true, false},
	{"https://169.254.169.254/latest/meta-data", true, false},
	{"https://100.64.0.1/up", true, false},
	{"https://0.0.0.0/up", true, false},
	{"https://[::1]/up", true, false},
	{"https://[fc00::1]/up", true, true},
	{"https://[fd12:3456::1]:8443/up", true, true},
	{"https://[fe80::1%25eth0]/up", true, false},
	{"https://[::ffff:127.0.0.1]/up", true, true},
	{"https://[::ffff:10.0.0.5]/up", true, true},
	{"https://[::ffff:169.254.169.254]/up", true, false},
	{"https://localhost/up", true, true},
	{"https://LOCALHOST./up", true, true},
	{"https://push.localhost/up", true, true},
	{"https://ntfy.example/up", false, true},
	{"https://push.example.com./up", false, true},
	{"https://localhost.example.com/up", false, true},
	{"https://8.8.8.8/up", false, true},
	{"https://[2606:4700:4700::1111]/up", false, true},
	{"https://[::ffff:8.8.8.8]/up", false, true},
}

// allowInternal is the allowance of the table: 10/8, fc00::/7 and loopback IPv4
// (which localhost resolves to), as push-allow-internal would give it.
func allowInternal(t *testing.T) egress.Allow {
	a, err := egress.ParseAllow("10.0.0.0/8,fc00::/7,127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func wantEndpointErr(t *testing.T, what, url string, err error, refuse bool) {
	t.Helper()
	switch {
	case !refuse && err != nil:
		t.Errorf("%s %s: %v, want accepted", what, url, err)
	case refuse && fieldOf(err) != "endpoint.url":
		t.Errorf("%s %s: %v, want refused on endpoint.url", what, url, err)
	case refuse && (!strings.Contains(err.Error(), "not a public address") || strings.Contains(err.Error(), "/up")):
		t.Errorf("%s %s: %v, want 'not a public address' naming the host, not the path", what, url, err)
	}
}

// An endpoint notifyd would never wake (its host an IP literal in a range egress
// refuses, or localhost) is refused at enrollment, unless AllowInternal admits it;
// host names are not resolved. A refused enrollment leaves the token unused.
func TestEnrollmentRefusesInternalEndpoint(t *testing.T) {
	for _, allow := range []bool{false, true} {
		cfg := push.Config{MaxDevices: 100, MaxPendingEnrollments: 100}
		if allow {
			cfg.AllowInternal = allowInternal(t)
		}
		e := newEnv(t, cfg)
		ctx := context.Background()
		for _, h := range endpointHosts {
			refuse := h.refused && !(allow && h.internal)
			for _, kind := range []string{storage.PushEndpointNtfy, storage.PushEndpointWebPush} {
				ep := push.Endpoint{Kind: kind, URL: h.url}
				if kind == storage.PushEndpointWebPush {
					ep.P256dh, ep.Auth = webPushKeys(t)
				}
				en, err := e.svc.BeginEnrollment(ctx, "alice", "")
				if err != nil {
					t.Fatal(err)
				}
				_, err = e.svc.FinishEnrollment(ctx, e.finishInput(newKey(t), en.Token, ep, false))
				wantEndpointErr(t, kind+" enrollment (allow "+map[bool]string{false: "none", true: "internal"}[allow]+")", h.url, err, refuse)
				if refuse { // the token was not used up: the same device enrolls with a public endpoint
					ep.URL = "https://ntfy.example/up"
					if _, err := e.svc.FinishEnrollment(ctx, e.finishInput(newKey(t), en.Token, ep, false)); err != nil {
						t.Errorf("%s: token after the refusal: %v", h.url, err)
					}
				}
			}
		}
	}
}

// UpdatePushEndpoint's SetEndpoint refuses the same endpoints, and a refused
// update leaves the device's old endpoint.
func TestSetEndpointRefusesInternalEndpoint(t *testing.T) {
	for _, allow := range []bool{false, true} {
		cfg := push.Config{}
		if allow {
			cfg.AllowInternal = allowInternal(t)
		}
		e := newEnv(t, cfg)
		ctx := context.Background()
		old := push.Endpoint{Kind: storage.PushEndpointNtfy, URL: "https://ntfy.example/old"}
		d := e.enrollWith("alice", old, false)
		for _, h := range endpointHosts {
			refuse := h.refused && !(allow && h.internal)
			rec, err := e.store.GetPushDevice(ctx, d.id)
			if err != nil {
				t.Fatal(err)
			}
			before, err := e.svc.OpenEndpoint(rec)
			if err != nil {
				t.Fatal(err)
			}
			ep := push.Endpoint{Kind: storage.PushEndpointNtfy, URL: h.url}
			err = e.svc.SetEndpoint(ctx, rec, ep)
			wantEndpointErr(t, "set endpoint", h.url, err, refuse)
			if rec, err = e.store.GetPushDevice(ctx, d.id); err != nil {
				t.Fatal(err)
			}
			got, err := e.svc.OpenEndpoint(rec)
			if err != nil {
				t.Fatal(err)
			}
			if want := map[bool]push.Endpoint{true: before, false: ep}[refuse]; got != want {
				t.Errorf("%s: endpoint now %+v, want %+v", h.url, got, want)
			}
		}
	}
}

// webPushKeys is a subscription's p256dh and auth (base64url).
func webPushKeys(t *testing.T) (p256dh, auth string) {
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(priv.PublicKey().Bytes()), base64.RawURLEncoding.EncodeToString(make([]byte, 16))
}
