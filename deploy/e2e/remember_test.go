package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
)

// enableRemember turns "remember this device" on for everyone, as an operator
// would (authctl policy set -remember): an admin changes the policy over the
// API, keeping the rest of it. The replicas read it within their policy
// cache's 1 s.
func (tp *topology) enableRemember(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	root := user("policy-admin")
	if _, err := tp.c.Admin.SetUserGroups(ctx, &pb.SetUserGroupsRequest{UserId: root, Groups: []string{"admin"}}); err != nil {
		t.Fatal(err)
	}
	cur, err := tp.c.Admin.GetPolicy(ctx, &pb.GetPolicyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	p := cur.GetPolicy()
	p.RememberDevice = true
	if _, err := tp.c.Admin.SetPolicy(ctx, &pb.SetPolicyRequest{ActorId: root, Policy: p}); err != nil {
		t.Fatalf("SetPolicy remember_device: %v", err)
	}
}

// deviceCookie is the demo's device cookie as the browser keeps it, or nil.
// The name is "__Host-" prefixed on https; on http://localhost a browser
// refuses that prefix, so the name drops it.
func (tb *tab) deviceCookie() *network.Cookie {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{tb.url}})
	if err != nil {
		tb.t.Fatalf("Network.getCookies: %v", err)
	}
	name := "demo_device"
	if strings.HasPrefix(tb.url, "https://") {
		name = "__Host-demo_device"
	}
	var found *network.Cookie
	for _, c := range res.Cookies {
		if strings.HasSuffix(c.Name, "demo_device") && c.Name != name {
			tb.t.Errorf("device cookie named %q on %s, want %q", c.Name, tb.url, name)
		}
		if c.Name == name {
			found = c
		}
	}
	return found
}

// checkDeviceCookie asserts the attributes of issue 15: HttpOnly,
// SameSite=Strict, Path=/, host-only, Secure except on http://localhost, and
// kept until the token's absolute expiry (30 days by default), not for the
// session only.
func (tb *tab) checkDeviceCookie(c *network.Cookie) {
	tb.t.Helper()
	if c == nil {
		tb.t.Fatal("no device cookie after a sign-in with \"Remember this browser\"")
	}
	secure := strings.HasPrefix(tb.url, "https://")
	if !c.HTTPOnly || c.SameSite != network.CookieSameSiteStrict || c.Secure != secure || c.Path != "/" || strings.HasPrefix(c.Domain, ".") {
		tb.t.Fatalf("device cookie: HttpOnly=%v SameSite=%q Secure=%v (want %v) Path=%q Domain=%q",
			c.HTTPOnly, c.SameSite, c.Secure, secure, c.Path, c.Domain)
	}
	exp := time.Unix(int64(c.Expires), 0)
	if c.Session || exp.Before(time.Now().Add(29*24*time.Hour)) || exp.After(time.Now().Add(31*24*time.Hour)) {
		tb.t.Fatalf("device cookie expires %v (session %v), want in 30 days", exp, c.Session)
	}
}

// "Remember this browser": a TOTP sign-in with the box ticked sets the device
// cookie; the next sign-in needs no second factor and rotates the token; the
// browser forgotten on the account page is asked for the second factor again
// and its cookie is deleted.
func (f *flows) remember(t *testing.T) {
	tb := f.tab(t, false)
	u := user("grace")
	key, opts, now := tb.enrollTOTP(u)
	tb.signOut()

	tb.signIn(u)
	next, _ := totp.GenerateCodeCustom(key.Secret(), now.Add(time.Duration(key.Period())*time.Second), opts)
	tb.do(chromedp.Click(chromedp.CSS(`form:has(#totp-code) input[name="remember"]`)))
	tb.enter("#totp-code", next, chromedp.Submit(chromedp.CSS("#totp-code")))
	tb.waitBody("Account of " + u)
	first := tb.deviceCookie()
	tb.checkDeviceCookie(first)
	tb.signOut()

	tb.signIn(u)
	tb.waitBody("this browser is remembered")
	tb.waitBody("Account of " + u)
	rotated := tb.deviceCookie()
	tb.checkDeviceCookie(rotated)
	if rotated.Value == first.Value {
		t.Fatal("the remembered sign-in did not rotate the device token")
	}
	// The cookie lives for the token's remaining time (Max-Age, in whole seconds).
	if d := rotated.Expires - first.Expires; d > 2 || d < -2 {
		t.Fatalf("rotation moved the absolute expiry by %.0f s", d)
	}

	tb.waitBody("Chrome on Linux")
	// form.submit() skips the page's confirm(), which headless Chromium would leave open.
	tb.do(chromedp.Evaluate[chromedp.Void](`document.querySelector('form[action="/account/devices/revoke"]').submit()`))
	tb.waitBody("Forgotten")
	tb.waitBody("No remembered browser")
	ds, err := f.tp.c.Enrollment.ListRememberedDevices(context.Background(), &pb.ListRememberedDevicesRequest{UserId: u})
	if err != nil || len(ds.GetDevices()) != 0 {
		t.Fatalf("after Forget authd still remembers %d devices (%v)", len(ds.GetDevices()), err)
	}
	tb.signOut()

	tb.signIn(u)
	tb.waitBody("Second factor")
	tb.do(chromedp.WaitVisible(chromedp.CSS("#totp-code")))
	if c := tb.deviceCookie(); c != nil {
		t.Fatalf("the forgotten browser's device cookie is still there: %+v", c)
	}
}
