package demo_test

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twofactor/twofactor/clients/client"
	"github.com/twofactor/twofactor/clients/demo"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/totp"
	"github.com/twofactor/twofactor/providers/webauthn/softauthn"
	"github.com/twofactor/twofactor/server/app"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// breachedPassword is in the fake Pwned Passwords range API below, 42 times.
const breachedPassword = "correct horse battery staple"

// fixture is an embedded authd and the demo in front of it, on real sockets.
type fixture struct {
	origin  string
	c       *client.Client
	dataDir string // authd's: embedded mode delivers codes to <dataDir>/outbox
}

func start(t *testing.T, authdFlags ...string) *fixture {
	t.Helper()
	// The demo's listener comes first: its origin is authd's allowed WebAuthn origin.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	origin := "http://" + ln.Addr().String()

	sum := sha1.Sum([]byte(breachedPassword))
	hexSum := strings.ToUpper(hex.EncodeToString(sum[:]))
	pwned := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/range/"+hexSum[:5] {
			fmt.Fprintf(w, "0018A45C4D1DEF81644B54AB7F969B88D65:1\r\n%s:42\r\n", hexSum[5:])
			return
		}
		fmt.Fprint(w, "0018A45C4D1DEF81644B54AB7F969B88D65:1\r\n")
	}))
	t.Cleanup(pwned.Close)

	dataDir := t.TempDir()
	cfg, err := app.Parse("authd", append([]string{
		"-data-dir", dataDir, "-listen", "127.0.0.1:0", "-metrics-listen", "", "-database-url", storagetest.URL(t),
		"-webauthn-origins", origin, "-breached-url", pwned.URL,
	}, authdFlags...), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	key, err := client.FindAPIKey("", dataDir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(client.Options{Addr: a.Addr(), APIKey: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })

	h, err := demo.New(demo.Config{Client: c, Origin: origin, AuthdAddr: a.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: h}}
	srv.Start()
	t.Cleanup(srv.Close)
	return &fixture{origin: origin, c: c, dataDir: dataDir}
}

// browser is a cookie-keeping HTTP client that sends the Origin a browser would.
type browser struct {
	t      *testing.T
	f      *fixture
	hc     *http.Client
	origin string
	// remember ticks "Remember this browser" at a security-key sign-in.
	remember bool
}

func (f *fixture) browser(t *testing.T) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, f: f, hc: &http.Client{Jar: jar}, origin: f.origin}
}

type page struct {
	status int
	url    string
	body   string
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, url: resp.Request.URL.Path, body: string(body)}
}

func (b *browser) get(path string) page {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.f.origin+path, nil)
	return b.do(req)
}

func (b *browser) post(path string, form url.Values) page {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.f.origin+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if b.origin != "" {
		req.Header.Set("Origin", b.origin)
	}
	return b.do(req)
}

// answer is the demo's JSON answer.
type answer struct {
	OK       bool            `json:"ok"`
	Result   string          `json:"result"`
	Message  string          `json:"message"`
	Redirect string          `json:"redirect"`
	FactorID string          `json:"factorId"`
	Options  json.RawMessage `json:"options"`
}

func (b *browser) postJSON(path string, v any) answer {
	b.t.Helper()
	body, _ := json.Marshal(v)
	req, _ := http.NewRequest(http.MethodPost, b.f.origin+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", b.origin)
	p := b.do(req)
	var a answer
	if err := json.Unmarshal([]byte(p.body), &a); err != nil {
		b.t.Fatalf("POST %s: %d %q is not JSON: %v", path, p.status, p.body, err)
	}
	return a
}

func (p page) must(t *testing.T, path string, contains ...string) page {
	t.Helper()
	if p.status != http.StatusOK || p.url != path {
		t.Fatalf("got %d at %s, want 200 at %s:\n%s", p.status, p.url, path, p.body)
	}
	for _, c := range contains {
		if !strings.Contains(p.body, c) {
			t.Fatalf("page %s lacks %q:\n%s", path, c, p.body)
		}
	}
	return p
}

func (p page) find(t *testing.T, re string) string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("page %s: no match for %s:\n%s", p.url, re, p.body)
	}
	return m[1]
}

