package demo

import (
	"bytes"
	"encoding/base64"
	"html/template"
	"image/png"
	"net/http"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"rsc.io/qr"

	"github.com/twofactor/twofactor/notify/tglink"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
)

// Telegram enrollment: the page shows the t.me deep link and its QR code, and its
// script asks /account/telegram/status once a second whether notifyd has bound the
// chat that pressed Start. Asking only checks (FinishEnrollment); nothing is sent
// again. With an embedded authd whose Telegram goes to the outbox, the link names
// tglink.DevBot and a button simulates pressing Start (DevService).
func (h *Handler) telegramRoutes() {
	m := h.mux
	m.HandleFunc("POST /account/telegram/status", h.telegramStatus)
	m.HandleFunc("POST /account/telegram/finish", h.telegramFinish)
	m.HandleFunc("POST /account/telegram/simulate", h.telegramSimulate)
}

// renderTelegram shows the deep link page of factor v.FactorID.
func (h *Handler) renderTelegram(w http.ResponseWriter, st int, v *view, link string) {
	v.Title, v.TelegramLink = "Link a Telegram chat", link
	v.TelegramDev = devLink(link)
	if code, err := qr.Encode(link, qr.M); err == nil {
		var b bytes.Buffer
		code.Scale = 6
		if png.Encode(&b, code.Image()) == nil {
			v.TelegramQR = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(b.Bytes()))
		}
	}
	h.render(w, st, "telegram.html", v)
}

// devLink tells whether link names tglink.DevBot, the placeholder bot of an
// embedded authd whose Telegram goes to the outbox: only then is Start simulated.
func devLink(link string) bool { return strings.HasPrefix(link, "https://t.me/"+tglink.DevBot+"?") }

// notBound tells FinishEnrollment's "nobody pressed Start yet" from other refusals.
func notBound(err error) bool {
	st := status.Convert(err)
	return st.Code() == codes.FailedPrecondition && strings.Contains(st.Message(), "not pressed Start")
}

// telegramStatus finishes the enrollment once the chat is bound (JSON, polled).
func (h *Handler) telegramStatus(w http.ResponseWriter, r *http.Request) {
	u, ok := h.signedInJSON(w, r)
	if !ok {
		return
	}
	var in struct {
		FactorID string `json:"factorId"`
	}
	if err := readJSON(r, &in); err != nil || in.FactorID == "" || len(in.FactorID) > 64 {
		h.jsonFail(w, "Linking Telegram", badInput("factorId (at most 64 characters) is required."))
		return
	}
	ctx, cancel := h.ctx(r)
	defer cancel()
	_, err := h.c.Enrollment.FinishEnrollment(ctx, &pb.FinishEnrollmentRequest{UserId: u, FactorId: in.FactorID})
	switch {
	case notBound(err):
		writeJSON(w, http.StatusOK, jsonAnswer{Result: "waiting", Message: "Waiting for Start in Telegram…"})
	case err != nil:
		h.jsonFail(w, "Linking Telegram", err)
	default:
		writeJSON(w, http.StatusOK, jsonAnswer{OK: true, Redirect: "/account?done=codefactor"})
	}
}

// telegramForm reads the factor id and deep link the page posts back; the link
// is shown again only if it is one.
func (h *Handler) telegramForm(w http.ResponseWriter, r *http.Request) (user, id, link string, ok bool) {
	if user, ok = h.signedIn(w, r); !ok {
		return "", "", "", false
	}
	id, link = strings.TrimSpace(r.PostFormValue("factor_id")), strings.TrimSpace(r.PostFormValue("link"))
	if _, err := tglink.TokenFromLink(link); err != nil || !strings.HasPrefix(link, "https://t.me/") || id == "" || len(id) > 64 {
		h.renderAccount(w, r, http.StatusBadRequest, &view{User: user, Error: "The form lost the Telegram link; start again."})
		return "", "", "", false
	}
	return user, id, link, true
}

// telegramFinish is the button for browsers without script: bound or not yet.
func (h *Handler) telegramFinish(w http.ResponseWriter, r *http.Request) {
	u, id, link, ok := h.telegramForm(w, r)
	if !ok {
		return
	}
	ctx, cancel := h.ctx(r)
	defer cancel()
	_, err := h.c.Enrollment.FinishEnrollment(ctx, &pb.FinishEnrollmentRequest{UserId: u, FactorId: id})
	switch {
	case notBound(err):
		h.renderTelegram(w, http.StatusConflict, &view{User: u, FactorID: id, Error: "Not linked yet: open the link and press Start."}, link)
	case err != nil:
		st, msg := h.describe("Linking Telegram", err)
		h.renderTelegram(w, st, &view{User: u, FactorID: id, Error: msg}, link)
	default:
		http.Redirect(w, r, "/account?done=codefactor", http.StatusSeeOther)
	}
}

// telegramSimulate presses Start in a simulated chat (development authd only: the
// link must name tglink.DevBot, as the button's page shows it only then).
func (h *Handler) telegramSimulate(w http.ResponseWriter, r *http.Request) {
	u, id, link, ok := h.telegramForm(w, r)
	if !ok {
		return
	}
	if !devLink(link) {
		h.renderTelegram(w, http.StatusBadRequest, &view{User: u, FactorID: id,
			Error: "Start is simulated only for a development authd's links (" + tglink.DevBot + "); press Start in Telegram."}, link)
		return
	}
	ctx, cancel := h.ctx(r)
	defer cancel()
	res, err := h.c.Dev.SimulateTelegramStart(ctx, &pb.SimulateTelegramStartRequest{Link: link})
	if err != nil {
		st, msg := h.describe("Simulating Start", err)
		h.renderTelegram(w, st, &view{User: u, FactorID: id, Error: msg}, link)
		return
	}
	h.renderTelegram(w, http.StatusOK, &view{User: u, FactorID: id,
		Notice: "Start pressed in the simulated chat " + res.GetChatId() + ": the bot's answer is in the outbox; this page goes on once authd has linked the chat."}, link)
}
