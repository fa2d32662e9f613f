package demo

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/twofactor/twofactor/clients/client"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Cookie names. Both are HttpOnly, SameSite=Strict, Path=/ (and Secure on https).
const (
	cookieSession = "demo_session"
	cookieLogin   = "demo_login"
)

// maxUserLen is authd's limit on a user id (bytes).
const maxUserLen = 255

// Config configures the demo.
type Config struct {
	// Client reaches authd with a key that has the login and selfservice roles.
	Client *client.Client
	// Origin is the demo's own origin exactly as the browser shows it, e.g.
	// "http://localhost:8080". State-changing requests must come from it, and authd
	// must list it in -webauthn-origins.
	Origin string
	// AuthdAddr is only used to word "authd is not reachable at …" errors.
	AuthdAddr string
	// SessionTTL is how long a sign-in lasts (default 8 h); LoginTTL how long the
	// second-factor step may take (default 10 min).
	SessionTTL, LoginTTL time.Duration
	// RPCTimeout bounds each call to authd (default 10 s).
	RPCTimeout time.Duration
	// Now is the clock for cookie expiry (default time.Now).
	Now func() time.Time
	// Log receives request failures (never codes, passwords or cookie values).
	Log *slog.Logger
}

// Handler is the demo web application; it is an http.Handler.
type Handler struct {
	cfg    Config
	c      *client.Client
	cookie *codec
	pages  map[string]*template.Template
	mux    *http.ServeMux
	secure bool
}

// New checks cfg and builds the handler. The cookie key is drawn here, per process.
func New(cfg Config) (*Handler, error) {
	if cfg.Client == nil {
		return nil, errors.New("demo: Config.Client is required")
	}
	u, err := url.Parse(cfg.Origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return nil, fmt.Errorf("demo: Config.Origin %q is not an origin like http://localhost:8080", cfg.Origin)
	}
	cfg.Origin = u.Scheme + "://" + u.Host
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 8 * time.Hour
	}
	if cfg.LoginTTL <= 0 {
		cfg.LoginTTL = 10 * time.Minute
	}
	if cfg.RPCTimeout <= 0 {
		cfg.RPCTimeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	cd, err := newCodec(cfg.Now)
	if err != nil {
		return nil, err
	}
	h := &Handler{cfg: cfg, c: cfg.Client, cookie: cd, pages: map[string]*template.Template{}, mux: http.NewServeMux(), secure: u.Scheme == "https"}
	for _, p := range []string{"signin.html", "second.html", "account.html", "totp.html", "device.html", "code.html", "telegram.html"} {
		t, err := template.New(p).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+p)
		if err != nil {
			return nil, fmt.Errorf("demo: template %s: %w", p, err)
		}
		h.pages[p] = t
	}
	h.routes()
	return h, nil
}

func (h *Handler) routes() {
	static, _ := fs.Sub(staticFS, "static")
	m := h.mux
	m.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	m.HandleFunc("GET /{$}", h.home)
	m.HandleFunc("GET /signin", h.signinPage)
	m.HandleFunc("POST /signin", h.signinName)
	m.HandleFunc("GET /signin/second", h.secondPage)
	m.HandleFunc("POST /signin/code", h.signinCode)
	m.HandleFunc("POST /signin/send", h.signinSend)
	m.HandleFunc("POST /signin/webauthn/begin", h.signinWebAuthnBegin)
	m.HandleFunc("POST /signin/webauthn/finish", h.signinWebAuthnFinish)
	m.HandleFunc("POST /signout", h.signout)
	m.HandleFunc("GET /account", h.account)
	m.HandleFunc("POST /account/factors/rename", h.renameFactor)
	m.HandleFunc("POST /account/factors/remove", h.removeFactor)
	m.HandleFunc("POST /account/totp", h.totpBegin)
	m.HandleFunc("POST /account/totp/finish", h.totpFinish)
	m.HandleFunc("POST /account/codes", h.codeEnrollBegin)
	m.HandleFunc("POST /account/codes/finish", h.codeEnrollFinish)
	m.HandleFunc("POST /account/webauthn/begin", h.enrollWebAuthnBegin)
	m.HandleFunc("POST /account/webauthn/finish", h.enrollWebAuthnFinish)
	m.HandleFunc("POST /account/webauthn/cancel", h.enrollWebAuthnCancel)
	m.HandleFunc("POST /account/backup-codes", h.backupCodes)
	m.HandleFunc("POST /account/app-passwords", h.issueAppPassword)
	m.HandleFunc("POST /account/app-passwords/revoke", h.revokeAppPassword)
	m.HandleFunc("POST /account/password-check", h.passwordCheck)
	m.HandleFunc("POST /account/devices/revoke", h.revokeDevice)
	m.HandleFunc("POST /account/devices/revoke-all", h.revokeAllDevices)
	h.pushRoutes()
	h.telegramRoutes()
}

// ServeHTTP sets the security headers, refuses cross-origin state changes, and routes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("X-Frame-Options", "DENY")
	if r.Method != http.MethodGet && r.Method != http.MethodHead && !h.sameOrigin(r) {
		h.cfg.Log.Warn("refused a cross-origin request", "method", r.Method, "path", r.URL.Path, "origin", r.Header.Get("Origin"))
		http.Error(w, "Refused: this request did not come from "+h.cfg.Origin+" (cross-site request forgery protection). Open the demo at "+h.cfg.Origin+".", http.StatusForbidden)
		return
	}
	h.mux.ServeHTTP(w, r)
}

