package demo

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
)

// notices are the fixed messages a redirect may ask a page to show (?done=key), so
// no text from a URL is ever rendered.
var notices = map[string]string{
	"signedout":   "Signed out.",
	"renamed":     "Renamed.",
	"removed":     "Removed.",
	"totp":        "Authenticator app added. Sign out and sign in again to try it.",
	"codefactor":  "Added: codes can be sent there. Sign out and sign in again to try it.",
	"revoked":     "App password revoked.",
	"webauthn":    "Security key added. Sign out and sign in again to try it.",
	"nofactor":    "Signed in without a second factor: this user has none yet. Add one below.",
	"restart":     "That sign-in took too long or was not started here; enter the name again.",
	"remembered":  "Signed in without a second factor: this browser is remembered.",
	"forgotten":   "Forgotten: the browser will be asked for a second factor at its next sign-in.",
	"passkeyonly": "Signed in with a passkey. Policy does not count a passkey as a complete login, so a real backend would still ask for the password; the demo has none.",
}

// methodNames are the form values of the code methods.
var methodNames = map[string]pb.Method{
	"totp":        pb.Method_METHOD_TOTP,
	"webauthn":    pb.Method_METHOD_WEBAUTHN,
	"backup_code": pb.Method_METHOD_BACKUP_CODE,
	"admin_code":  pb.Method_METHOD_ADMIN_CODE,
	"email":       pb.Method_METHOD_EMAIL,
	"sms":         pb.Method_METHOD_SMS,
	"signal":      pb.Method_METHOD_SIGNAL,
	"telegram":    pb.Method_METHOD_TELEGRAM,
}

func methodKey(m pb.Method) string {
	if m == pb.Method_METHOD_PUSH {
		return "push" // answered on a device, not with a code (push.go)
	}
	for k, v := range methodNames {
		if v == m {
			return k
		}
	}
	return ""
}

// checkName validates a demo user name as authd does a user id.
func checkName(name string) error {
	switch {
	case name == "":
		return badInput("Enter a user name; any name is a demo user.")
	case len(name) > maxUserLen:
		return badInput("The user name is longer than %d bytes.", maxUserLen)
	case !utf8.ValidString(name):
		return badInput("The user name is not valid UTF-8.")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return badInput("The user name contains control characters.")
		}
	}
	return nil
}

func (h *Handler) signinPage(w http.ResponseWriter, r *http.Request) {
	if h.user(r) != "" {
		http.Redirect(w, r, "/account", http.StatusSeeOther)
		return
	}
	h.render(w, http.StatusOK, "signin.html", &view{Title: "Sign in", Notice: notices[r.URL.Query().Get("done")]})
}

// signinName is step one: the name. authd says whether a second factor is needed.
func (h *Handler) signinName(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimSpace(r.PostFormValue("name"))
	fail := func(err error) {
		st, msg := h.describe("Sign in", err)
		h.render(w, st, "signin.html", &view{Title: "Sign in", Name: name, Error: msg})
	}
	if err := checkName(name); err != nil {
		fail(err)
		return
	}
	ctx, cancel := h.ctx(r)
	defer cancel()
	req, err := h.c.Challenges.GetLoginRequirements(ctx, &pb.GetLoginRequirementsRequest{UserId: name})
	if err != nil {
		fail(err)
		return
	}
	switch {
	case req.GetSecondFactorRequired() && len(req.GetAvailableMethods()) > 0:
		if h.tryRemembered(w, r, name) {
			http.Redirect(w, r, "/account?done=remembered", http.StatusSeeOther)
			return
		}
		h.setLogin(w, claims{User: name})
		http.Redirect(w, r, "/signin/second", http.StatusSeeOther)
	case req.GetMustEnroll() && !req.GetInGrace():
		fail(badInput("Policy requires a second factor for %q, who has none and whose grace period is over. An admin can issue a one-time admin code: go run ./cmd/authctl admin code -actor <admin> %s", name, name))
	case req.GetSecondFactorRequired():
		fail(badInput("A second factor is required for %q but none is usable right now.", name))
	default:
		h.startSession(w, name)
		http.Redirect(w, r, "/account?done=nofactor", http.StatusSeeOther)
	}
}

// secondPage is step two: it offers the methods the user can pass now.
func (h *Handler) secondPage(w http.ResponseWriter, r *http.Request) {
	cl, ok := h.read(r, cookieLogin, purposeLogin)
	if !ok || cl.User == "" {
		http.Redirect(w, r, "/signin?done=restart", http.StatusSeeOther)
		return
	}
	h.renderSecond(w, r, http.StatusOK, cl.User, nil, "")
}

