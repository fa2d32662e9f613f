package push_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/twofactor/twofactor/internal/testfix"
	"github.com/twofactor/twofactor/providers/push"
	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// newClock is the injected clock tests move by hand.
func newClock() *testfix.Clock { return testfix.NewClock(time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)) }

type env struct {
	t     *testing.T
	url   string
	store *storage.Store
	ring  *storage.KeyRing
	clock *testfix.Clock
	svc   *push.Service
}

func newEnv(t *testing.T, cfg push.Config) *env {
	t.Helper()
	url := storagetest.URL(t)
	e := &env{t: t, url: url, store: storagetest.OpenURL(t, url), ring: storagetest.KeyRing(t), clock: newClock()}
	e.svc = e.service(e.store, cfg)
	return e
}

// service returns another Service (a replica) on store with e's key ring and clock.
func (e *env) service(store *storage.Store, cfg push.Config) *push.Service {
	e.t.Helper()
	cfg.Now = e.clock.Now
	svc, err := push.New(store, e.ring, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return svc
}

// device is a test device holding its private key, signing as a real one does.
type device struct {
	key   *ecdsa.PrivateKey
	id    string
	user  string
	p1363 bool // sign r‖s as WebCrypto does, not DER
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func nonce() []byte {
	b := make([]byte, 16)
	rand.Read(b)
	return b
}

func sign(t testing.TB, key *ecdsa.PrivateKey, msg []byte, p1363 bool) []byte {
	t.Helper()
	h := sha256Sum(msg)
	if !p1363 {
		sig, err := ecdsa.SignASN1(rand.Reader, key, h)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	r, s, err := ecdsa.Sign(rand.Reader, key, h)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out
}

// finishInput is a signed enrollment of key with token.
func (e *env) finishInput(key *ecdsa.PrivateKey, token string, ep push.Endpoint, p1363 bool) push.FinishInput {
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	in := push.FinishInput{Token: token, PublicKey: der, Name: "Phone", Platform: "android", Endpoint: ep,
		TimestampMillis: e.clock.Now().UnixMilli(), Nonce: nonce()}
	in.Signature = sign(e.t, key, push.EnrollMessage(in), p1363)
	return in
}

// enroll enrolls a new poll-only device for user.
func (e *env) enroll(user string) *device {
	e.t.Helper()
	return e.enrollWith(user, push.Endpoint{Kind: storage.PushEndpointPoll}, false)
}

func (e *env) enrollWith(user string, ep push.Endpoint, p1363 bool) *device {
	e.t.Helper()
	en, err := e.svc.BeginEnrollment(context.Background(), user, "")
	if err != nil {
		e.t.Fatal(err)
	}
	d := &device{key: newKey(e.t), user: user, p1363: p1363}
	rec, err := e.svc.FinishEnrollment(context.Background(), e.finishInput(d.key, en.Token, ep, p1363))
	if err != nil {
		e.t.Fatalf("finish enrollment: %v", err)
	}
	d.id = rec.ID
	return d
}

// request signs a device request at the clock's time.
func (e *env) request(d *device, purpose string, fields ...string) push.Request {
	r := push.Request{DeviceID: d.id, TimestampMillis: e.clock.Now().UnixMilli(), Nonce: nonce()}
	r.Signature = sign(e.t, d.key, push.RequestMessage(purpose, d.id, r.TimestampMillis, r.Nonce, fields...), d.p1363)
	return r
}

// respond authenticates and records d's answer, as the device API does.
func (e *env) respond(svc *push.Service, d *device, in push.RespondInput) (*push.Response, error) {
	ctx := context.Background()
	rec, err := svc.Authenticate(ctx, e.request(d, push.PurposeRespond, in.RespondFields()...), push.PurposeRespond, in.RespondFields()...)
	if err != nil {
		return nil, err
	}
	return svc.Respond(ctx, rec, in)
}

func (e *env) begin(user string) *push.Begun {
	e.t.Helper()
	b, err := e.svc.Begin(context.Background(), push.BeginInput{UserID: user, Client: "Nextcloud", ClientIP: "203.0.113.7", UserAgent: "Firefox/140"})
	if err != nil {
		e.t.Fatalf("begin: %v", err)
	}
	return b
}

func limitReason(err error) string {
	var le *push.LimitError
	if errors.As(err, &le) {
		return le.Reason
	}
	return ""
}

func sha256Sum(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:]
}
