package demo

import (
	"encoding/json"
	"io"
	"net/http"
	"time"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
)

// The device page's relay: each handler reads the device's signed request, passes
// it to authd's DeviceService unchanged and returns the answer. Nothing here can
// sign: the demo only relays what the browser's key signed (the canonical encoding
// of providers/push/pushsig, made in static/push.js).

func jsonEncode(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }

// deviceEndpoint is where the device page asks to be woken: "webpush" with the
// browser's PushSubscription (endpoint and keys, base64url), or "poll".
type deviceEndpoint struct {
	Kind   string `json:"kind"`
	URL    string `json:"url"`
	P256dh string `json:"p256dh"`
	Auth   string `json:"auth"`
}

// pb maps the endpoint as the device signed it (authd checks the URL and keys).
func (e deviceEndpoint) pb() (*pb.PushEndpoint, error) {
	switch {
	case e.Kind == "" || e.Kind == "poll":
		return &pb.PushEndpoint{Kind: &pb.PushEndpoint_Poll{Poll: &pb.PollOnly{}}}, nil
	case e.Kind != "webpush":
		return nil, badInput("endpoint.kind: want webpush or poll.")
	case len(e.URL) > 1024 || len(e.P256dh) > 128 || len(e.Auth) > 64:
		return nil, badInput("endpoint: the URL or a key is too long.")
	}
	return &pb.PushEndpoint{Kind: &pb.PushEndpoint_WebPush{WebPush: &pb.WebPushSubscription{Endpoint: e.URL, P256Dh: e.P256dh, Auth: e.Auth}}}, nil
}

// deviceEnroll finishes a device enrollment, with the browser's Web Push
// subscription when it made one, else poll only.
func (h *Handler) deviceEnroll(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Auth      deviceAuth     `json:"auth"`
		Token     string         `json:"token"`
		PublicKey []byte         `json:"publicKey"`
		Name      string         `json:"name"`
		Platform  string         `json:"platform"`
		Endpoint  deviceEndpoint `json:"endpoint"`
	}
	const op = "Enrolling this device"
	if err := readJSON(r, &in); err != nil {
		h.jsonFail(w, op, err)
		return
	}
	if len(in.Token) > maxTokenLen || len(in.PublicKey) > 200 || len(in.Name) > maxDeviceField || len(in.Platform) > maxDeviceField {
		h.jsonFail(w, op, badInput("token, publicKey, name or platform is too long."))
		return
	}
	auth, err := in.Auth.pb()
	var ep *pb.PushEndpoint
	if err == nil {
		ep, err = in.Endpoint.pb()
	}
	if err != nil {
		h.jsonFail(w, op, err)
		return
	}
	ctx, cancel := h.ctx(r)
	defer cancel()
	resp, err := h.c.Devices.FinishDeviceEnrollment(ctx, &pb.FinishDeviceEnrollmentRequest{Auth: auth, Token: in.Token,
		PublicKey: in.PublicKey, Name: in.Name, Platform: in.Platform, Endpoint: ep})
	if err != nil {
		h.deviceFail(w, op, err)
		return
	}
	writeDevice(w, deviceAnswer{OK: true, DeviceID: resp.GetDeviceId(), UserID: resp.GetUserId()})
}

// devicePending lists the pushes waiting for the device's user.
func (h *Handler) devicePending(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Auth deviceAuth `json:"auth"`
	}
	const op = "Listing sign-in requests"
	if err := readJSON(r, &in); err != nil {
		h.jsonFail(w, op, err)
		return
	}
	auth, err := in.Auth.pb()
	if err != nil {
		h.jsonFail(w, op, err)
		return
	}
	ctx, cancel := h.ctx(r)
	defer cancel()
	resp, err := h.c.Devices.ListPendingPushes(ctx, &pb.ListPendingPushesRequest{Auth: auth})
	if err != nil {
		h.deviceFail(w, op, err)
		return
	}
	out := deviceAnswer{OK: true, Pushes: []string{}}
	for _, p := range resp.GetPushes() {
		out.Pushes = append(out.Pushes, p.GetChallengeId())
	}
	writeDevice(w, out)
}

