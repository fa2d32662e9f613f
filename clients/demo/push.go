package demo

import (
	"context"
	"encoding/base64"
	"html/template"
	"net/http"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
)

// Push approval in the demo (docs: doc.go): the sign-in page's "approve on your
// device" (the number shown, VerifyChallenge long-polled), the account page's device
// enrollment (token and QR code), and the device page /device, whose signed requests
// the demo relays to authd's DeviceService. The demo holds the API key; each device
// request carries the device's own signature, made in the browser by a
// non-extractable WebCrypto key, so the demo can relay it but not forge one.

// pushWait is how long one /signin/push/wait call long-polls authd (below the
// 30 s authd allows, and below common proxy idle timeouts).
const pushWait = 20 * time.Second

// Bounds of the device page's requests (authd checks them again).
const (
	maxTokenLen    = 256
	maxDeviceField = 100
	maxIDLen       = 128
)

func (h *Handler) pushRoutes() {
	m := h.mux
	m.HandleFunc("POST /signin/push/begin", h.signinPushBegin)
	m.HandleFunc("POST /signin/push/wait", h.signinPushWait)
	m.HandleFunc("POST /account/push", h.pushEnroll)
	m.HandleFunc("GET /device", h.devicePage)
	m.HandleFunc("GET /device-sw.js", h.deviceWorker)
	m.HandleFunc("POST /device/api/enroll", h.deviceEnroll)
	m.HandleFunc("POST /device/api/pending", h.devicePending)
	m.HandleFunc("POST /device/api/context", h.deviceContext)
	m.HandleFunc("POST /device/api/respond", h.deviceRespond)
}

// pushAnswer is the sign-in page's JSON for push.
type pushAnswer struct {
	jsonAnswer
	Number  string `json:"number,omitempty"`
	Devices uint32 `json:"devices,omitempty"`
}

func writePush(w http.ResponseWriter, status int, a pushAnswer) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = jsonEncode(w, a)
}

// signinPushBegin sends a push to the user's devices and returns the number to show.
func (h *Handler) signinPushBegin(w http.ResponseWriter, r *http.Request) {
	var in struct{}
	if err := readJSON(r, &in); err != nil {
		h.jsonFail(w, "Push sign-in", err)
		return
	}
	cl, ok := h.read(r, cookieLogin, purposeLogin)
	if !ok || cl.User == "" {
		writeJSON(w, http.StatusConflict, jsonAnswer{Message: notices["restart"], Redirect: "/signin?done=restart"})
		return
	}
	ctx, cancel := h.ctx(r)
	defer cancel()
	ch, err := h.c.Begin(ctx, cl.User, pb.Method_METHOD_PUSH, clientContext(r))
	if err != nil {
		h.jsonFail(w, "Sending the push", err)
		return
	}
	cl.Challenge, cl.Method = ch.GetChallengeId(), "push"
	h.setLogin(w, cl)
	writePush(w, http.StatusOK, pushAnswer{jsonAnswer: jsonAnswer{OK: true}, Number: ch.GetPush().GetNumber(), Devices: ch.GetPush().GetDevices()})
}

// signinPushWait long-polls the open push challenge: "pending" until the device
// answers, then signs the user in or says why not.
func (h *Handler) signinPushWait(w http.ResponseWriter, r *http.Request) {
	var in struct{}
	if err := readJSON(r, &in); err != nil {
		h.jsonFail(w, "Push sign-in", err)
		return
	}
	cl, ok := h.read(r, cookieLogin, purposeLogin)
	if !ok || cl.Challenge == "" || cl.Method != "push" {
		writeJSON(w, http.StatusConflict, jsonAnswer{Message: "No push is open; press the button again."})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), pushWait+h.cfg.RPCTimeout)
	defer cancel()
	v, err := h.c.Challenges.VerifyChallenge(ctx, &pb.VerifyChallengeRequest{ChallengeId: cl.Challenge, Context: clientContext(r),
		Response: &pb.VerifyChallengeRequest_Push{Push: &pb.PushWait{Wait: durationpb.New(pushWait)}}})
	if err != nil {
		h.jsonFail(w, "Waiting for the device", err)
		return
	}
	if v.GetResult() == pb.VerifyResult_VERIFY_RESULT_PENDING {
		writeJSON(w, http.StatusOK, jsonAnswer{Result: "pending", Message: "Waiting for your device…"})
		return
	}
	res := verdict(v)
	if h.finishVerify(w, cl, v) {
		writeJSON(w, http.StatusOK, jsonAnswer{OK: true, Result: res.Kind, Message: res.Text, Redirect: "/account"})
		return
	}
	writeJSON(w, http.StatusOK, jsonAnswer{Result: res.Kind, Message: res.Text})
}

