package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/makiuchi-d/gozxing"
	qrdecode "github.com/makiuchi-d/gozxing/qrcode"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
)

const (
	envBrowser  = "TWOFACTOR_E2E_BROWSER"  // "required": a missing Chromium fails the run (.ci/run)
	envChromium = "TWOFACTOR_E2E_CHROMIUM" // the browser binary (default /usr/bin/chromium)
)

func chromiumPath(t *testing.T) string {
	t.Helper()
	candidates := []string{os.Getenv(envChromium), "/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	if os.Getenv(envBrowser) == "required" {
		t.Fatalf("Chromium is not installed (%s=required): apt-get install -y chromium", envBrowser)
	}
	t.Skipf("Chromium is not installed: skipping the browser tests (apt-get install -y chromium; %s=required makes this a failure)", envBrowser)
	return ""
}

// browser is one headless Chromium with a fresh profile, for the whole run.
func (tp *topology) testBrowser(t *testing.T) {
	bin := chromiumPath(t)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1100, 1400),
	)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	if err := chromedp.Do(browser); err != nil { // starts the browser
		t.Fatalf("start %s: %v", bin, err)
	}
	b := &flows{tp: tp, browser: browser}
	t.Run("TOTPEnrollAndLogin", b.totp)
	t.Run("SecurityKey", b.securityKey)
	t.Run("PasskeyWithoutUserName", b.passkey)
	t.Run("BackupCodes", b.backupCodes)
	t.Run("AdminCode", b.adminCode)
	t.Run("AppPassword", b.appPassword)
	t.Run("PushApprovedOnDevicePage", b.push)
	t.Run("RememberThisBrowser", b.remember)
	t.Run("EmailCode", b.emailCode)
	t.Run("SMSCode", b.phoneCode("sms"))
	t.Run("SignalCode", b.phoneCode("signal"))
	t.Run("TelegramCode", b.telegramCode)
}

type flows struct {
	tp      *topology
	browser context.Context
}

// tab is a page in its own browser context (no cookies shared with other
// tests), with the DevTools WebAuthn domain on and, if asked, a virtual
// platform authenticator: CTAP2.1, internal transport, resident keys and user
// verification. On failure it saves a screenshot to the artifacts folder.
type tab struct {
	t    *testing.T
	ctx  context.Context
	url  string
	auth webauthn.AuthenticatorID
}

func (f *flows) tab(t *testing.T, authenticator bool) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(f.browser, chromedp.WithNewBrowserContext())
	tb := &tab{t: t, ctx: ctx, url: f.tp.demoURL}
	t.Cleanup(cancel)
	t.Cleanup(func() { // runs before cancel: the tab is still there
		if !t.Failed() {
			return
		}
		sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
		defer scancel()
		shot, err := chromedp.Run(sctx, chromedp.FullScreenshot(80))
		if err != nil {
			t.Logf("screenshot: %v", err)
			return
		}
		path := filepath.Join(f.tp.artifacts, strings.ReplaceAll(t.Name(), "/", "_")+".jpg")
		if err := os.WriteFile(path, shot, 0o600); err == nil {
			t.Logf("screenshot of the failure: %s", path)
		}
	})
	// The tab opens on the first run, and lives as long as that run's context:
	// this one, without a deadline (later runs get theirs).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	tb.do(chromedp.Navigate(tb.url + "/signin"))
	cctx, ccancel := context.WithTimeout(ctx, 20*time.Second)
	defer ccancel()
	if _, err := chromedp.Call(cctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		t.Fatalf("WebAuthn.enable: %v", err)
	}
	if authenticator {
		res, err := chromedp.Call(cctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: webauthn.Ctap2versionCtap21,
			Transport: webauthn.AuthenticatorTransportInternal, HasResidentKey: true, HasUserVerification: true,
			IsUserVerified: true, AutomaticPresenceSimulation: true,
		}})
		if err != nil {
			t.Fatalf("WebAuthn.addVirtualAuthenticator: %v", err)
		}
		tb.auth = res.AuthenticatorID
	}
	return tb
}

