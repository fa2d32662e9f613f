package webpush_test

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/channels/webpush"
)

// pushService is an RFC 8030 push service for one subscription: it checks the
// VAPID header (RFC 8292), decrypts the aes128gcm payload (RFC 8291) with the
// subscription's private key and auth secret, and answers with status.
type pushService struct {
	t        *testing.T
	srv      *httptest.Server
	ua       *ecdh.PrivateKey // the subscription's key pair (the browser's)
	auth     []byte
	vapidPub string

	mu       sync.Mutex
	status   int
	retry    string
	received [][]byte
	errs     []string
}

func newPushService(t *testing.T, vapidPub string) *pushService {
	ua, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := &pushService{t: t, ua: ua, auth: make([]byte, 16), vapidPub: vapidPub, status: http.StatusCreated}
	rand.Read(p.auth)
	p.srv = httptest.NewTLSServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *pushService) subscription() webpush.Subscription {
	return webpush.Subscription{Endpoint: p.srv.URL + "/push/sub-abc123",
		P256dh: base64.RawURLEncoding.EncodeToString(p.ua.PublicKey().Bytes()),
		Auth:   base64.RawURLEncoding.EncodeToString(p.auth)}
}

func (p *pushService) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	err := p.check(r, body)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.errs = append(p.errs, err.Error())
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if p.retry != "" {
		w.Header().Set("Retry-After", p.retry)
	}
	w.WriteHeader(p.status)
}

func (p *pushService) check(r *http.Request, body []byte) error {
	if r.Method != http.MethodPost || r.URL.Path != "/push/sub-abc123" {
		return fmt.Errorf("%s %s", r.Method, r.URL.Path)
	}
	if r.Header.Get("Content-Encoding") != "aes128gcm" || r.Header.Get("TTL") == "" {
		return fmt.Errorf("headers %v", r.Header)
	}
	if err := p.checkVAPID(r.Header.Get("Authorization")); err != nil {
		return err
	}
	plain, err := p.decrypt(body)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.received = append(p.received, plain)
	p.mu.Unlock()
	return nil
}

