package demo

import (
	"net/http"
	"strings"
	"time"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
)

// Device cookie names. On an https origin the cookie is "__Host-" prefixed
// (RFC 6265bis §4.1.3.2: Secure, Path=/, no Domain, so no sibling or
// subdomain can set or shadow it). On http (only for http://localhost) a
// browser refuses a __Host- cookie, which requires Secure, so the name drops
// the prefix and the cookie is not Secure; every other attribute stays.
const (
	cookieDeviceSecure = "__Host-demo_device"
	cookieDevicePlain  = "demo_device"
)

// maxDeviceCookie bounds the device cookie's value that is sent to authd (a
// token is 64 characters).
const maxDeviceCookie = 256

func (h *Handler) deviceCookieName() string {
	if h.secure {
		return cookieDeviceSecure
	}
	return cookieDevicePlain
}

// setDevice keeps a device token in its cookie until the token's absolute expiry.
func (h *Handler) setDevice(w http.ResponseWriter, token string, expires time.Time) {
	ttl := expires.Sub(h.cfg.Now())
	if token == "" || ttl <= 0 {
		return
	}
	h.setCookie(w, h.deviceCookieName(), token, ttl)
}

// tryRemembered presents this browser's device token for user. It reports
// whether authd remembered the browser; the rotated token then replaces the
// cookie and the user is signed in without a second factor. A token authd does
// not remember is forgotten here too.
func (h *Handler) tryRemembered(w http.ResponseWriter, r *http.Request, user string) bool {
	c, err := r.Cookie(h.deviceCookieName())
	if err != nil || c.Value == "" {
		return false
	}
	if len(c.Value) > maxDeviceCookie {
		h.clearCookie(w, h.deviceCookieName())
		return false
	}
	ctx, cancel := h.ctx(r)
	defer cancel()
	resp, err := h.c.Challenges.CheckRememberedDevice(ctx, &pb.CheckRememberedDeviceRequest{UserId: user, DeviceToken: c.Value, Context: clientContext(r)})
	if err != nil {
		h.cfg.Log.Warn("remembered browser check failed; asking for the second factor", "error", err.Error())
		return false
	}
	switch resp.GetResult() {
	case pb.RememberedResult_REMEMBERED_RESULT_REMEMBERED:
		h.setDevice(w, resp.GetDeviceToken(), resp.GetDeviceTokenExpiresAt().AsTime())
		h.startSession(w, user)
		return true
	case pb.RememberedResult_REMEMBERED_RESULT_NOT_REMEMBERED:
		h.clearCookie(w, h.deviceCookieName())
	}
	return false
}

// deviceLabel names a browser from its user agent for the account page
// ("Firefox on Linux"); it is informational only.
func deviceLabel(ua string) string {
	browser, os := "Browser", ""
	for _, b := range []struct{ key, name string }{{"Edg/", "Edge"}, {"Firefox/", "Firefox"}, {"Chrome/", "Chrome"}, {"Safari/", "Safari"}, {"Go-http-client", "Go HTTP client"}} {
		if strings.Contains(ua, b.key) {
			browser = b.name
			break
		}
	}
	for _, o := range []struct{ key, name string }{{"Android", "Android"}, {"iPhone", "iOS"}, {"iPad", "iPadOS"}, {"Windows", "Windows"}, {"Mac OS X", "macOS"}, {"Linux", "Linux"}} {
		if strings.Contains(ua, o.key) {
			os = o.name
			break
		}
	}
	if os == "" {
		return browser
	}
	return browser + " on " + os
}

func (h *Handler) revokeDevice(w http.ResponseWriter, r *http.Request) {
	h.act(w, r, "Forgetting the browser", "forgotten", func(u string) error {
		id, err := formField(r, "id", 64)
		if err != nil {
			return err
		}
		ctx, cancel := h.ctx(r)
		defer cancel()
		_, err = h.c.Enrollment.RevokeRememberedDevice(ctx, &pb.RevokeRememberedDeviceRequest{UserId: u, DeviceId: id})
		return err
	})
}

func (h *Handler) revokeAllDevices(w http.ResponseWriter, r *http.Request) {
	h.act(w, r, "Forgetting the browsers", "forgotten", func(u string) error {
		ctx, cancel := h.ctx(r)
		defer cancel()
		_, err := h.c.Enrollment.RevokeAllRememberedDevices(ctx, &pb.RevokeAllRememberedDevicesRequest{UserId: u})
		return err
	})
}
