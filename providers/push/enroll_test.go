package push_test

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twofactor/twofactor/providers/push"
	"github.com/twofactor/twofactor/storage"
)

func TestEnrollmentTokenOnceAndShortLived(t *testing.T) {
	e := newEnv(t, push.Config{})
	ctx := context.Background()
	en, err := e.svc.BeginEnrollment(ctx, "alice", "https://auth.example:8443")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(en.QRPNG, []byte("\x89PNG")) || !en.ExpiresAt.Equal(e.clock.Now().Add(5*time.Minute)) {
		t.Fatalf("enrollment = %+v", en)
	}
	u, err := url.Parse(en.URI)
	if err != nil || u.Scheme != "twofactor-push" || u.Query().Get("token") != en.Token || u.Query().Get("server") != "https://auth.example:8443" {
		t.Fatalf("uri %q", en.URI)
	}
	poll := push.Endpoint{Kind: storage.PushEndpointPoll}
	// Two devices race with one token: exactly one is enrolled.
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, refused := 0, 0
	for range 6 {
		in := e.finishInput(newKey(t), en.Token, poll, false)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.svc.FinishEnrollment(ctx, in)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, push.ErrEnrollment):
				refused++
			default:
				t.Errorf("finish: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok != 1 || refused != 5 {
		t.Fatalf("%d enrolled, %d refused: want exactly one", ok, refused)
	}
	// Expired.
	en2, _ := e.svc.BeginEnrollment(ctx, "alice", "")
	e.clock.Advance(5 * time.Minute)
	if _, err := e.svc.FinishEnrollment(ctx, e.finishInput(newKey(t), en2.Token, poll, false)); !errors.Is(err, push.ErrEnrollment) {
		t.Fatalf("expired token: %v", err)
	}
	// Unknown.
	if _, err := e.svc.FinishEnrollment(ctx, e.finishInput(newKey(t), "A"+en2.Token[1:], poll, false)); !errors.Is(err, push.ErrEnrollment) {
		t.Fatalf("unknown token: %v", err)
	}
	if devs, _ := e.svc.Devices(ctx, "alice"); len(devs) != 1 {
		t.Fatalf("%d devices", len(devs))
	}
}

func TestEnrollmentProofOfPossession(t *testing.T) {
	e := newEnv(t, push.Config{})
	ctx := context.Background()
	en, _ := e.svc.BeginEnrollment(ctx, "alice", "")
	poll := push.Endpoint{Kind: storage.PushEndpointPoll}
	// The request names one key but is signed by another.
	in := e.finishInput(newKey(t), en.Token, poll, false)
	other := newKey(t)
	der, _ := x509.MarshalPKIXPublicKey(&other.PublicKey)
	in.PublicKey = der
	if _, err := e.svc.FinishEnrollment(ctx, in); !errors.Is(err, push.ErrUnauthenticated) {
		t.Fatalf("key not held: %v", err)
	}
	// A signed name changed in transit.
	in = e.finishInput(newKey(t), en.Token, poll, true)
	in.Name = "Attacker's phone"
	if _, err := e.svc.FinishEnrollment(ctx, in); !errors.Is(err, push.ErrUnauthenticated) {
		t.Fatalf("altered name: %v", err)
	}
	// A stale timestamp.
	in = e.finishInput(newKey(t), en.Token, poll, false)
	e.clock.Advance(61 * time.Second)
	if _, err := e.svc.FinishEnrollment(ctx, in); !errors.Is(err, push.ErrUnauthenticated) {
		t.Fatalf("stale timestamp: %v", err)
	}
	// The failed attempts did not use the token up; a raw-point key (WebCrypto "raw") enrolls.
	key := newKey(t)
	in = e.finishInput(key, en.Token, poll, true)
	raw, _ := key.PublicKey.Bytes()
	in.PublicKey = raw
	in.Signature = sign(t, key, push.EnrollMessage(in), true)
	d, err := e.svc.FinishEnrollment(ctx, in)
	if err != nil {
		t.Fatalf("raw point key: %v", err)
	}
	if _, err := x509.ParsePKIXPublicKey(d.PublicKey); err != nil {
		t.Fatalf("stored key is not PKIX: %v", err)
	}
}