// deviceContext fetches what to show about one push.
func (h *Handler) deviceContext(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Auth        deviceAuth `json:"auth"`
		ChallengeID string     `json:"challengeId"`
	}
	const op = "Reading the sign-in request"
	if err := readJSON(r, &in); err != nil {
		h.jsonFail(w, op, err)
		return
	}
	auth, err := in.Auth.pb()
	if err == nil && len(in.ChallengeID) > maxIDLen {
		err = badInput("challengeId is too long.")
	}
	if err != nil {
		h.jsonFail(w, op, err)
		return
	}
	ctx, cancel := h.ctx(r)
	defer cancel()
	c, err := h.c.Devices.GetPushContext(ctx, &pb.GetPushContextRequest{Auth: auth, ChallengeId: in.ChallengeID})
	if err != nil {
		h.deviceFail(w, op, err)
		return
	}
	writeDevice(w, deviceAnswer{OK: true, Context: &deviceContext{ChallengeID: c.GetChallengeId(), Client: c.GetClient(),
		IP: c.GetClientIp(), UserAgent: c.GetUserAgent(), Time: c.GetTime().AsTime().UTC().Format(time.RFC3339),
		Expires: c.GetExpiresAt().AsTime().UTC().Format(time.RFC3339), NumberMode: numberMode(c.GetNumberMode()),
		Digits: c.GetDigits(), Choices: c.GetChoices()}})
}

func numberMode(m pb.NumberMode) string {
	switch m {
	case pb.NumberMode_NUMBER_MODE_DIGITS:
		return "digits"
	case pb.NumberMode_NUMBER_MODE_CHOICE:
		return "choice"
	}
	return "none"
}

// decisions are the signed names of the device page's answers.
var decisions = map[string]pb.PushDecision{
	"approve": pb.PushDecision_PUSH_DECISION_APPROVE,
	"deny":    pb.PushDecision_PUSH_DECISION_DENY,
	"not_me":  pb.PushDecision_PUSH_DECISION_NOT_ME,
}

// deviceRespond records the device's answer (decision and number, as signed).
func (h *Handler) deviceRespond(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Auth        deviceAuth `json:"auth"`
		ChallengeID string     `json:"challengeId"`
		Decision    string     `json:"decision"`
		Number      string     `json:"number"`
	}
	const op = "Answering the sign-in request"
	if err := readJSON(r, &in); err != nil {
		h.jsonFail(w, op, err)
		return
	}
	dec, known := decisions[in.Decision]
	auth, err := in.Auth.pb()
	switch {
	case err != nil:
	case !known:
		err = badInput("decision: want approve, deny or not_me.")
	case len(in.ChallengeID) > maxIDLen || len(in.Number) > 16:
		err = badInput("challengeId or number is too long.")
	}
	if err != nil {
		h.jsonFail(w, op, err)
		return
	}
	ctx, cancel := h.ctx(r)
	defer cancel()
	resp, err := h.c.Devices.RespondPush(ctx, &pb.RespondPushRequest{Auth: auth, ChallengeId: in.ChallengeID, Decision: dec, Number: in.Number})
	if err != nil {
		h.deviceFail(w, op, err)
		return
	}
	writeDevice(w, deviceAnswer{OK: true, Result: pushResult(resp.GetResult()), Locked: resp.GetLocked()})
}

func pushResult(r pb.PushResult) string {
	switch r {
	case pb.PushResult_PUSH_RESULT_APPROVED:
		return "approved"
	case pb.PushResult_PUSH_RESULT_DENIED:
		return "denied"
	case pb.PushResult_PUSH_RESULT_WRONG_NUMBER:
		return "wrong_number"
	case pb.PushResult_PUSH_RESULT_NOT_ME:
		return "not_me"
	}
	return "unknown"
}