// checkVAPID verifies "vapid t=<JWT>, k=<public key>" (RFC 8292 §3).
func (p *pushService) checkVAPID(h string) error {
	rest, ok := strings.CutPrefix(h, "vapid ")
	if !ok {
		return errors.New("no vapid scheme")
	}
	params := map[string]string{}
	for _, part := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		params[k] = v
	}
	if params["k"] != strings.TrimRight(p.vapidPub, "=") {
		return errors.New("vapid k is not the operator's key")
	}
	raw, err := base64.RawURLEncoding.DecodeString(params["k"])
	if err != nil {
		return err
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
	if err != nil {
		return err
	}
	claims := jwt.MapClaims{}
	_, err = jwt.ParseWithClaims(params["t"], claims, func(*jwt.Token) (any, error) { return pub, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithAudience(p.srv.URL), jwt.WithExpirationRequired())
	if err != nil {
		return fmt.Errorf("vapid jwt: %w", err)
	}
	exp, _ := claims.GetExpirationTime()
	if exp.After(time.Now().Add(24 * time.Hour)) {
		return errors.New("vapid jwt: exp more than 24 h ahead")
	}
	if sub, _ := claims.GetSubject(); sub != "mailto:ops@auth.example" {
		return fmt.Errorf("vapid jwt: sub %q", sub)
	}
	return nil
}

// decrypt opens an RFC 8291 aes128gcm body with the subscription's keys.
func (p *pushService) decrypt(body []byte) ([]byte, error) {
	if len(body) < 21 {
		return nil, errors.New("short body")
	}
	salt, rs, idlen := body[:16], binary.BigEndian.Uint32(body[16:20]), int(body[20])
	if idlen != 65 || len(body) < 21+idlen || rs < 18 {
		return nil, errors.New("bad header")
	}
	asPub, err := ecdh.P256().NewPublicKey(body[21 : 21+idlen])
	if err != nil {
		return nil, err
	}
	ct := body[21+idlen:]
	secret, err := p.ua.ECDH(asPub)
	if err != nil {
		return nil, err
	}
	info := append(append([]byte("WebPush: info\x00"), p.ua.PublicKey().Bytes()...), asPub.Bytes()...)
	ikm, err := hkdf.Key(sha256.New, secret, p.auth, string(info), 32)
	if err != nil {
		return nil, err
	}
	prk, _ := hkdf.Extract(sha256.New, ikm, salt)
	cek, _ := hkdf.Expand(sha256.New, prk, "Content-Encoding: aes128gcm\x00", 16)
	nonce, _ := hkdf.Expand(sha256.New, prk, "Content-Encoding: nonce\x00", 12)
	block, _ := aes.NewCipher(cek)
	gcm, _ := cipher.NewGCM(block)
	if len(ct) > int(rs) {
		return nil, errors.New("more than one record")
	}
	plain, err := gcm.Open(nil, nonce, ct, nil)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	// The last record ends with delimiter 0x02, then zero padding.
	end := len(plain) - 1
	for end >= 0 && plain[end] == 0 {
		end--
	}
	if end < 0 || plain[end] != 2 {
		return nil, errors.New("no last-record delimiter")
	}
	return plain[:end], nil
}

func newSender(t *testing.T, ps **pushService) *webpush.Sender {
	t.Helper()
	priv, pub, err := webpush.GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	*ps = newPushService(t, pub)
	s, err := webpush.New(webpush.Config{VAPIDPublicKey: pub, VAPIDPrivateKey: priv, Subscriber: "ops@auth.example",
		HTTPClient: (*ps).srv.Client(), Now: func() time.Time { return time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSendDecryptsAtThePushService(t *testing.T) {
	var ps *pushService
	s := newSender(t, &ps)
	payload := []byte(`{"v":1,"challenge_id":"c-1","device_id":"d-1"}`)
	if err := s.Send(context.Background(), ps.subscription(), payload); err != nil {
		t.Fatalf("send: %v (push service saw %v)", err, ps.errs)
	}
	if len(ps.received) != 1 || string(ps.received[0]) != string(payload) {
		t.Fatalf("push service decrypted %q", ps.received)
	}
	// Encrypted for another auth secret: the push service cannot open it.
	sub := ps.subscription()
	sub.Auth = base64.RawURLEncoding.EncodeToString(make([]byte, 16))
	if err := s.Send(context.Background(), sub, payload); !isPermanent(err) || len(ps.errs) != 1 || !strings.Contains(ps.errs[0], "decrypt") {
		t.Fatalf("wrong auth secret: %v, service saw %v", err, ps.errs)
	}
}

func TestSendAnswers(t *testing.T) {
	var ps *pushService
	s := newSender(t, &ps)
	cases := []struct {
		status int
		retry  string
		check  func(error) bool
	}{
		{http.StatusGone, "", func(err error) bool { return errors.Is(err, webpush.ErrGone) && isPermanent(err) }},
		{http.StatusNotFound, "", func(err error) bool { return errors.Is(err, webpush.ErrGone) }},
		{http.StatusTooManyRequests, "7", func(err error) bool { return retryOf(err) == 7*time.Second }},
		{http.StatusTooManyRequests, "Wed, 02 Dec 2026 09:00:30 GMT", func(err error) bool { return retryOf(err) == 30*time.Second }},
		{http.StatusServiceUnavailable, "", func(err error) bool { return retryOf(err) == 5*time.Second }},
		{http.StatusRequestEntityTooLarge, "", func(err error) bool { return isPermanent(err) && !errors.Is(err, webpush.ErrGone) }},
		{http.StatusInternalServerError, "", func(err error) bool { return err != nil && !isPermanent(err) && retryOf(err) == 0 }},
		{http.StatusOK, "", func(err error) bool { return err == nil }},
	}
	for _, c := range cases {
		ps.mu.Lock()
		ps.status, ps.retry = c.status, c.retry
		ps.mu.Unlock()
		err := s.Send(context.Background(), ps.subscription(), []byte("x"))
		if !c.check(err) {
			t.Errorf("HTTP %d: %v", c.status, err)
		}
		if err != nil && strings.Contains(err.Error(), "sub-abc123") {
			t.Errorf("error quotes the endpoint: %v", err)
		}
	}
	// Push service down: a retryable error without the endpoint.
	ps.srv.Close()
	err := s.Send(context.Background(), ps.subscription(), []byte("x"))
	if err == nil || isPermanent(err) || strings.Contains(err.Error(), "sub-abc123") {
		t.Fatalf("service down: %v", err)
	}
}

func TestNewRefusesBadKeys(t *testing.T) {
	priv, pub, _ := webpush.GenerateVAPIDKeys()
	priv2, _, _ := webpush.GenerateVAPIDKeys()
	for name, cfg := range map[string]webpush.Config{
		"no public":  {VAPIDPrivateKey: priv, Subscriber: "a@b"},
		"mismatch":   {VAPIDPublicKey: pub, VAPIDPrivateKey: priv2, Subscriber: "a@b"},
		"no contact": {VAPIDPublicKey: pub, VAPIDPrivateKey: priv},
		"bad public": {VAPIDPublicKey: "AAAA", VAPIDPrivateKey: priv, Subscriber: "a@b"},
	} {
		if _, err := webpush.New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func isPermanent(err error) bool {
	var p notify.Permanent
	return errors.As(err, &p)
}

func retryOf(err error) time.Duration {
	var r notify.RetryAfter
	if errors.As(err, &r) {
		return r.D
	}
	return 0
}