func (h *Handler) renderSecond(w http.ResponseWriter, r *http.Request, status int, user string, res *result, errMsg string) {
	v := &view{Title: "Second factor", LoginFor: user, Result: res, Error: errMsg, Methods: map[string]bool{}}
	ctx, cancel := h.ctx(r)
	defer cancel()
	req, err := h.c.Challenges.GetLoginRequirements(ctx, &pb.GetLoginRequirementsRequest{UserId: user})
	if err != nil {
		st, msg := h.describe("Listing your sign-in methods", err)
		v.Error, status = msg, st
	}
	for _, m := range req.GetAvailableMethods() {
		v.Methods[methodKey(m)] = true
	}
	for _, c := range codeChannelList {
		if v.Methods[c.Key] {
			v.CodeChannels = append(v.CodeChannels, c)
		}
	}
	if v.Methods["totp"] {
		v.CodeDigits = h.totpDigits(ctx, user)
	}
	h.render(w, status, "second.html", v)
}

// totpDigits is the code length of the user's active TOTP factors, or 0 when
// they differ or cannot be listed (the page then names no length): each
// enrollment keeps the -totp-digits it was made with.
func (h *Handler) totpDigits(ctx context.Context, user string) int {
	fs, err := h.c.Enrollment.ListFactors(ctx, &pb.ListFactorsRequest{UserId: user})
	if err != nil {
		return 0
	}
	digits := 0
	for _, f := range fs.GetFactors() {
		if f.GetMethod() != pb.Method_METHOD_TOTP || f.GetState() != pb.FactorState_FACTOR_STATE_ACTIVE {
			continue
		}
		d := int(f.GetTotp().GetDigits())
		if digits != 0 && d != digits {
			return 0
		}
		digits = d
	}
	return digits
}

// signinCode answers a TOTP, backup or admin code. The challenge id lives in the
// signed login cookie, so a rejected code keeps counting against the same
// challenge and its remaining attempts mean something.
func (h *Handler) signinCode(w http.ResponseWriter, r *http.Request) {
	cl, ok := h.read(r, cookieLogin, purposeLogin)
	if !ok || cl.User == "" {
		http.Redirect(w, r, "/signin?done=restart", http.StatusSeeOther)
		return
	}
	key := r.PostFormValue("method")
	m, known := methodNames[key]
	if !known || m == pb.Method_METHOD_WEBAUTHN {
		h.renderSecond(w, r, http.StatusBadRequest, cl.User, nil, "Unknown method "+key+"; use totp, backup_code, admin_code, email, sms, signal or telegram.")
		return
	}
	code := strings.TrimSpace(r.PostFormValue("code"))
	if code == "" || len(code) > 64 {
		h.renderSecond(w, r, http.StatusBadRequest, cl.User, nil, "Enter the code (at most 64 characters).")
		return
	}
	ctx, cancel := h.ctx(r)
	defer cancel()
	cc := clientContext(r)
	if _, sent := codeChannelOf(key); sent && (cl.Challenge == "" || cl.Method != key) {
		h.renderSecond(w, r, http.StatusBadRequest, cl.User, nil, "Press \"Send a code\" first: the code is checked against the challenge that sent it.")
		return
	}
	if cl.Challenge == "" || cl.Method != key {
		ch, err := h.c.Begin(ctx, cl.User, m, cc)
		if err != nil {
			st, msg := h.describe("Starting the "+methodLabel(m)+" check", err)
			h.renderSecond(w, r, st, cl.User, nil, msg)
			return
		}
		cl.Challenge, cl.Method = ch.GetChallengeId(), key
	}
	remember := r.PostFormValue("remember") == "1"
	label := ""
	if remember {
		label = deviceLabel(r.UserAgent())
	}
	v, err := h.c.Challenges.VerifyChallenge(ctx, &pb.VerifyChallengeRequest{ChallengeId: cl.Challenge,
		Response: &pb.VerifyChallengeRequest_Code{Code: code}, Context: cc, RememberDevice: remember, DeviceLabel: label})
	if err != nil {
		st, msg := h.describe("Checking the code", err)
		h.renderSecond(w, r, st, cl.User, nil, msg)
		return
	}
	if h.finishVerify(w, cl, v) {
		http.Redirect(w, r, "/account", http.StatusSeeOther)
		return
	}
	h.renderSecond(w, r, http.StatusOK, cl.User, verdict(v), "")
}

// finishVerify acts on a verdict: it signs the user in when accepted, or keeps the
// challenge only while it still takes answers. It reports whether the user is in.
func (h *Handler) finishVerify(w http.ResponseWriter, cl claims, v *pb.VerifyChallengeResponse) bool {
	if v.GetResult() == pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
		// A second factor counts only for the user who gave their name.
		if cl.User != "" && v.GetUserId() != cl.User {
			h.cfg.Log.Warn("accepted challenge belongs to another user")
			h.clearCookie(w, cookieLogin)
			return false
		}
		h.startSession(w, v.GetUserId())
		h.setDevice(w, v.GetDeviceToken(), v.GetDeviceTokenExpiresAt().AsTime())
		return true
	}
	if v.GetResult() != pb.VerifyResult_VERIFY_RESULT_REJECTED || v.GetRemainingAttempts() == 0 {
		cl.Challenge, cl.Method = "", ""
	}
	h.setLogin(w, cl)
	return false
}

