package demo_test

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/twofactor/twofactor/clients/pushdevice"
	"github.com/twofactor/twofactor/notify/channels/webpush/webpushtest"
	"github.com/twofactor/twofactor/providers/push/pushsig"
)

// relayDevice is a Go device (clients/pushdevice) that talks to authd through the
// demo's device page API, as the browser's device page does: it signs, the demo relays.
type relayDevice struct {
	t *testing.T
	b *browser
	d *pushdevice.Device
}

// call posts a signed device request and decodes the JSON answer.
func (r *relayDevice) call(path string, body map[string]any, purpose string, fields ...string) (int, map[string]any) {
	r.t.Helper()
	a, err := r.d.Auth(purpose, fields...)
	if err != nil {
		r.t.Fatal(err)
	}
	body["auth"] = map[string]any{"deviceId": a.GetDeviceId(), "timestampMs": a.GetTimestampMs(), "nonce": a.GetNonce(), "signature": a.GetSignature()}
	return r.b.rawJSON(path, body)
}

func (b *browser) rawJSON(path string, v any) (int, map[string]any) {
	b.t.Helper()
	body, _ := json.Marshal(v)
	req, _ := http.NewRequest(http.MethodPost, b.f.origin+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", b.origin)
	p := b.do(req)
	out := map[string]any{}
	if err := json.Unmarshal([]byte(p.body), &out); err != nil {
		b.t.Fatalf("POST %s: %d %q is not JSON: %v", path, p.status, p.body, err)
	}
	return p.status, out
}

func (r *relayDevice) enroll(token string) {
	r.t.Helper()
	pub, _ := x509.MarshalPKIXPublicKey(&r.d.Key.PublicKey)
	st, out := r.call("/device/api/enroll", map[string]any{"token": token, "publicKey": pub, "name": "Go phone", "platform": "web"},
		pushsig.PurposeEnroll, token, string(pub), "Go phone", "web", "poll", "", "", "", "")
	if st != http.StatusOK || out["deviceId"] == "" {
		r.t.Fatalf("enroll: %d %v", st, out)
	}
	r.d.ID, r.d.UserID = out["deviceId"].(string), out["userId"].(string)
}

// pending returns the first pending push, after checking its context.
func (r *relayDevice) pending() string {
	r.t.Helper()
	st, out := r.call("/device/api/pending", map[string]any{}, pushsig.PurposeListPending)
	list, _ := out["pushes"].([]any)
	if st != http.StatusOK || len(list) != 1 {
		r.t.Fatalf("pending: %d %v", st, out)
	}
	id := list[0].(string)
	st, out = r.call("/device/api/context", map[string]any{"challengeId": id}, pushsig.PurposeGetContext, id)
	c, _ := out["context"].(map[string]any)
	if st != http.StatusOK || c["client"] != "demo-web" || c["ip"] != "127.0.0.1" || c["numberMode"] != "digits" {
		r.t.Fatalf("context: %d %v", st, out)
	}
	return id
}

func (r *relayDevice) respond(id, decision, number string) string {
	r.t.Helper()
	st, out := r.call("/device/api/respond", map[string]any{"challengeId": id, "decision": decision, "number": number},
		pushsig.PurposeRespond, id, decision, number)
	if st != http.StatusOK {
		r.t.Fatalf("respond: %d %v", st, out)
	}
	return out["result"].(string)
}

// Push approval through the demo: the account page enrolls a device (a Go device
// relayed by the device page's API, signing as the browser does); the sign-in page
// sends the push and shows the number; the long-polling wait wakes when the
// device approves with that number, and the user is signed in. A forged device
// signature is refused; a wrong number denies the next login.
func TestPushSignInApprovedOnDevice(t *testing.T) {
	f := start(t)
	b := f.browser(t)
	b.signIn("paula").must(t, "/account")
	p := b.post("/account/push", nil).must(t, "/account/push", "Add a device for push approval")
	token := p.find(t, `id="push-token">([^<]+)<`)
	dev, err := pushdevice.New()
	if err != nil {
		t.Fatal(err)
	}
	phone := &relayDevice{t: t, b: f.browser(t), d: dev}
	phone.enroll(token)
	if phone.d.UserID != "paula" {
		t.Fatalf("enrolled for %q", phone.d.UserID)
	}
	phone.b.get("/device").must(t, "/device", `id="device-enroll"`)
	b.signOut()

	b.signIn("paula").must(t, "/signin/second", `id="push-signin"`)
	_, begun := b.rawJSON("/signin/push/begin", map[string]any{})
	number, _ := begun["number"].(string)
	if len(number) != 2 || begun["devices"] != float64(1) {
		t.Fatalf("begin: %v", begun)
	}
	waited := make(chan answer, 1)
	go func() { waited <- b.postJSON("/signin/push/wait", map[string]any{}) }()
	id := phone.pending()

	// A request whose signature does not verify is refused (the demo cannot sign).
	forged, _ := phone.d.Auth(pushsig.PurposeRespond, id, "approve", number)
	forged.Signature[5] ^= 1
	st, out := phone.b.rawJSON("/device/api/respond", map[string]any{"challengeId": id, "decision": "approve", "number": number,
		"auth": map[string]any{"deviceId": forged.GetDeviceId(), "timestampMs": forged.GetTimestampMs(), "nonce": forged.GetNonce(), "signature": forged.GetSignature()}})
	if st != http.StatusForbidden || !strings.Contains(out["message"].(string), "signature") {
		t.Fatalf("forged respond: %d %v", st, out)
	}
	if res := phone.respond(id, "approve", number); res != "approved" {
		t.Fatalf("respond = %s", res)
	}
	select {
	case a := <-waited:
		if !a.OK || a.Result != "accepted" || a.Redirect != "/account" {
			t.Fatalf("wait: %+v", a)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting sign-in did not wake")
	}
	b.get("/account").must(t, "/account", "Push approval (device)")
	b.signOut()

	// The wrong number denies the login.
	b.signIn("paula").must(t, "/signin/second")
	_, begun = b.rawJSON("/signin/push/begin", map[string]any{})
	wrong := "00"
	if begun["number"] == wrong {
		wrong = "01"
	}
	if res := phone.respond(phone.pending(), "approve", wrong); res != "wrong_number" {
		t.Fatalf("respond with a wrong number = %s", res)
	}
	if a := b.postJSON("/signin/push/wait", map[string]any{}); a.OK || a.Result != "rejected" || !strings.Contains(a.Message, "denied") {
		t.Fatalf("wait after a wrong number: %+v", a)
	}
	if p := b.get("/account"); p.url != "/signin" {
		t.Fatalf("signed in after a denial: %s", p.url)
	}
}

// The device API refuses bad input before calling authd: an unknown decision, an
// over-long token, a body that is not JSON.
func TestDeviceAPIRefusesBadInput(t *testing.T) {
	f := start(t)
	b := f.browser(t)
	if st, out := b.rawJSON("/device/api/respond", map[string]any{"decision": "maybe"}); st != http.StatusBadRequest || !strings.Contains(out["message"].(string), "decision") {
		t.Fatalf("unknown decision: %d %v", st, out)
	}
	if st, out := b.rawJSON("/device/api/enroll", map[string]any{"token": strings.Repeat("t", 300)}); st != http.StatusBadRequest || !strings.Contains(out["message"].(string), "token") {
		t.Fatalf("long token: %d %v", st, out)
	}
	if p := b.post("/device/api/pending", url.Values{"auth": {"x"}}); p.status != http.StatusBadRequest {
		t.Fatalf("form body: %d", p.status)
	}
}

// Web Push on the device page: the account page gives the enrollment link with
// the server's VAPID public key (what the page subscribes with), the service
// worker is served from the root, and the relay passes the subscription the
// device signed (endpoint, p256dh, auth) to authd unchanged: authd accepts the
// signature over it, and refuses the same signature over an endpoint the relay
// would have changed.
func TestDeviceEnrollsWithWebPush(t *testing.T) {
	f := start(t, "-push-allow-internal", "127.0.0.1") // the test's push service
	b := f.browser(t)
	b.signIn("wanda").must(t, "/account")
	p := b.post("/account/push", nil).must(t, "/account/push", `id="push-device-link"`)
	uri := html.UnescapeString(p.find(t, `id="push-uri">([^<]+)<`))
	q, err := url.ParseQuery(strings.TrimPrefix(uri, "twofactor-push:enroll?"))
	if err != nil || q.Get("token") == "" {
		t.Fatalf("enrollment link %q: %v", uri, err)
	}
	if raw, err := base64.RawURLEncoding.DecodeString(q.Get("vapid")); err != nil || len(raw) != 65 || raw[0] != 4 {
		t.Fatalf("enrollment link %q: no VAPID public key (%v)", uri, err)
	}
	if sw := b.get("/device-sw.js"); sw.status != http.StatusOK || !strings.Contains(sw.body, `addEventListener("push"`) {
		t.Fatalf("service worker: %d", sw.status)
	}

	sub := webpushtest.New(t, q.Get("vapid"), "mailto:admin@localhost").Subscription()
	dev, err := pushdevice.New()
	if err != nil {
		t.Fatal(err)
	}
	phone := &relayDevice{t: t, b: f.browser(t), d: dev}
	pub, _ := x509.MarshalPKIXPublicKey(&dev.Key.PublicKey)
	token := q.Get("token")
	signed := []string{token, string(pub), "Browser", "web", "webpush", sub.Endpoint, sub.P256dh, sub.Auth, ""}
	body := func(ep map[string]any) map[string]any {
		return map[string]any{"token": token, "publicKey": pub, "name": "Browser", "platform": "web", "endpoint": ep}
	}
	// The relay cannot turn the signed Web Push endpoint into poll only.
	if st, out := phone.call("/device/api/enroll", body(map[string]any{"kind": "poll"}), pushsig.PurposeEnroll, signed...); st != http.StatusForbidden {
		t.Fatalf("enroll with another endpoint than signed: %d %v", st, out)
	}
	st, out := phone.call("/device/api/enroll", body(map[string]any{"kind": "webpush", "url": sub.Endpoint, "p256dh": sub.P256dh, "auth": sub.Auth}),
		pushsig.PurposeEnroll, signed...)
	if st != http.StatusOK || out["userId"] != "wanda" {
		t.Fatalf("enroll with Web Push: %d %v", st, out)
	}
	if st, out := phone.call("/device/api/enroll", body(map[string]any{"kind": "carrier-pigeon"}), pushsig.PurposeEnroll, signed...); st != http.StatusBadRequest ||
		!strings.Contains(out["message"].(string), "endpoint.kind") {
		t.Fatalf("unknown endpoint kind: %d %v", st, out)
	}
}