func (b *browser) signIn(name string) page {
	b.t.Helper()
	return b.post("/signin", url.Values{"name": {name}})
}

func (b *browser) signOut() {
	b.t.Helper()
	b.post("/signout", nil).must(b.t, "/signin", "Signed out.")
	if p := b.get("/account"); p.url != "/signin" {
		b.t.Fatalf("after sign-out /account went to %s", p.url)
	}
}

func TestTOTPEnrollAndSignIn(t *testing.T) {
	f := start(t)
	b := f.browser(t)
	b.signIn("alice").must(t, "/account", "Account of alice", "Signed in without a second factor")

	p := b.post("/account/totp", url.Values{"name": {"Phone"}}).must(t, "/account/totp", "data:image/png;base64,")
	secret := strings.ReplaceAll(p.find(t, `Secret: <code class="big">([A-Z2-7 ]+)</code>`), " ", "")
	factorID := p.find(t, `name="factor_id" value="([0-9a-f-]{36})"`)
	seed, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
	if err != nil {
		t.Fatal(err)
	}
	params := totp.Params{Algorithm: "SHA1", Digits: 6, Period: 30}
	now := time.Now()
	code, _ := totp.CodeAt(seed, params, now)
	wrong := string('0'+(code[0]-'0'+1)%10) + code[1:]

	// A wrong code shows the code field again, without the secret.
	p = b.post("/account/totp/finish", url.Values{"factor_id": {factorID}, "code": {wrong}})
	if p.status != http.StatusBadRequest || !strings.Contains(p.body, "wrong code") || strings.Contains(p.body, secret[:8]) {
		t.Fatalf("wrong enrollment code: %d\n%s", p.status, p.body)
	}
	b.post("/account/totp/finish", url.Values{"factor_id": {factorID}, "code": {code}}).
		must(t, "/account", "Authenticator app added", "Phone", "active")
	b.signOut()

	b.signIn("alice").must(t, "/signin/second", "Signing in as <strong>alice</strong>", "Authenticator app")
	b.post("/signin/code", url.Values{"method": {"totp"}, "code": {wrong}}).
		must(t, "/signin/code", "Rejected: wrong code.", "4 more tries on this challenge")
	b.post("/signin/code", url.Values{"method": {"totp"}, "code": {code}}).
		must(t, "/signin/code", "already used", "3 more tries")
	next, _ := totp.CodeAt(seed, params, now.Add(30*time.Second))
	b.post("/signin/code", url.Values{"method": {"totp"}, "code": {next}}).must(t, "/account", "Account of alice")

	// Rename, then remove the factor.
	b.post("/account/factors/rename", url.Values{"id": {factorID}, "name": {"Old phone"}}).must(t, "/account", "Renamed.", `value="Old phone"`)
	b.post("/account/factors/remove", url.Values{"id": {factorID}}).must(t, "/account", "Removed.", "No second factor yet")
	b.post("/account/factors/remove", url.Values{"id": {factorID}})
	if p := b.post("/account/factors/remove", url.Values{"id": {factorID}}); p.status != http.StatusNotFound || !strings.Contains(p.body, "Removing the factor: not found") {
		t.Fatalf("remove twice: %d\n%s", p.status, p.body)
	}
}