func (h *Handler) signout(w http.ResponseWriter, r *http.Request) {
	h.clearCookie(w, cookieSession)
	h.clearCookie(w, cookieLogin)
	http.Redirect(w, r, "/signin?done=signedout", http.StatusSeeOther)
}

// ---- JSON endpoints for the browser's WebAuthn calls ----

// maxJSON bounds a request body; WebAuthn responses are a few kilobytes.
const maxJSON = 64 << 10

type jsonAnswer struct {
	OK       bool            `json:"ok"`
	Result   string          `json:"result,omitempty"`
	Message  string          `json:"message,omitempty"`
	Redirect string          `json:"redirect,omitempty"`
	FactorID string          `json:"factorId,omitempty"`
	Options  json.RawMessage `json:"options,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, a jsonAnswer) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(a)
}

func (h *Handler) jsonFail(w http.ResponseWriter, op string, err error) {
	st, msg := h.describe(op, err)
	writeJSON(w, st, jsonAnswer{Message: msg})
}

// readJSON decodes a JSON request body into v.
func readJSON(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return badInput("The request body must be application/json, not %q.", ct)
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxJSON))
	if err != nil {
		return badInput("The request body is unreadable or larger than %d bytes.", maxJSON)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return badInput("The request body is not the expected JSON: %v", err)
	}
	return nil
}

// signinWebAuthnBegin opens a WebAuthn challenge: for the user of the login cookie
// (security key as second factor), or for nobody (a passkey finds its user).
func (h *Handler) signinWebAuthnBegin(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Passkey bool `json:"passkey"`
	}
	if err := readJSON(r, &in); err != nil {
		h.jsonFail(w, "Security key sign-in", err)
		return
	}
	var cl claims
	if !in.Passkey {
		var ok bool
		if cl, ok = h.read(r, cookieLogin, purposeLogin); !ok || cl.User == "" {
			writeJSON(w, http.StatusConflict, jsonAnswer{Message: notices["restart"], Redirect: "/signin?done=restart"})
			return
		}
	}
	ctx, cancel := h.ctx(r)
	defer cancel()
	ch, err := h.c.Begin(ctx, cl.User, pb.Method_METHOD_WEBAUTHN, clientContext(r))
	if err != nil {
		h.jsonFail(w, "Starting the security key check", err)
		return
	}
	cl.Challenge, cl.Method = ch.GetChallengeId(), "webauthn"
	h.setLogin(w, cl)
	writeJSON(w, http.StatusOK, jsonAnswer{OK: true, Options: json.RawMessage(ch.GetWebauthnRequestOptionsJson())})
}

// signinWebAuthnFinish hands the browser's assertion (PublicKeyCredential.toJSON())
// to authd.
func (h *Handler) signinWebAuthnFinish(w http.ResponseWriter, r *http.Request) {
	cl, ok := h.read(r, cookieLogin, purposeLogin)
	if !ok || cl.Challenge == "" || cl.Method != "webauthn" {
		writeJSON(w, http.StatusConflict, jsonAnswer{Message: "No security key check is open; press the button again."})
		return
	}
	var assertion json.RawMessage
	if err := readJSON(r, &assertion); err != nil {
		h.jsonFail(w, "Security key sign-in", err)
		return
	}
	ctx, cancel := h.ctx(r)
	defer cancel()
	remember := cl.User != "" && r.URL.Query().Get("remember") == "1"
	label := ""
	if remember {
		label = deviceLabel(r.UserAgent())
	}
	v, err := h.c.Challenges.VerifyChallenge(ctx, &pb.VerifyChallengeRequest{
		ChallengeId: cl.Challenge, Context: clientContext(r), RememberDevice: remember, DeviceLabel: label,
		Response: &pb.VerifyChallengeRequest_WebauthnAssertionJson{WebauthnAssertionJson: string(assertion)},
	})
	if err != nil {
		h.jsonFail(w, "Checking the security key", err)
		return
	}
	res := verdict(v)
	if h.finishVerify(w, cl, v) {
		to := "/account"
		if cl.User == "" && !v.GetCompleteLogin() {
			to += "?done=passkeyonly"
		}
		writeJSON(w, http.StatusOK, jsonAnswer{OK: true, Result: res.Kind, Message: res.Text, Redirect: to})
		return
	}
	if v.GetResult() == pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
		res = &result{Kind: "rejected", Text: "Rejected: this credential belongs to another user than the one signing in."}
	}
	writeJSON(w, http.StatusOK, jsonAnswer{Result: res.Kind, Message: res.Text})
}