func TestEnrollmentInputErrors(t *testing.T) {
	e := newEnv(t, push.Config{EndpointHosts: []string{".push.example", "ntfy.example"}, MaxDevices: 1})
	ctx := context.Background()
	if _, err := e.svc.BeginEnrollment(ctx, "", ""); fieldOf(err) != "user_id" {
		t.Fatalf("empty user: %v", err)
	}
	en, _ := e.svc.BeginEnrollment(ctx, "alice", "")
	priv, _ := ecdh.P256().GenerateKey(rand.Reader)
	p256dh := base64.RawURLEncoding.EncodeToString(priv.PublicKey().Bytes())
	auth := base64.RawURLEncoding.EncodeToString(make([]byte, 16))
	wp := func(u string) push.Endpoint {
		return push.Endpoint{Kind: storage.PushEndpointWebPush, URL: u, P256dh: p256dh, Auth: auth}
	}
	cases := []struct {
		field string
		edit  func(*push.FinishInput)
	}{
		{"name", func(in *push.FinishInput) { in.Name = "" }},
		{"name", func(in *push.FinishInput) { in.Name = strings.Repeat("x", 65) }},
		{"name", func(in *push.FinishInput) { in.Name = "a\nb" }},
		{"name", func(in *push.FinishInput) { in.Name = "a\u009bb" }}, // C1 (CSI): a terminal escape in logs and audit
		{"platform", func(in *push.FinishInput) { in.Platform = strings.Repeat("p", 33) }},
		{"public_key", func(in *push.FinishInput) { in.PublicKey = []byte("not a key") }},
		{"nonce", func(in *push.FinishInput) { in.Nonce = in.Nonce[:4] }},
		{"signature", func(in *push.FinishInput) { in.Signature = make([]byte, 81) }},
		{"token", func(in *push.FinishInput) { in.Token = strings.Repeat("t", 65) }},
		{"endpoint.kind", func(in *push.FinishInput) { in.Endpoint = push.Endpoint{Kind: "fcm"} }},
		{"endpoint.url", func(in *push.FinishInput) { in.Endpoint = wp("http://a.push.example/x") }},
		{"endpoint.url", func(in *push.FinishInput) { in.Endpoint = wp("https://evil.example/x") }},
		{"endpoint.url", func(in *push.FinishInput) { in.Endpoint = wp("https://user:pw@a.push.example/x") }},
		{"endpoint.url", func(in *push.FinishInput) { in.Endpoint = wp("https://a.push.example/" + strings.Repeat("x", 1024)) }},
		{"endpoint.p256dh", func(in *push.FinishInput) { in.Endpoint = wp("https://a.push.example/x"); in.Endpoint.P256dh = "AAAA" }},
		{"endpoint.auth", func(in *push.FinishInput) { in.Endpoint = wp("https://a.push.example/x"); in.Endpoint.Auth = "AAAA" }},
		{"endpoint.token", func(in *push.FinishInput) {
			in.Endpoint = push.Endpoint{Kind: storage.PushEndpointNtfy, URL: "https://ntfy.example/t", Token: "a\r\nX-Evil: 1"}
		}},
		{"endpoint", func(in *push.FinishInput) {
			in.Endpoint = push.Endpoint{Kind: storage.PushEndpointPoll, URL: "https://x"}
		}},
	}
	for _, c := range cases {
		in := e.finishInput(newKey(t), en.Token, push.Endpoint{Kind: storage.PushEndpointPoll}, false)
		c.edit(&in)
		if _, err := e.svc.FinishEnrollment(ctx, in); fieldOf(err) != c.field {
			t.Errorf("want an error on %s, got %v", c.field, err)
		}
	}
	// A valid Web Push endpoint on an allowed host enrolls; the next device is one too many.
	if _, err := e.svc.FinishEnrollment(ctx, e.finishInput(newKey(t), en.Token, wp("https://fcm.push.example/send/abc"), false)); err != nil {
		t.Fatalf("valid web push endpoint: %v", err)
	}
	en, _ = e.svc.BeginEnrollment(ctx, "alice", "")
	if _, err := e.svc.FinishEnrollment(ctx, e.finishInput(newKey(t), en.Token, push.Endpoint{Kind: storage.PushEndpointPoll}, false)); !errors.Is(err, push.ErrTooManyDevices) {
		t.Fatalf("device over the bound: %v", err)
	}
}