// The code field names the length of the user's codes: 8 on an 8-digit
// deployment (issue 17: it said "6-digit code" whatever the deployment).
func TestCodeLabelFollowsTOTPDigits(t *testing.T) {
	f := start(t, "-totp-digits", "8")
	b := f.browser(t)
	b.signIn("dora").must(t, "/account")
	p := b.post("/account/totp", url.Values{"name": {"Phone"}}).must(t, "/account/totp", "8 digits")
	secret := strings.ReplaceAll(p.find(t, `Secret: <code class="big">([A-Z2-7 ]+)</code>`), " ", "")
	factorID := p.find(t, `name="factor_id" value="([0-9a-f-]{36})"`)
	seed, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
	if err != nil {
		t.Fatal(err)
	}
	code, _ := totp.CodeAt(seed, totp.Params{Algorithm: "SHA1", Digits: 8, Period: 30}, time.Now())
	b.post("/account/totp/finish", url.Values{"factor_id": {factorID}, "code": {code}}).must(t, "/account", "Authenticator app added")
	b.signOut()
	p = b.signIn("dora").must(t, "/signin/second", `<label for="totp-code">8-digit code</label>`)
	if strings.Contains(p.body, "6-digit") {
		t.Fatalf("an 8-digit deployment's code field says 6 digits:\n%s", p.body)
	}
}