// sameOrigin is the CSRF check (OWASP CSRF Prevention Cheat Sheet, "Verifying
// origin with standard headers"): the Origin header must be the configured origin;
// when a browser sends none, the Referer must start with it. No header: refused.
func (h *Handler) sameOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		return o == h.cfg.Origin
	}
	ref := r.Header.Get("Referer")
	return ref != "" && strings.HasPrefix(ref, h.cfg.Origin+"/")
}

// ctx bounds one authd call.
func (h *Handler) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), h.cfg.RPCTimeout)
}

// clientContext tells authd about the browser (for throttling and the audit trail).
func clientContext(r *http.Request) *pb.ClientContext {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	ua := r.UserAgent()
	if len(ua) > 512 {
		ua = ua[:512]
	}
	return &pb.ClientContext{Ip: ip, UserAgent: ua, Client: "demo-web"}
}

// ---- cookies ----

func (h *Handler) setCookie(w http.ResponseWriter, name, value string, ttl time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: int(ttl / time.Second),
		HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteStrictMode,
	})
}

func (h *Handler) clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteStrictMode})
}

func (h *Handler) read(r *http.Request, name, purpose string) (claims, bool) {
	c, err := r.Cookie(name)
	if err != nil {
		return claims{}, false
	}
	cl, err := h.cookie.open(purpose, c.Value)
	return cl, err == nil
}

// user is the signed-in user, or "".
func (h *Handler) user(r *http.Request) string {
	cl, ok := h.read(r, cookieSession, purposeSession)
	if !ok {
		return ""
	}
	return cl.User
}

func (h *Handler) startSession(w http.ResponseWriter, user string) {
	h.clearCookie(w, cookieLogin)
	h.setCookie(w, cookieSession, h.cookie.seal(purposeSession, claims{User: user}, h.cfg.SessionTTL), h.cfg.SessionTTL)
}

func (h *Handler) setLogin(w http.ResponseWriter, cl claims) {
	h.setCookie(w, cookieLogin, h.cookie.seal(purposeLogin, cl, h.cfg.LoginTTL), h.cfg.LoginTTL)
}

// ---- rendering ----

// view is what every page template gets.
type view struct {
	Title  string
	User   string
	Origin string
	Notice string
	Error  string

	// Sign-in
	Name     string
	LoginFor string
	Methods  map[string]bool
	Result   *result
	// CodeDigits is the length of the user's TOTP codes (0: not one length).
	CodeDigits int

	// Account
	Factors      []*pb.Factor
	Backup       *pb.GetBackupCodesStatusResponse
	BackupCodes  []string
	AppPasswords []*pb.AppPassword
	NewAppPW     *pb.IssueAppPasswordResponse
	Check        *pb.CheckPasswordResponse
	Devices      []*pb.RememberedDevice

	// Push device enrollment (token and QR code, shown once)
	PushEnroll *pb.PushEnrollment
	PushQR     template.URL

	// TOTP enrollment
	TOTP     *pb.BeginEnrollmentResponse
	FactorID string
	QR       template.URL

	// Telegram enrollment: the deep link, its QR code, and whether it names the
	// development placeholder bot (a "simulate Start" button).
	TelegramLink string
	TelegramQR   template.URL
	TelegramDev  bool

	// CodeChannels are the code channels the user can sign in with.
	CodeChannels []codeChannel
}

// result is the outcome of one second-factor answer, worded for the user.
type result struct {
	Kind string // accepted, rejected, expired, throttled
	Text string
}

func (h *Handler) render(w http.ResponseWriter, status int, page string, v *view) {
	v.Origin = h.cfg.Origin
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// Pages may show one-time secrets (backup codes, app passwords, TOTP seeds).
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := h.pages[page].ExecuteTemplate(w, "layout", v); err != nil {
		h.cfg.Log.Error("render", "page", page, "error", err)
	}
}

var funcs = template.FuncMap{
	"method": methodLabel,
	"when": func(t interface{ AsTime() time.Time }) string {
		if t == nil || t.AsTime().IsZero() || t.AsTime().Unix() == 0 {
			return "never"
		}
		return t.AsTime().Local().Format("2006-01-02 15:04")
	},
	"active": func(f *pb.Factor) bool { return f.GetState() == pb.FactorState_FACTOR_STATE_ACTIVE },
	"group":  groupSecret,
}

func methodLabel(m pb.Method) string {
	switch m {
	case pb.Method_METHOD_TOTP:
		return "Authenticator app (TOTP)"
	case pb.Method_METHOD_WEBAUTHN:
		return "Security key / passkey"
	case pb.Method_METHOD_BACKUP_CODE:
		return "Backup code"
	case pb.Method_METHOD_ADMIN_CODE:
		return "Admin code"
	case pb.Method_METHOD_PUSH:
		return "Push approval (device)"
	case pb.Method_METHOD_EMAIL:
		return "Email code"
	case pb.Method_METHOD_SMS:
		return "SMS code"
	case pb.Method_METHOD_SIGNAL:
		return "Signal code"
	case pb.Method_METHOD_TELEGRAM:
		return "Telegram code"
	}
	return m.String()
}

// groupSecret splits a base32 seed in groups of four for reading aloud.
func groupSecret(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (h *Handler) home(w http.ResponseWriter, r *http.Request) {
	if h.user(r) != "" {
		http.Redirect(w, r, "/account", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}