// pushEnroll begins a device enrollment and shows its one-time token and QR code.
func (h *Handler) pushEnroll(w http.ResponseWriter, r *http.Request) {
	u, ok := h.signedIn(w, r)
	if !ok {
		return
	}
	ctx, cancel := h.ctx(r)
	defer cancel()
	resp, err := h.c.Enrollment.BeginEnrollment(ctx, &pb.BeginEnrollmentRequest{UserId: u, Method: pb.Method_METHOD_PUSH})
	if err != nil {
		st, msg := h.describe("Adding a device", err)
		h.renderAccount(w, r, st, &view{User: u, Error: msg})
		return
	}
	v := &view{User: u, PushEnroll: resp.GetPush()}
	if png := resp.GetPush().GetQrPng(); len(png) > 0 {
		v.PushQR = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png))
	}
	h.renderAccount(w, r, http.StatusOK, v)
}

func (h *Handler) devicePage(w http.ResponseWriter, r *http.Request) {
	h.render(w, http.StatusOK, "device.html", &view{Title: "Device", User: h.user(r)})
}

// deviceWorker serves the device page's service worker (static/device-sw.js) from
// the root, so that its scope can be /device: it receives the Web Push wake-ups.
func (h *Handler) deviceWorker(w http.ResponseWriter, r *http.Request) {
	js, err := staticFS.ReadFile("static/device-sw.js")
	if err != nil {
		http.Error(w, "no service worker", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(js)
}

// deviceAuth is a device request's signature block as the device page sends it
// (bytes in standard base64, as encoding/json reads them).
type deviceAuth struct {
	DeviceID    string `json:"deviceId"`
	TimestampMs int64  `json:"timestampMs"`
	Nonce       []byte `json:"nonce"`
	Signature   []byte `json:"signature"`
}

func (a deviceAuth) pb() (*pb.DeviceAuth, error) {
	if len(a.DeviceID) > maxIDLen || len(a.Nonce) > 64 || len(a.Signature) > 80 {
		return nil, badInput("auth: the device id, nonce or signature is too long.")
	}
	return &pb.DeviceAuth{DeviceId: a.DeviceID, TimestampMs: a.TimestampMs, Nonce: a.Nonce, Signature: a.Signature}, nil
}

// deviceFail words a refused device request: authd's Unauthenticated is the
// device's signature (not the demo's API key).
func (h *Handler) deviceFail(w http.ResponseWriter, op string, err error) {
	if st, ok := status.FromError(err); ok && (st.Code() == codes.Unauthenticated || st.Code() == codes.PermissionDenied) {
		h.cfg.Log.Warn("authd refused a device request", "op", op, "code", st.Code().String())
		writeJSON(w, http.StatusForbidden, jsonAnswer{Message: op + ": authd refused the device's signature (removed device, another user's, or a clock off by more than 60 s) — " + st.Message()})
		return
	}
	h.jsonFail(w, op, err)
}

// deviceAnswer is the device page's JSON.
type deviceAnswer struct {
	OK       bool           `json:"ok"`
	DeviceID string         `json:"deviceId,omitempty"`
	UserID   string         `json:"userId,omitempty"`
	Pushes   []string       `json:"pushes,omitempty"`
	Context  *deviceContext `json:"context,omitempty"`
	Result   string         `json:"result,omitempty"`
	Locked   bool           `json:"locked,omitempty"`
}

// deviceContext is what the device shows about a login.
type deviceContext struct {
	ChallengeID string   `json:"challengeId"`
	Client      string   `json:"client"`
	IP          string   `json:"ip"`
	UserAgent   string   `json:"userAgent"`
	Time        string   `json:"time"`
	Expires     string   `json:"expires"`
	NumberMode  string   `json:"numberMode"`
	Digits      uint32   `json:"digits"`
	Choices     []string `json:"choices,omitempty"`
}

func writeDevice(w http.ResponseWriter, a deviceAnswer) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = jsonEncode(w, a)
}