func newAuthenticator(t *testing.T, o softauthn.Options) *softauthn.Authenticator {
	t.Helper()
	a, err := softauthn.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// enrollKey registers the authenticator through the demo's JSON endpoints, as
// demo.js does with navigator.credentials.create.
func (b *browser) enrollKey(a *softauthn.Authenticator, name string, discoverable bool) {
	b.t.Helper()
	begin := b.postJSON("/account/webauthn/begin", map[string]any{"name": name, "discoverable": discoverable})
	if !begin.OK || begin.FactorID == "" || len(begin.Options) == 0 {
		b.t.Fatalf("webauthn begin: %+v", begin)
	}
	cred, _, err := a.Register(begin.Options, b.f.origin)
	if err != nil {
		b.t.Fatalf("Register: %v", err)
	}
	fin := b.postJSON("/account/webauthn/finish", map[string]any{"factorId": begin.FactorID, "credential": json.RawMessage(cred)})
	if !fin.OK || fin.Redirect != "/account?done=webauthn" {
		b.t.Fatalf("webauthn finish: %+v", fin)
	}
}

// assert runs the browser half of a WebAuthn sign-in and returns the demo's answer.
func (b *browser) assert(a *softauthn.Authenticator, passkey bool, o softauthn.AssertOptions) answer {
	b.t.Helper()
	begin := b.postJSON("/signin/webauthn/begin", map[string]any{"passkey": passkey})
	if !begin.OK {
		b.t.Fatalf("webauthn sign-in begin: %+v", begin)
	}
	resp, err := a.Assert(begin.Options, b.f.origin, o)
	if err != nil {
		b.t.Fatalf("Assert: %v", err)
	}
	path := "/signin/webauthn/finish"
	if b.remember {
		path += "?remember=1"
	}
	return b.postJSON(path, json.RawMessage(resp))
}

func TestSecurityKeySignIn(t *testing.T) {
	f := start(t)
	b := f.browser(t)
	key := newAuthenticator(t, softauthn.Options{})
	b.signIn("bob").must(t, "/account")
	b.enrollKey(key, "YubiKey", false)
	b.get("/account").must(t, "/account", `value="YubiKey"`, "security key", "active")
	b.signOut()

	b.signIn("bob").must(t, "/signin/second", "Use my security key")
	// A phishing origin is refused by authd, and the demo says why.
	if a := b.assert(key, false, softauthn.AssertOptions{Origin: "http://evil.example"}); a.OK || a.Result != "rejected" || !strings.Contains(a.Message, "failed a check") {
		t.Fatalf("wrong-origin assertion: %+v", a)
	}
	if p := b.get("/account"); p.url != "/signin" {
		t.Fatalf("a refused assertion signed in: %s", p.url)
	}
	a := b.assert(key, false, softauthn.AssertOptions{})
	if !a.OK || a.Result != "accepted" || a.Redirect != "/account" {
		t.Fatalf("assertion: %+v", a)
	}
	b.get("/account").must(t, "/account", "Account of bob")

	// Finishing with no open challenge is a clear error, not a sign-in.
	if a := b.postJSON("/signin/webauthn/finish", json.RawMessage(`{}`)); a.OK || !strings.Contains(a.Message, "No security key check is open") {
		t.Fatalf("finish without begin: %+v", a)
	}
}

// A registration the browser gives up on (a key refused by excludeCredentials,
// a cancelled prompt) is cancelled, and leaves no pending factor row; a
// cancel names only the user's own pending WebAuthn enrollments.
func TestWebAuthnCancelDropsPendingFactor(t *testing.T) {
	f := start(t)
	b := f.browser(t)
	b.signIn("gus").must(t, "/account")
	b.enrollKey(newAuthenticator(t, softauthn.Options{}), "YubiKey", false)
	begin := b.postJSON("/account/webauthn/begin", map[string]any{"name": "Again"})
	if !begin.OK {
		t.Fatalf("begin: %+v", begin)
	}
	pending := func() (n, active int) {
		fs, err := f.c.Enrollment.ListFactors(context.Background(), &pb.ListFactorsRequest{UserId: "gus"})
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range fs.GetFactors() {
			switch x.GetState() {
			case pb.FactorState_FACTOR_STATE_PENDING:
				n++
			case pb.FactorState_FACTOR_STATE_ACTIVE:
				active++
			}
		}
		return n, active
	}
	if n, _ := pending(); n != 1 {
		t.Fatalf("%d pending factors after begin, want 1", n)
	}
	var activeID string
	fs, _ := f.c.Enrollment.ListFactors(context.Background(), &pb.ListFactorsRequest{UserId: "gus"})
	for _, x := range fs.GetFactors() {
		if x.GetState() == pb.FactorState_FACTOR_STATE_ACTIVE {
			activeID = x.GetId()
		}
	}
	if a := b.postJSON("/account/webauthn/cancel", map[string]any{"factorId": activeID}); !a.OK {
		t.Fatalf("cancel of an active factor: %+v", a)
	}
	if a := b.postJSON("/account/webauthn/cancel", map[string]any{"factorId": begin.FactorID}); !a.OK {
		t.Fatalf("cancel: %+v", a)
	}
	if n, active := pending(); n != 0 || active != 1 {
		t.Fatalf("after cancel: %d pending, %d active factors; want 0 and 1 (the active key stays)", n, active)
	}

	// Signed out, the script's endpoints answer 401 and send the page to /signin.
	b.signOut()
	for _, path := range []string{"/account/webauthn/begin", "/account/webauthn/finish", "/account/webauthn/cancel", "/account/telegram/status"} {
		if st, out := b.rawJSON(path, map[string]any{"factorId": activeID}); st != http.StatusUnauthorized || out["redirect"] != "/signin" {
			t.Errorf("signed out, POST %s: %d %v; want 401 and redirect /signin", path, st, out)
		}
	}
	if n, active := pending(); n != 0 || active != 1 {
		t.Fatalf("signed out, the endpoints changed factors: %d pending, %d active", n, active)
	}
}

func TestPasskeyUsernameless(t *testing.T) {
	f := start(t)
	b := f.browser(t)
	pk := newAuthenticator(t, softauthn.Options{Discoverable: true, UV: true, BackupEligible: true})
	b.signIn("carol").must(t, "/account")
	b.enrollKey(pk, "Laptop", true)
	b.get("/account").must(t, "/account", "passkey")

	// A fresh browser, no name typed.
	fresh := f.browser(t)
	a := fresh.assert(pk, true, softauthn.AssertOptions{})
	if !a.OK || a.Result != "accepted" || !strings.HasPrefix(a.Redirect, "/account") {
		t.Fatalf("passkey sign-in: %+v", a)
	}
	fresh.get("/account").must(t, "/account", "Account of carol")

	// A security key that is not discoverable cannot answer a usernameless request.
	other := f.browser(t)
	begin := other.postJSON("/signin/webauthn/begin", map[string]any{"passkey": true})
	if _, err := newAuthenticator(t, softauthn.Options{}).Assert(begin.Options, f.origin, softauthn.AssertOptions{}); err == nil {
		t.Fatal("an empty authenticator answered a passkey request")
	}
}

func TestBackupAndAdminCodes(t *testing.T) {
	f := start(t)
	b := f.browser(t)
	b.signIn("dave").must(t, "/account")
	p := b.post("/account/backup-codes", nil).must(t, "/account/backup-codes", "shown only once")
	codes := regexp.MustCompile(`<li><code>([0-9A-Z]{5}-[0-9A-Z]{5})</code></li>`).FindAllStringSubmatch(p.body, -1)
	if len(codes) != 10 {
		t.Fatalf("%d backup codes on the page:\n%s", len(codes), p.body)
	}
	b.signOut()

	b.signIn("dave").must(t, "/signin/second", "Backup code", "Locked out?")
	b.post("/signin/code", url.Values{"method": {"backup_code"}, "code": {strings.ToLower(codes[0][1])}}).
		must(t, "/account", "Account of dave", "9 of 10 left")
	b.signOut()

	// An admin issues a one-time code (as authctl admin code does).
	ctx := context.Background()
	if _, err := f.c.Admin.SetUserGroups(ctx, &pb.SetUserGroupsRequest{UserId: "root", Groups: []string{"admin"}}); err != nil {
		t.Fatal(err)
	}
	ac, err := f.c.Admin.IssueAdminBackupCode(ctx, &pb.IssueAdminBackupCodeRequest{ActorId: "root", UserId: "dave"})
	if err != nil {
		t.Fatal(err)
	}
	b.signIn("dave").must(t, "/signin/second", "Admin code")
	b.post("/signin/code", url.Values{"method": {"backup_code"}, "code": {codes[0][1]}}).
		must(t, "/signin/code", "Rejected: this code was already used")
	b.post("/signin/code", url.Values{"method": {"admin_code"}, "code": {ac.GetCode()}}).must(t, "/account", "Account of dave")
}

func TestAppPasswordsAndBreachedCheck(t *testing.T) {
	f := start(t)
	b := f.browser(t)
	b.signIn("erin").must(t, "/account")
	p := b.post("/account/app-passwords", url.Values{"name": {"Thunderbird"}, "read_only": {"1"}}).must(t, "/account/app-passwords", "shown only once", "read-only")
	pw := p.find(t, `<code class="big">(tfap_[^<]+)</code>`)
	v, err := f.c.AppPasswords.VerifyAppPassword(context.Background(), &pb.VerifyAppPasswordRequest{Login: "erin", Password: pw})
	if err != nil || !v.GetValid() || !v.GetScope().GetReadOnly() {
		t.Fatalf("verify the issued app password: %v %v", v, err)
	}
	id := b.get("/account").must(t, "/account", "Thunderbird").find(t, `action="/account/app-passwords/revoke"[^>]*>\s*<input type="hidden" name="id" value="([0-9a-f-]{36})"`)
	b.post("/account/app-passwords/revoke", url.Values{"id": {id}}).must(t, "/account", "App password revoked.")
	if strings.Contains(b.get("/account").body, "<td>Thunderbird</td>") {
		t.Fatal("revoked app password still listed")
	}

	b.post("/account/password-check", url.Values{"password": {breachedPassword}}).must(t, "/account/password-check", "appears in known breaches 42 times")
	p = b.post("/account/password-check", url.Values{"password": {"a7f3 unlikely passphrase"}}).must(t, "/account/password-check", "Not found in known breaches")
	if strings.Contains(p.body, "unlikely passphrase") {
		t.Fatal("the checked password is echoed")
	}
}

func TestCrossOriginRefused(t *testing.T) {
	f := start(t)
	b := f.browser(t)
	b.signIn("frank").must(t, "/account")
	b.post("/account/backup-codes", nil).must(t, "/account/backup-codes")

	cases := []struct {
		name   string
		header map[string]string
		path   string
	}{
		{"other origin", map[string]string{"Origin": "http://evil.example"}, "/account/backup-codes"},
		{"null origin", map[string]string{"Origin": "null"}, "/account/backup-codes"},
		{"same host other port", map[string]string{"Origin": "http://127.0.0.1:1"}, "/signout"},
		{"no origin, foreign referer", map[string]string{"Referer": "http://evil.example/x"}, "/account/backup-codes"},
		{"no origin, no referer", nil, "/signin"},
		{"JSON from elsewhere", map[string]string{"Origin": "http://evil.example", "Content-Type": "application/json"}, "/account/webauthn/begin"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, f.origin+c.path, strings.NewReader("name=frank"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for k, v := range c.header {
				req.Header.Set(k, v)
			}
			p := b.do(req)
			if p.status != http.StatusForbidden || !strings.Contains(p.body, "cross-site request forgery") {
				t.Fatalf("%d\n%s", p.status, p.body)
			}
		})
	}
	// Still signed in with the same backup codes: nothing happened.
	b.get("/account").must(t, "/account", "10 of 10 left")

	// A same-origin Referer without Origin (an old browser) is accepted.
	req, _ := http.NewRequest(http.MethodPost, f.origin+"/signout", nil)
	req.Header.Set("Referer", f.origin+"/account")
	b.do(req).must(t, "/signin", "Signed out.")

	// A form post cannot reach the JSON endpoints.
	p := b.post("/signin/webauthn/begin", url.Values{"passkey": {"true"}})
	if p.status != http.StatusBadRequest || !strings.Contains(p.body, "application/json") {
		t.Fatalf("form post to a JSON endpoint: %d %s", p.status, p.body)
	}
}

func TestSessionCookieAttributes(t *testing.T) {
	f := start(t)
	form := url.Values{"name": {"gina"}}
	req, _ := http.NewRequest(http.MethodPost, f.origin+"/signin", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", f.origin)
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "demo_session" {
			session = c
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Path != "/" || session.Secure {
		t.Fatalf("session cookie %+v", session)
	}
	if strings.Contains(session.Value, "gina") {
		t.Fatal("the cookie value is not encoded")
	}

	// A tampered cookie is no session.
	b := f.browser(t)
	u, _ := url.Parse(f.origin)
	forged := *session
	forged.Value = session.Value[:len(session.Value)-2] + "AA"
	b.hc.Jar.SetCookies(u, []*http.Cookie{&forged})
	if p := b.get("/account"); p.url != "/signin" {
		t.Fatalf("tampered cookie reached %s", p.url)
	}
	b.hc.Jar.SetCookies(u, []*http.Cookie{session})
	b.get("/account").must(t, "/account", "Account of gina")

	// Pages carry the security headers.
	resp, err = http.Get(f.origin + "/signin")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("CSP %q", csp)
	}
}

func TestAuthdDown(t *testing.T) {
	// A port nothing listens on: every call fails with Unavailable.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	c, err := client.Dial(client.Options{Addr: addr, APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h, err := demo.New(demo.Config{Client: c, Origin: "http://localhost:8080", AuthdAddr: addr, RPCTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/signin", strings.NewReader("name=x"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "http://localhost:8080")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "authd is not reachable at "+addr) {
		t.Fatalf("%d\n%s", w.Code, w.Body.String())
	}
}

func TestNewRejectsBadOrigin(t *testing.T) {
	c, err := client.Dial(client.Options{Addr: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, o := range []string{"", "localhost:8080", "ftp://localhost", "http://localhost:8080/path", "http://u@localhost"} {
		if _, err := demo.New(demo.Config{Client: c, Origin: o}); err == nil {
			t.Errorf("origin %q accepted", o)
		}
	}
}

// "Remember this browser": sign in with the box ticked, sign out, sign in again
// without a second factor; forget the browser on the account page, and the next
// sign-in asks again.
func TestRememberThisBrowser(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	if _, err := f.c.Admin.SetUserGroups(ctx, &pb.SetUserGroupsRequest{UserId: "root", Groups: []string{"admin"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.Admin.SetPolicy(ctx, &pb.SetPolicyRequest{ActorId: "root", Policy: &pb.Policy{RememberDevice: true}}); err != nil {
		t.Fatal(err)
	}
	b := f.browser(t)
	b.signIn("erin").must(t, "/account")
	p := b.post("/account/backup-codes", nil).must(t, "/account/backup-codes")
	codes := regexp.MustCompile(`<li><code>([0-9A-Z]{5}-[0-9A-Z]{5})</code></li>`).FindAllStringSubmatch(p.body, -1)
	b.signOut()

	b.signIn("erin").must(t, "/signin/second", "Remember this browser")
	b.post("/signin/code", url.Values{"method": {"backup_code"}, "code": {codes[0][1]}, "remember": {"1"}}).
		must(t, "/account", "Account of erin", "Remembered browsers", "Go HTTP client")
	u, _ := url.Parse(f.origin)
	first := deviceCookie(t, b, u)
	b.signOut()

	b.signIn("erin").must(t, "/account", "this browser is remembered")
	if second := deviceCookie(t, b, u); second == first {
		t.Fatal("the device cookie was not rotated")
	}
	// Another browser with no cookie is asked for the second factor.
	f.browser(t).signIn("erin").must(t, "/signin/second")

	p = b.get("/account").must(t, "/account", "Forget")
	id := p.find(t, `action="/account/devices/revoke" class="inline" data-confirm="Forget this browser\?">\s*<input type="hidden" name="id" value="([0-9a-f-]{36})">`)
	b.post("/account/devices/revoke", url.Values{"id": {id}}).must(t, "/account", "Forgotten", "No remembered browser")
	b.signOut()
	b.signIn("erin").must(t, "/signin/second", "Backup code")
	if c := findCookie(b, u, "demo_device"); c != nil {
		t.Fatal("the forgotten browser's cookie was kept")
	}
}

func findCookie(b *browser, u *url.URL, name string) *http.Cookie {
	for _, c := range b.hc.Jar.Cookies(u) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func deviceCookie(t *testing.T, b *browser, u *url.URL) string {
	t.Helper()
	c := findCookie(b, u, "demo_device")
	if c == nil || !strings.HasPrefix(c.Value, "tfrd_") {
		t.Fatalf("no device cookie: %v", b.hc.Jar.Cookies(u))
	}
	return c.Value
}

// A security-key sign-in with the box ticked remembers the browser too.
func TestRememberThisBrowserWithSecurityKey(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	if _, err := f.c.Admin.SetUserGroups(ctx, &pb.SetUserGroupsRequest{UserId: "root", Groups: []string{"admin"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.Admin.SetPolicy(ctx, &pb.SetPolicyRequest{ActorId: "root", Policy: &pb.Policy{RememberDevice: true}}); err != nil {
		t.Fatal(err)
	}
	b := f.browser(t)
	key := newAuthenticator(t, softauthn.Options{})
	b.signIn("hana").must(t, "/account")
	b.enrollKey(key, "YubiKey", false)
	b.signOut()
	b.signIn("hana").must(t, "/signin/second", "Remember this browser")
	b.remember = true
	if a := b.assert(key, false, softauthn.AssertOptions{}); !a.OK || a.Redirect != "/account" {
		t.Fatalf("assertion: %+v", a)
	}
	b.signOut()
	b.signIn("hana").must(t, "/account", "this browser is remembered")
}
