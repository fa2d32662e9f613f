package demo

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Cookie purposes. The purpose is part of the MAC input, so a cookie minted for one
// purpose never verifies as another (a half-finished login is not a session).
const (
	purposeSession = "session" // a signed-in user
	purposeLogin   = "login"   // a user who gave a name and owes a second factor
)

// claims is everything the demo remembers about a browser. It holds no secret: the
// user name, an authd challenge id (useless without the demo's API key) and times.
type claims struct {
	User      string `json:"u,omitempty"`
	Challenge string `json:"c,omitempty"`
	Method    string `json:"m,omitempty"`
	Expires   int64  `json:"e"`
}

// codec signs and checks cookie values: "v1.<base64url payload>.<base64url HMAC>".
// HMAC-SHA256 (RFC 2104, FIPS 198-1) over purpose || 0x00 || payload, with a 256-bit
// key drawn per process: restarting the demo signs everyone out.
type codec struct {
	key [32]byte
	now func() time.Time
}

var errCookie = errors.New("cookie: not signed by this demo process or malformed")

func newCodec(now func() time.Time) (*codec, error) {
	c := &codec{now: now}
	if _, err := rand.Read(c.key[:]); err != nil {
		return nil, fmt.Errorf("demo: session key: %w", err)
	}
	return c, nil
}

func (c *codec) mac(purpose string, payload []byte) []byte {
	m := hmac.New(sha256.New, c.key[:])
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write(payload)
	return m.Sum(nil)
}

// seal signs cl for purpose, valid for ttl from now.
func (c *codec) seal(purpose string, cl claims, ttl time.Duration) string {
	cl.Expires = c.now().Add(ttl).Unix()
	payload, _ := json.Marshal(cl) // a struct of strings and an int cannot fail
	enc := base64.RawURLEncoding
	return "v1." + enc.EncodeToString(payload) + "." + enc.EncodeToString(c.mac(purpose, payload))
}

// open checks value's signature (in constant time) and expiry and returns its claims.
func (c *codec) open(purpose, value string) (claims, error) {
	var cl claims
	rest, ok := strings.CutPrefix(value, "v1.")
	if !ok {
		return cl, errCookie
	}
	p64, m64, ok := strings.Cut(rest, ".")
	if !ok {
		return cl, errCookie
	}
	enc := base64.RawURLEncoding
	payload, err := enc.DecodeString(p64)
	if err != nil {
		return cl, errCookie
	}
	mac, err := enc.DecodeString(m64)
	if err != nil || !hmac.Equal(mac, c.mac(purpose, payload)) {
		return cl, errCookie
	}
	if err := json.Unmarshal(payload, &cl); err != nil {
		return cl, errCookie
	}
	if c.now().Unix() >= cl.Expires {
		return claims{}, errors.New("cookie: expired")
	}
	return cl, nil
}
