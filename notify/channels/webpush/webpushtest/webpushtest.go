// Package webpushtest runs an RFC 8030 push service for tests: it checks each
// request's VAPID header (RFC 8292: ES256 JWT, aud, exp, sub, k), decrypts the
// aes128gcm payload (RFC 8291) with the subscription's private key and auth secret,
// keeps what it decrypted, and answers with a status the test chooses (201, 404,
// 410, 429 with Retry-After, ...).
package webpushtest

import (
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

	"github.com/twofactor/twofactor/notify/channels/webpush"
)

// Service is an RFC 8030 push service for one subscription: it checks the
// VAPID header (RFC 8292), decrypts the aes128gcm payload (RFC 8291) with the
// subscription's private key and auth secret, and answers with status.
type Service struct {
	srv      *httptest.Server
	ua       *ecdh.PrivateKey // the subscription's key pair (the browser's)
	auth     []byte
	vapidPub string
	sub      string

	mu       sync.Mutex
	status   int
	retry    string
	received [][]byte
	errs     []string
}

// New starts a push service (TLS; use Client) for one subscription, accepting
// requests signed by the VAPID key vapidPub whose JWT names subscriber as sub
// ("mailto:ops@example" or an https URL). It stops when the test ends.
func New(t testing.TB, vapidPub, subscriber string) *Service {
	ua, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := &Service{sub: subscriber, ua: ua, auth: make([]byte, 16), vapidPub: vapidPub, status: http.StatusCreated}
	rand.Read(p.auth)
	p.srv = httptest.NewTLSServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

// Subscription is the browser's PushSubscription for this service.
func (p *Service) Subscription() webpush.Subscription {
	return webpush.Subscription{Endpoint: p.srv.URL + "/push/sub-abc123",
		P256dh: base64.RawURLEncoding.EncodeToString(p.ua.PublicKey().Bytes()),
		Auth:   base64.RawURLEncoding.EncodeToString(p.auth)}
}

// Client trusts the service's TLS certificate.
func (p *Service) Client() *http.Client { return p.srv.Client() }

// URL is the service's base URL.
func (p *Service) URL() string { return p.srv.URL }

// Close stops the service (a push service that is down).
func (p *Service) Close() { p.srv.Close() }

// Answer sets the status of the next answers, and their Retry-After ("" for none).
func (p *Service) Answer(status int, retryAfter string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status, p.retry = status, retryAfter
}

// Received returns the payloads decrypted so far.
func (p *Service) Received() [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([][]byte(nil), p.received...)
}

// Errors returns why requests were refused with 400 (bad VAPID, undecryptable).
func (p *Service) Errors() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.errs...)
}

func (p *Service) serve(w http.ResponseWriter, r *http.Request) {
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

func (p *Service) check(r *http.Request, body []byte) error {
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
func (p *Service) checkVAPID(h string) error {
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
	if sub, _ := claims.GetSubject(); sub != p.sub {
		return fmt.Errorf("vapid jwt: sub %q", sub)
	}
	return nil
}

// decrypt opens an RFC 8291 aes128gcm body with the subscription's keys.
func (p *Service) decrypt(body []byte) ([]byte, error) {
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