func fieldOf(err error) string {
	var ie *push.InputError
	if errors.As(err, &ie) {
		return ie.Field
	}
	return ""
}

// The server's VAPID public key reaches the enrolling device (the answer and the
// URI's "vapid"), and a key that is not a P-256 point is refused at New.
func TestEnrollmentCarriesVAPIDKey(t *testing.T) {
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	vapid := base64.RawURLEncoding.EncodeToString(priv.PublicKey().Bytes())
	e := newEnv(t, push.Config{VAPIDPublicKey: vapid})
	en, err := e.svc.BeginEnrollment(context.Background(), "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(en.URI)
	if err != nil || en.VAPIDPublicKey != vapid || u.Query().Get("vapid") != vapid || u.Query().Get("token") != en.Token {
		t.Fatalf("enrollment %+v, uri %q: want the VAPID key %q in both", en, en.URI, vapid)
	}
	plain := newEnv(t, push.Config{})
	en, err = plain.svc.BeginEnrollment(context.Background(), "alice", "")
	if err != nil || en.VAPIDPublicKey != "" || strings.Contains(en.URI, "vapid") {
		t.Fatalf("without a key: %+v, %v", en, err)
	}
	for _, bad := range []string{"AAAA", vapid[:20], base64.RawURLEncoding.EncodeToString(make([]byte, 65)), vapid + "="} {
		if _, err := push.New(e.store, e.ring, push.Config{VAPIDPublicKey: bad}); err == nil {
			t.Errorf("VAPID key %q accepted", bad)
		}
	}
}

// Plain http is allowed only to the hosts of HTTPEndpointHosts (the compose
// file's ntfy on the deployment's network), which need not be in EndpointHosts;
// every other endpoint must be https on an allowed host.
func TestEndpointHTTPOnlyToNamedHosts(t *testing.T) {
	e := newEnv(t, push.Config{EndpointHosts: []string{"ntfy.example"}, HTTPEndpointHosts: []string{"ntfy", ".internal"}, MaxDevices: 10, MaxPendingEnrollments: 16})
	ctx := context.Background()
	for url, field := range map[string]string{
		"http://ntfy/upAlice":             "",
		"http://push.svc.internal/t":      "",
		"https://ntfy.example/t":          "",
		"http://ntfy.example/t":           "endpoint.url", // https host: http refused
		"http://evil.example/t":           "endpoint.url",
		"https://ntfy/t":                  "endpoint.url", // not an https host of EndpointHosts
		"http://ntfy.evil.example/t":      "endpoint.url",
		"http://internal/t":               "endpoint.url", // ".internal" names subdomains only
		"ftp://ntfy/t":                    "endpoint.url",
		"http://user:pw@ntfy/t":           "endpoint.url",
		"http://push.svc.internal.evil/t": "endpoint.url",
	} {
		en, err := e.svc.BeginEnrollment(ctx, "alice", "")
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.FinishEnrollment(ctx, e.finishInput(newKey(t), en.Token, push.Endpoint{Kind: storage.PushEndpointNtfy, URL: url}, false))
		if field == "" && err != nil || field != "" && fieldOf(err) != field {
			t.Errorf("%s: %v, want error on %q", url, err, field)
		}
	}
}
