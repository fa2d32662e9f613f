package demo

import (
	"fmt"
	"net/http"
	"strings"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
)

// codeChannel is a factor whose code authd sends (through notifyd).
type codeChannel struct {
	Key, Label string
	Method     pb.Method
}

// codeChannelList are the code channels the demo offers, in the order the pages
// show them. A code is checked only against the challenge that sent it, kept in
// the signed login cookie.
var codeChannelList = []codeChannel{
	{"email", "email", pb.Method_METHOD_EMAIL},
	{"sms", "SMS", pb.Method_METHOD_SMS},
	{"signal", "Signal", pb.Method_METHOD_SIGNAL},
	{"telegram", "Telegram", pb.Method_METHOD_TELEGRAM},
}

func codeChannelOf(key string) (codeChannel, bool) {
	for _, c := range codeChannelList {
		if c.Key == key {
			return c, true
		}
	}
	return codeChannel{}, false
}

// maxDestination bounds an email address or phone number (authd allows 320 bytes).
const maxDestination = 320

// codeEnrollBegin sends a code to a new email address or phone number, whose
// page then asks for it; a Telegram enrollment shows its deep link instead.
func (h *Handler) codeEnrollBegin(w http.ResponseWriter, r *http.Request) {
	u, ok := h.signedIn(w, r)
	if !ok {
		return
	}
	key := r.PostFormValue("method")
	ch, known := codeChannelOf(key)
	dest := strings.TrimSpace(r.PostFormValue("destination"))
	switch {
	case !known:
		h.renderAccount(w, r, http.StatusBadRequest, &view{User: u, Error: "Unknown channel " + key + "; use email, sms, signal or telegram."})
		return
	case ch.Method != pb.Method_METHOD_TELEGRAM && (dest == "" || len(dest) > maxDestination):
		h.renderAccount(w, r, http.StatusBadRequest, &view{User: u, Error: fmt.Sprintf("Enter an email address or phone number (at most %d bytes).", maxDestination)})
		return
	case ch.Method == pb.Method_METHOD_TELEGRAM:
		dest = "" // the chat that presses Start is the destination
	}
	ctx, cancel := h.ctx(r)
	defer cancel()
	b, err := h.c.Enrollment.BeginEnrollment(ctx, &pb.BeginEnrollmentRequest{UserId: u, Method: ch.Method,
		Options: &pb.BeginEnrollmentRequest_OutOfBand{OutOfBand: &pb.OutOfBandEnrollmentOptions{Destination: dest}}})
	if err != nil {
		st, msg := h.describe("Adding "+methodLabel(ch.Method), err)
		h.renderAccount(w, r, st, &view{User: u, Error: msg})
		return
	}
	oob := b.GetOutOfBand()
	if ch.Method == pb.Method_METHOD_TELEGRAM {
		h.renderTelegram(w, http.StatusOK, &view{User: u, FactorID: b.GetFactorId()}, oob.GetTelegramLink())
		return
	}
	h.render(w, http.StatusOK, "code.html", &view{Title: "Confirm " + methodLabel(ch.Method), User: u, FactorID: b.GetFactorId(),
		Notice: fmt.Sprintf("A %d-digit code was sent to %s.", oob.GetCodeDigits(), oob.GetMaskedDestination())})
}

// codeEnrollFinish proves the new destination with the code sent to it.
func (h *Handler) codeEnrollFinish(w http.ResponseWriter, r *http.Request) {
	h.finishWithCode(w, r, codePage{page: "code.html", title: "Confirm the code",
		hint: "Enter the code that was sent (at most 16 characters).", done: "codefactor"})
}

// signinSend opens a challenge of a code channel: authd sends the code, the
// login cookie keeps the challenge the answer goes to. Only this POST sends:
// rendering the page never does.
func (h *Handler) signinSend(w http.ResponseWriter, r *http.Request) {
	cl, ok := h.read(r, cookieLogin, purposeLogin)
	if !ok || cl.User == "" {
		http.Redirect(w, r, "/signin?done=restart", http.StatusSeeOther)
		return
	}
	key := r.PostFormValue("method")
	ch, known := codeChannelOf(key)
	if !known {
		h.renderSecond(w, r, http.StatusBadRequest, cl.User, nil, "Unknown channel "+key+"; use email, sms, signal or telegram.")
		return
	}
	ctx, cancel := h.ctx(r)
	defer cancel()
	c, err := h.c.Begin(ctx, cl.User, ch.Method, clientContext(r))
	if err != nil {
		st, msg := h.describe("Sending the "+methodLabel(ch.Method)+" code", err)
		h.renderSecond(w, r, st, cl.User, nil, msg)
		return
	}
	cl.Challenge, cl.Method = c.GetChallengeId(), key
	h.setLogin(w, cl)
	oob := c.GetOutOfBand()
	h.renderSecond(w, r, http.StatusOK, cl.User, &result{Kind: "pending",
		Text: fmt.Sprintf("A %d-digit code was sent to %s.", oob.GetCodeDigits(), oob.GetMaskedDestination())}, "")
}
