package pushdelivery_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twofactor/twofactor/internal/testfix"
	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/channels/ntfy"
	"github.com/twofactor/twofactor/notify/channels/ntfy/ntfytest"
	"github.com/twofactor/twofactor/notify/channels/webpush"
	"github.com/twofactor/twofactor/notify/channels/webpush/webpushtest"
	"github.com/twofactor/twofactor/notify/egress"
	"github.com/twofactor/twofactor/notify/natstest"
	"github.com/twofactor/twofactor/notify/pushdelivery"
	"github.com/twofactor/twofactor/providers/push"
	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

type rig struct {
	t       *testing.T
	svc     *push.Service
	wp      *webpushtest.Service
	nt      *ntfytest.Server
	deps    pushdelivery.Deps
	devices map[string]string // kind -> device id
}

func newRig(t *testing.T) *rig {
	priv, pub, err := webpush.GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, wp: webpushtest.New(t, pub, "mailto:ops@auth.example"), nt: ntfytest.New(t), devices: map[string]string{}}
	r.svc, err = push.New(storagetest.Open(t), storagetest.KeyRing(t), push.Config{AllowHTTP: true, AllowInternal: testfix.AnyAddress()})
	if err != nil {
		t.Fatal(err)
	}
	ws, err := webpush.New(webpush.Config{VAPIDPublicKey: pub, VAPIDPrivateKey: priv, Subscriber: "ops@auth.example", HTTPClient: r.wp.Client()})
	if err != nil {
		t.Fatal(err)
	}
	r.deps = pushdelivery.Deps{Push: r.svc, WebPush: ws, Ntfy: ntfy.New(ntfy.Config{HTTPClient: http.DefaultClient}),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	sub := r.wp.Subscription()
	r.enroll(storage.PushEndpointWebPush, push.Endpoint{Kind: storage.PushEndpointWebPush, URL: sub.Endpoint, P256dh: sub.P256dh, Auth: sub.Auth})
	r.enroll(storage.PushEndpointNtfy, push.Endpoint{Kind: storage.PushEndpointNtfy, URL: r.nt.URL() + "/upDevice1?up=1"})
	r.enroll(storage.PushEndpointPoll, push.Endpoint{Kind: storage.PushEndpointPoll})
	return r
}