// do runs the steps with a deadline, failing the test on an error.
func (tb *tab) do(steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		loc, _ := chromedp.Run(tb.ctx, chromedp.Location())
		tb.t.Fatalf("at %s: %v", loc, err)
	}
}

func (tb *tab) text(sel string) string {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		tb.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// enter clears the field sel, types v into it and runs then (a submit or a
// click), once the document has loaded.
//
// chromedp keeps its own copy of the page's DOM and fetches it again on each
// DOM.documentUpdated, which retires every node id it handed out; Chromium
// sends one while a document loads (CI saw "Could not find node with given id"
// from a code typed into a page that showed its text but had not loaded). So
// enter waits for the loaded document, and should a refresh still retire the
// node between the query and the keys, it starts over: the field is cleared
// first (by the page's own querySelector, which holds no node id), so v is
// typed once.
func (tb *tab) enter(sel, v string, then ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	steps := append([]chromedp.Action[chromedp.Void]{
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`{ const e = document.querySelector(%q); if (e) e.value = ""; }`, sel)),
		chromedp.SendKeys(chromedp.CSS(sel), v),
	}, then...)
	for attempt := 1; ; attempt++ {
		tb.waitLoaded("true")
		ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
		err := chromedp.Do(ctx, steps...)
		cancel()
		if err == nil {
			return
		}
		var e *cdproto.Error
		if !errors.As(err, &e) || e.Message != "Could not find node with given id" || attempt == 3 {
			loc, _ := chromedp.Run(tb.ctx, chromedp.Location())
			tb.t.Fatalf("at %s, entering %s: %v", loc, sel, err)
		}
		tb.t.Logf("entering %s: %v (attempt %d): again", sel, err, attempt)
	}
}