func (r *rig) enroll(kind string, ep push.Endpoint) {
	ctx := context.Background()
	en, err := r.svc.BeginEnrollment(ctx, "alice", "")
	if err != nil {
		r.t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	nonce := make([]byte, 16)
	rand.Read(nonce)
	in := push.FinishInput{Token: en.Token, PublicKey: der, Name: kind, Platform: "test", Endpoint: ep,
		TimestampMillis: time.Now().UnixMilli(), Nonce: nonce}
	h := sha256.Sum256(push.EnrollMessage(in))
	in.Signature, _ = ecdsa.SignASN1(rand.Reader, key, h[:])
	d, err := r.svc.FinishEnrollment(ctx, in)
	if err != nil {
		r.t.Fatal(err)
	}
	r.devices[kind] = d.ID
}

func request(t *testing.T, challengeID string, expires time.Time) notify.Message {
	b, err := json.Marshal(notify.PushRequest{V: 1, ChallengeID: challengeID, UserID: "alice", ExpiresAt: expires})
	if err != nil {
		t.Fatal(err)
	}
	return notify.Message{ID: challengeID, Data: b}
}

func wakeOf(t *testing.T, b []byte) push.Wake {
	var w push.Wake
	if err := json.Unmarshal(b, &w); err != nil {
		t.Fatalf("wake %q: %v", b, err)
	}
	return w
}

// Through a real worker: authd publishes the request, notifyd wakes every device.
func TestWorkerWakesEveryDevice(t *testing.T) {
	r := newRig(t)
	nc, js, names := natstest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	outcomes := make(chan error, 4)
	r.deps.Observe = func(_, _ string, err error) { outcomes <- err }
	w, err := pushdelivery.NewWorker(ctx, js, names, r.deps)
	if err != nil {
		t.Fatal(err)
	}
	go w.Run(ctx)
	pub := notify.NewPublisher(js, nc, names)
	if err := pub.PublishPushRequest(ctx, notify.PushRequest{ChallengeID: "ch-1", UserID: "alice", ExpiresAt: time.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the web push and the ntfy device (the poll-only one gets none)
		select {
		case err := <-outcomes:
			if err != nil {
				t.Fatalf("delivery: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("no delivery")
		}
	}
	got := r.wp.Received()
	if len(got) != 1 || wakeOf(t, got[0]) != (push.Wake{V: 1, ChallengeID: "ch-1", DeviceID: r.devices[storage.PushEndpointWebPush]}) {
		t.Fatalf("web push received %q (service errors %v)", got, r.wp.Errors())
	}
	msgs := r.nt.Poll(t, "upDevice1")
	if len(msgs) != 1 || wakeOf(t, []byte(msgs[0].Message)) != (push.Wake{V: 1, ChallengeID: "ch-1", DeviceID: r.devices[storage.PushEndpointNtfy]}) {
		t.Fatalf("ntfy topic holds %+v", msgs)
	}
}

func TestGoneEndpointsRetiredAndRetries(t *testing.T) {
	r := newRig(t)
	h := pushdelivery.Handler(r.deps)
	ctx := context.Background()
	soon := time.Now().Add(time.Minute)

	// Rate limited by ntfy: a retry after its Retry-After; the web push went out.
	r.nt.SetLimited(true)
	err := h(ctx, request(t, "ch-2", soon))
	var ra notify.RetryAfter
	if !errors.As(err, &ra) || ra.D != 12*time.Second {
		t.Fatalf("limited: %v", err)
	}
	r.nt.SetLimited(false)

	// Both endpoints gone: retired, the devices poll, the request is done.
	r.wp.Answer(http.StatusGone, "")
	r.nt.Unregister("upDevice1")
	if err := h(ctx, request(t, "ch-3", soon)); err != nil {
		t.Fatalf("gone: %v", err)
	}
	devs, _ := r.svc.Devices(ctx, "alice")
	if len(devs) != 3 {
		t.Fatalf("%d devices: a gone endpoint must not remove its device", len(devs))
	}
	for _, d := range devs {
		if d.EndpointKind != storage.PushEndpointPoll {
			t.Errorf("device %s still %s", d.Name, d.EndpointKind)
		}
	}
	// The push service is back, but nothing is sent to a retired endpoint.
	r.wp.Answer(http.StatusCreated, "")
	before := len(r.wp.Received())
	if err := h(ctx, request(t, "ch-4", soon)); err != nil || len(r.wp.Received()) != before {
		t.Fatalf("after retirement: %v, %d sent", err, len(r.wp.Received())-before)
	}
	// Expired or undecodable requests.
	if err := h(ctx, request(t, "ch-5", time.Now().Add(-time.Second))); err != nil {
		t.Fatalf("expired: %v", err)
	}
	var perm notify.Permanent
	if err := h(ctx, notify.Message{Data: []byte(`{"v":1}`)}); !errors.As(err, &perm) {
		t.Fatalf("undecodable: %v", err)
	}
}

func TestPushServiceDownIsRetried(t *testing.T) {
	r := newRig(t)
	r.wp.Answer(http.StatusInternalServerError, "")
	err := pushdelivery.Handler(r.deps)(context.Background(), request(t, "ch-6", time.Now().Add(time.Minute)))
	var perm notify.Permanent
	if err == nil || errors.As(err, &perm) {
		t.Fatalf("5xx: %v", err)
	}
	// The ntfy device was still woken.
	if msgs := r.nt.Poll(t, "upDevice1"); len(msgs) != 1 {
		t.Fatalf("ntfy got %d", len(msgs))
	}
}

// Through egress's client without an allowance, both endpoints (on 127.0.0.1) are
// refused at dial time: neither service sees a request, the request is done (no
// retry), the endpoints are kept (an operator may allow them later), and the log
// names the host, not the URL.
func TestRefusedAddressIsNotRetried(t *testing.T) {
	r := newRig(t)
	priv, pub, _ := webpush.GenerateVAPIDKeys()
	r.wp = webpushtest.New(t, pub, "mailto:ops@auth.example")
	ws, err := webpush.New(webpush.Config{VAPIDPublicKey: pub, VAPIDPrivateKey: priv, Subscriber: "ops@auth.example",
		HTTPClient: egress.NewClient(egress.Config{TLS: r.wp.Client().Transport.(*http.Transport).TLSClientConfig})})
	if err != nil {
		t.Fatal(err)
	}
	sub := r.wp.Subscription()
	r.enroll("webpush2", push.Endpoint{Kind: storage.PushEndpointWebPush, URL: sub.Endpoint, P256dh: sub.P256dh, Auth: sub.Auth})
	var logs testfix.LogBuffer
	var refused []string
	d := r.deps
	d.WebPush, d.Ntfy, d.Logger = ws, ntfy.New(ntfy.Config{HTTPClient: egress.NewClient(egress.Config{})}), slog.New(slog.NewTextHandler(&logs, nil))
	d.Observe = func(_, kind string, err error) {
		if errors.Is(err, egress.ErrRefused) {
			refused = append(refused, kind)
		}
	}
	if err := pushdelivery.Handler(d)(context.Background(), request(t, "ch-7", time.Now().Add(time.Minute))); err != nil {
		t.Fatalf("refused: %v, want done", err)
	}
	if len(refused) != 3 || len(r.wp.Received())+len(r.wp.Errors()) != 0 || len(r.nt.Poll(t, "upDevice1")) != 0 {
		t.Fatalf("refused %v; web push saw %d, ntfy %d", refused, len(r.wp.Received())+len(r.wp.Errors()), len(r.nt.Poll(t, "upDevice1")))
	}
	devs, _ := r.svc.Devices(context.Background(), "alice")
	for _, dev := range devs {
		if dev.EndpointKind == storage.PushEndpointPoll && dev.Name != storage.PushEndpointPoll {
			t.Errorf("device %s retired", dev.Name)
		}
	}
	if l := logs.String(); !strings.Contains(l, "endpoint address refused") || !strings.Contains(l, "host=127.0.0.1") ||
		strings.Contains(l, "upDevice1") || strings.Contains(l, "sub-abc123") {
		t.Fatalf("logs %s", l)
	}
}