// waitBody waits until the loaded page shows s. It asks again every 100 ms
// rather than using a page-side poll, which a navigation in between would end;
// a page that shows s but is still loading is not yet the page to act on (see
// enter).
func (tb *tab) waitBody(s string) {
	tb.t.Helper()
	expr := fmt.Sprintf("document.readyState === 'complete' && !!document.body && document.body.innerText.includes(%q)", s)
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(tb.ctx, 2*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			body, _ := chromedp.Run(tb.ctx, chromedp.Evaluate[string]("document.body ? document.body.innerText : ''"))
			loc, _ := chromedp.Run(tb.ctx, chromedp.Location())
			tb.t.Fatalf("at %s the page does not show %q (%v):\n%s", loc, s, err, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// signIn submits the name and returns once the next page has loaded: a step
// that queried the page while the sign-in page was being replaced could hold a
// node of the old document ("Could not find node with given id").
func (tb *tab) signIn(user string) {
	tb.t.Helper()
	tb.do(chromedp.Navigate(tb.url+"/signin"), chromedp.WaitVisible(chromedp.CSS("#name")))
	tb.enter("#name", user, chromedp.Evaluate[chromedp.Void](`window.__signinPage = true`), chromedp.Submit(chromedp.CSS("#name")))
	tb.waitLoaded(`!window.__signinPage`)
}

// waitLoaded waits until cond holds in a fully loaded document.
func (tb *tab) waitLoaded(cond string) {
	tb.t.Helper()
	expr := "document.readyState === 'complete' && (" + cond + ")"
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(tb.ctx, 2*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			loc, _ := chromedp.Run(tb.ctx, chromedp.Location())
			tb.t.Fatalf("at %s: no new page loaded (%v)", loc, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (tb *tab) signOut() {
	tb.t.Helper()
	tb.do(chromedp.Click(chromedp.CSS(`form[action="/signout"] button`)))
	tb.waitBody("Signed out.")
}

func user(kind string) string { return kind + "-" + randomHex(4) }

// TOTP: the QR code read off the page, codes computed from it, enrollment and
// a login whose code field names the code's length.
func (f *flows) totp(t *testing.T) {
	tb := f.tab(t, false)
	u := user("alice")
	key, opts, now := tb.enrollTOTP(u)
	tb.signOut()

	tb.signIn(u)
	tb.waitBody(fmt.Sprintf("%d-digit code", key.Digits()))
	// The enrollment's code is spent; the next step's is accepted (skew 1).
	next, _ := totp.GenerateCodeCustom(key.Secret(), now.Add(time.Duration(key.Period())*time.Second), opts)
	tb.enter("#totp-code", next, chromedp.Submit(chromedp.CSS("#totp-code")))
	tb.waitBody("Account of " + u)
}

// enrollTOTP signs u in (no factor yet) and adds an authenticator app from the
// QR code on the page; it returns the key and the time of the spent code.
func (tb *tab) enrollTOTP(u string) (*otp.Key, totp.ValidateOpts, time.Time) {
	t := tb.t
	t.Helper()
	tb.signIn(u)
	tb.waitBody("Account of " + u)
	tb.enter("#totp-name", "Phone", chromedp.Submit(chromedp.CSS("#totp-name")))
	tb.do(chromedp.WaitVisible(chromedp.CSS("img.qr")))
	src, err := chromedp.Run(tb.ctx, chromedp.AttributeValue(chromedp.CSS("img.qr"), "src"))
	if err != nil {
		t.Fatal(err)
	}
	key := decodeQRDataURL(t, src.Value)
	if key.Issuer() == "" || !strings.Contains(key.AccountName(), u) {
		t.Fatalf("the QR code's otpauth URI names %q / %q", key.Issuer(), key.AccountName())
	}
	opts := totp.ValidateOpts{Period: uint(key.Period()), Digits: key.Digits(), Algorithm: key.Algorithm()}
	now := time.Now()
	code, err := totp.GenerateCodeCustom(key.Secret(), now, opts)
	if err != nil {
		t.Fatal(err)
	}
	tb.enter("#code", code, chromedp.Submit(chromedp.CSS("#code")))
	tb.waitBody("Authenticator app added")
	return key, opts, now
}

func decodeQRDataURL(t *testing.T, src string) *otp.Key {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(src, "data:image/png;base64,"))
	if err != nil {
		t.Fatalf("QR image: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("QR image: %v", err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := qrdecode.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		t.Fatalf("the QR code on the page does not decode: %v", err)
	}
	key, err := otp.NewKeyFromURL(res.GetText())
	if err != nil {
		t.Fatalf("QR code %q: %v", res.GetText(), err)
	}
	return key
}

func (f *flows) pendingFactors(t *testing.T, u string) int {
	t.Helper()
	fs, err := f.tp.c.Enrollment.ListFactors(context.Background(), &pb.ListFactorsRequest{UserId: u})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, x := range fs.GetFactors() {
		if x.GetState() == pb.FactorState_FACTOR_STATE_PENDING {
			n++
		}
	}
	return n
}

// A security key: registered, refused a second time (excludeCredentials) without
// leaving a pending factor, used to sign in, and a prompt cancelled.
func (f *flows) securityKey(t *testing.T) {
	tb := f.tab(t, true)
	u := user("bob")
	tb.signIn(u)
	tb.waitBody("Account of " + u)
	tb.enter("#wa-name", "YubiKey", chromedp.Click(chromedp.CSS("#webauthn-enroll button")))
	tb.waitBody("Security key added")

	tb.enter("#wa-name", "Again", chromedp.Click(chromedp.CSS("#webauthn-enroll button")))
	tb.waitBody("already registered")
	if n := f.pendingFactors(t, u); n != 0 {
		t.Fatalf("the refused registration left %d pending factors", n)
	}
	tb.signOut()

	tb.signIn(u)
	tb.do(chromedp.WaitVisible(chromedp.CSS("#webauthn-signin")), chromedp.Click(chromedp.CSS("#webauthn-signin")))
	tb.waitBody("Account of " + u)
	tb.signOut()

	// With nobody touching the key, the prompt waits; Cancel ends it.
	cctx, ccancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer ccancel()
	if _, err := chromedp.Call(cctx, webauthn.SetAutomaticPresenceSimulation, webauthn.SetAutomaticPresenceSimulationParams{AuthenticatorID: tb.auth, Enabled: false}); err != nil {
		t.Fatal(err)
	}
	tb.signIn(u)
	tb.do(chromedp.WaitVisible(chromedp.CSS("#webauthn-signin")), chromedp.Click(chromedp.CSS("#webauthn-signin")),
		chromedp.WaitVisible(chromedp.CSS("#webauthn-cancel")), chromedp.Click(chromedp.CSS("#webauthn-cancel")))
	tb.waitBody("Cancelled")
}

// A passkey signs in from the sign-in page without a user name.
func (f *flows) passkey(t *testing.T) {
	tb := f.tab(t, true)
	u := user("carol")
	tb.signIn(u)
	tb.waitBody("Account of " + u)
	tb.do(chromedp.Click(chromedp.CSS("#wa-discoverable")))
	tb.enter("#wa-name", "Laptop", chromedp.Click(chromedp.CSS("#webauthn-enroll button")))
	tb.waitBody("Security key added")
	tb.signOut()
	tb.do(chromedp.Navigate(tb.url+"/signin"), chromedp.WaitVisible(chromedp.CSS("#passkey-signin")),
		chromedp.Click(chromedp.CSS("#passkey-signin")))
	tb.waitBody("Account of " + u)
}

// Backup codes: issued on the account page, one signs in once.
func (f *flows) backupCodes(t *testing.T) {
	tb := f.tab(t, false)
	u := user("dave")
	tb.signIn(u)
	tb.waitBody("Account of " + u)
	// form.submit() skips the page's "replace the old codes?" confirm(), which
	// headless Chromium would leave open.
	tb.do(chromedp.Evaluate[chromedp.Void](`document.querySelector('form[action="/account/backup-codes"]').submit()`),
		chromedp.WaitVisible(chromedp.CSS("ul.codes")))
	code := strings.TrimSpace(tb.text("ul.codes li:first-child code"))
	tb.signOut()
	tb.signIn(u)
	tb.enter("#backup-code", code, chromedp.Submit(chromedp.CSS("#backup-code")))
	tb.waitBody("9 of 10 left")
	tb.signOut()
	tb.signIn(u)
	tb.enter("#backup-code", code, chromedp.Submit(chromedp.CSS("#backup-code")))
	tb.waitBody("already used")
}

// An admin code, issued by a full admin over the API, signs a user in.
func (f *flows) adminCode(t *testing.T) {
	ctx := context.Background()
	u, root := user("erin"), user("root")
	if _, err := f.tp.c.Enrollment.IssueBackupCodes(ctx, &pb.IssueBackupCodesRequest{UserId: u}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.tp.c.Admin.SetUserGroups(ctx, &pb.SetUserGroupsRequest{UserId: root, Groups: []string{"admin"}}); err != nil {
		t.Fatal(err)
	}
	ac, err := f.tp.c.Admin.IssueAdminBackupCode(ctx, &pb.IssueAdminBackupCodeRequest{ActorId: root, UserId: u})
	if err != nil {
		t.Fatal(err)
	}
	tb := f.tab(t, false)
	tb.signIn(u)
	tb.enter("#admin-code", ac.GetCode(), chromedp.Submit(chromedp.CSS("#admin-code")))
	tb.waitBody("Account of " + u)
}

// An app password issued on the account page verifies over the API.
func (f *flows) appPassword(t *testing.T) {
	tb := f.tab(t, false)
	u := user("frank")
	tb.signIn(u)
	tb.waitBody("Account of " + u)
	sel := `form[action="/account/app-passwords"] input[name="name"]`
	tb.enter(sel, "Thunderbird", chromedp.Submit(chromedp.CSS(sel)))
	tb.do(chromedp.WaitVisible(chromedp.CSS("code.big")))
	pw := strings.TrimSpace(tb.text("code.big"))
	v, err := f.tp.c.AppPasswords.VerifyAppPassword(context.Background(), &pb.VerifyAppPasswordRequest{Login: u, Password: pw})
	if err != nil || !v.GetValid() {
		t.Fatalf("the issued app password does not verify: %v %v", v, err)
	}
}

// Push approval: the account page enrolls a device; a second browser context (the
// "phone") opens the demo's device page, enrolls with the token (a non-extractable
// WebCrypto key in its IndexedDB) and polls; the sign-in page sends the push and
// shows the number, the device shows the login's context, the number is typed
// there, and the waiting sign-in page lands on the account.
func (f *flows) push(t *testing.T) {
	tb := f.tab(t, false)
	u := user("pia")
	tb.signIn(u)
	tb.waitBody("Account of " + u)
	tb.do(chromedp.Click(chromedp.CSS("#push-enroll")), chromedp.WaitVisible(chromedp.CSS("#push-token")))
	link := strings.TrimSpace(tb.text("#push-uri"))
	if !strings.Contains(link, "vapid=") {
		t.Fatalf("enrollment link %q names no VAPID key", link)
	}

	// The phone pastes the enrollment link: it tries Web Push with the VAPID key
	// and, without a push service (headless Chromium has none), enrolls poll only.
	phone := f.tab(t, false)
	phone.do(chromedp.Navigate(phone.url+"/device"), chromedp.WaitVisible(chromedp.CSS("#device-token")))
	phone.enter("#device-token", link, chromedp.Click(chromedp.CSS("#device-enroll button")))
	phone.waitBody("Enrolled for " + u)
	phone.checkDelivery()

	tb.signOut()
	tb.signIn(u)
	tb.do(chromedp.WaitVisible(chromedp.CSS("#push-signin")), chromedp.Click(chromedp.CSS("#push-signin")),
		chromedp.WaitVisible(chromedp.CSS("#push-number-value")))
	number := strings.TrimSpace(tb.text("#push-number-value"))

	phone.waitBody("Sign-in to demo-web")
	phone.enter("#device-number", number, chromedp.Click(chromedp.CSS("#device-approve")))
	phone.waitBody("Approved.")
	tb.waitBody("Account of " + u)
}

// checkDelivery asserts the path the device page took: Web Push where the
// browser has a push service, otherwise polling for the reason the browser
// gives (never for want of the VAPID key, which the enrollment link carries).
func (tb *tab) checkDelivery() {
	tb.t.Helper()
	type delivery struct {
		Delivery, Why, Text string
		PushAPI             bool
	}
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	got, err := chromedp.Run(ctx, chromedp.Evaluate[delivery](`(() => {
		const el = document.getElementById("device-delivery");
		return {Delivery: el.dataset.delivery || "", Why: el.dataset.why || "", Text: el.textContent,
			PushAPI: "serviceWorker" in navigator && "PushManager" in window};
	})()`))
	if err != nil {
		tb.t.Fatalf("device page delivery: %v", err)
	}
	want := "no-push-api"
	if got.PushAPI {
		want = "no-push-service"
	}
	switch {
	case got.Delivery == "webpush" && got.Why == "":
		tb.t.Logf("device page: Web Push (%s)", got.Text)
	case got.Delivery == "poll" && got.Why == want:
		tb.t.Logf("device page: polling (%s)", got.Text)
	default:
		tb.t.Fatalf("device page delivery %+v: want webpush, or poll because %s", got, want)
	}
}
