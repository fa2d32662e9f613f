package demo

import (
	"encoding/base64"
	"encoding/json"
	"html/template"
	"net/http"
	"strings"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
)

// signedIn returns the session's user, or redirects to sign-in (pages) and
// reports false.
func (h *Handler) signedIn(w http.ResponseWriter, r *http.Request) (string, bool) {
	u := h.user(r)
	if u == "" {
		http.Redirect(w, r, "/signin", http.StatusSeeOther)
	}
	return u, u != ""
}

// signedInJSON is signedIn for the JSON endpoints the page's script calls: without a
// session it answers 401 with where to go.
func (h *Handler) signedInJSON(w http.ResponseWriter, r *http.Request) (string, bool) {
	u := h.user(r)
	if u == "" {
		writeJSON(w, http.StatusUnauthorized, jsonAnswer{Message: "Sign in first.", Redirect: "/signin"})
	}
	return u, u != ""
}

func (h *Handler) account(w http.ResponseWriter, r *http.Request) {
	u, ok := h.signedIn(w, r)
	if !ok {
		return
	}
	h.renderAccount(w, r, http.StatusOK, &view{User: u, Notice: notices[r.URL.Query().Get("done")]})
}

// renderAccount fills v with the user's factors, backup-code status and app
// passwords and renders the account page.
func (h *Handler) renderAccount(w http.ResponseWriter, r *http.Request, status int, v *view) {
	v.Title = "Account"
	ctx, cancel := h.ctx(r)
	defer cancel()
	var errs []string
	note := func(op string, err error) {
		st, msg := h.describe(op, err)
		errs = append(errs, msg)
		if status < 400 {
			status = st
		}
	}
	if fs, err := h.c.Enrollment.ListFactors(ctx, &pb.ListFactorsRequest{UserId: v.User}); err != nil {
		note("Listing factors", err)
	} else {
		v.Factors = fs.GetFactors()
	}
	if bs, err := h.c.Enrollment.GetBackupCodesStatus(ctx, &pb.GetBackupCodesStatusRequest{UserId: v.User}); err != nil {
		note("Backup code status", err)
	} else {
		v.Backup = bs
	}
	if aps, err := h.c.AppPasswords.ListAppPasswords(ctx, &pb.ListAppPasswordsRequest{UserId: v.User}); err != nil {
		note("Listing app passwords", err)
	} else {
		v.AppPasswords = aps.GetAppPasswords()
	}
	if ds, err := h.c.Enrollment.ListRememberedDevices(ctx, &pb.ListRememberedDevicesRequest{UserId: v.User}); err != nil {
		note("Listing remembered browsers", err)
	} else {
		v.Devices = ds.GetDevices()
	}
	if len(errs) > 0 {
		if v.Error != "" {
			errs = append([]string{v.Error}, errs...)
		}
		v.Error = strings.Join(errs, " ")
	}
	h.render(w, status, "account.html", v)
}

// act runs one account action: on error the account page shows why; on success
// it redirects to the account page with a fixed notice (post/redirect/get).
func (h *Handler) act(w http.ResponseWriter, r *http.Request, op, done string, f func(user string) error) {
	u, ok := h.signedIn(w, r)
	if !ok {
		return
	}
	if err := f(u); err != nil {
		st, msg := h.describe(op, err)
		h.renderAccount(w, r, st, &view{User: u, Error: msg})
		return
	}
	http.Redirect(w, r, "/account?done="+done, http.StatusSeeOther)
}

func formField(r *http.Request, name string, max int) (string, error) {
	v := strings.TrimSpace(r.PostFormValue(name))
	if v == "" {
		return "", badInput("The form field %q is empty.", name)
	}
	if len(v) > max {
		return "", badInput("The form field %q is longer than %d characters.", name, max)
	}
	return v, nil
}

func (h *Handler) renameFactor(w http.ResponseWriter, r *http.Request) {
	h.act(w, r, "Renaming the factor", "renamed", func(u string) error {
		id, err := formField(r, "id", 64)
		if err != nil {
			return err
		}
		name, err := formField(r, "name", 100)
		if err != nil {
			return err
		}
		ctx, cancel := h.ctx(r)
		defer cancel()
		_, err = h.c.Enrollment.RenameFactor(ctx, &pb.RenameFactorRequest{UserId: u, FactorId: id, Name: name})
		return err
	})
}

func (h *Handler) removeFactor(w http.ResponseWriter, r *http.Request) {
	h.act(w, r, "Removing the factor", "removed", func(u string) error {
		id, err := formField(r, "id", 64)
		if err != nil {
			return err
		}
		ctx, cancel := h.ctx(r)
		defer cancel()
		_, err = h.c.Enrollment.RemoveFactor(ctx, &pb.RemoveFactorRequest{UserId: u, FactorId: id})
		return err
	})
}

// totpBegin starts a TOTP enrollment and shows the QR code and secret once.
func (h *Handler) totpBegin(w http.ResponseWriter, r *http.Request) {
	u, ok := h.signedIn(w, r)
	if !ok {
		return
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	if name == "" {
		name = "Authenticator app"
	}
	if len(name) > 100 {
		h.renderAccount(w, r, http.StatusBadRequest, &view{User: u, Error: "The factor name is longer than 100 characters."})
		return
	}
	ctx, cancel := h.ctx(r)
	defer cancel()
	b, err := h.c.EnrollTOTP(ctx, u, u, name)
	if err != nil {
		st, msg := h.describe("Adding an authenticator app", err)
		h.renderAccount(w, r, st, &view{User: u, Error: msg})
		return
	}
	v := &view{Title: "Add an authenticator app", User: u, TOTP: b, FactorID: b.GetFactorId()}
	if png := b.GetTotp().GetQrPng(); len(png) > 0 {
		// Built here from authd's bytes, never from request input.
		v.QR = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png))
	}
	h.render(w, http.StatusOK, "totp.html", v)
}

// totpFinish proves the new TOTP factor with a code. A wrong code shows the code
// field again, without the secret: it is shown only once.
func (h *Handler) totpFinish(w http.ResponseWriter, r *http.Request) {
	h.finishWithCode(w, r, codePage{page: "totp.html", title: "Add an authenticator app",
		hint: "Enter the code your app shows now.", done: "totp"})
}

// codePage is what differs between the pages that prove a new factor with a code.
type codePage struct {
	page, title string // the template and its title
	hint        string // shown when the code is missing or too long
	done        string // the account page's done= after success
}

// finishWithCode proves the pending factor the form names with the form's code; on
// a refusal it shows the code page p again with the reason.
func (h *Handler) finishWithCode(w http.ResponseWriter, r *http.Request, p codePage) {
	u, ok := h.signedIn(w, r)
	if !ok {
		return
	}
	id := strings.TrimSpace(r.PostFormValue("factor_id"))
	code := strings.TrimSpace(r.PostFormValue("code"))
	retry := func(st int, msg string) {
		h.render(w, st, p.page, &view{Title: p.title, User: u, FactorID: id, Error: msg})
	}
	if id == "" || len(id) > 64 {
		retry(http.StatusBadRequest, "The form lost the factor id; start again from the account page.")
		return
	}
	if code == "" || len(code) > 16 {
		retry(http.StatusBadRequest, p.hint)
		return
	}
	ctx, cancel := h.ctx(r)
	defer cancel()
	if _, err := h.c.FinishWithCode(ctx, u, id, code); err != nil {
		st, msg := h.describe("Checking the code", err)
		retry(st, msg)
		return
	}
	http.Redirect(w, r, "/account?done="+p.done, http.StatusSeeOther)
}

// enrollWebAuthnBegin answers the creation options for navigator.credentials.create.
func (h *Handler) enrollWebAuthnBegin(w http.ResponseWriter, r *http.Request) {
	u, ok := h.signedInJSON(w, r)
	if !ok {
		return
	}
	var in struct {
		Name         string `json:"name"`
		Discoverable bool   `json:"discoverable"`
	}
	if err := readJSON(r, &in); err != nil {
		h.jsonFail(w, "Adding a security key", err)
		return
	}
	in.Name = strings.TrimSpace(in.Name)
	if in.Name == "" {
		in.Name = "Security key"
		if in.Discoverable {
			in.Name = "Passkey"
		}
	}
	if len(in.Name) > 100 {
		h.jsonFail(w, "Adding a security key", badInput("The name is longer than 100 characters."))
		return
	}
	ctx, cancel := h.ctx(r)
	defer cancel()
	b, err := h.c.Enrollment.BeginEnrollment(ctx, &pb.BeginEnrollmentRequest{
		UserId: u, Method: pb.Method_METHOD_WEBAUTHN, Name: in.Name,
		Options: &pb.BeginEnrollmentRequest_Webauthn{Webauthn: &pb.WebAuthnEnrollmentOptions{
			UserName: u, DisplayName: u, Discoverable: in.Discoverable,
		}},
	})
	if err != nil {
		h.jsonFail(w, "Adding a security key", err)
		return
	}
	writeJSON(w, http.StatusOK, jsonAnswer{OK: true, FactorID: b.GetFactorId(), Options: json.RawMessage(b.GetWebauthn().GetCreationOptionsJson())})
}

// enrollWebAuthnFinish hands the browser's attestation to authd. authd checks that
// the factor belongs to the signed-in user.
func (h *Handler) enrollWebAuthnFinish(w http.ResponseWriter, r *http.Request) {
	u, ok := h.signedInJSON(w, r)
	if !ok {
		return
	}
	var in struct {
		FactorID   string          `json:"factorId"`
		Credential json.RawMessage `json:"credential"`
	}
	if err := readJSON(r, &in); err != nil {
		h.jsonFail(w, "Adding a security key", err)
		return
	}
	if in.FactorID == "" || len(in.Credential) == 0 {
		h.jsonFail(w, "Adding a security key", badInput("factorId and credential are required."))
		return
	}
	ctx, cancel := h.ctx(r)
	defer cancel()
	f, err := h.c.Enrollment.FinishEnrollment(ctx, &pb.FinishEnrollmentRequest{
		UserId: u, FactorId: in.FactorID,
		Proof: &pb.FinishEnrollmentRequest_WebauthnAttestationJson{WebauthnAttestationJson: string(in.Credential)},
	})
	if err != nil {
		h.jsonFail(w, "Adding a security key", err)
		return
	}
	writeJSON(w, http.StatusOK, jsonAnswer{OK: true, FactorID: f.GetFactor().GetId(), Message: "Added “" + f.GetFactor().GetName() + "”.", Redirect: "/account?done=webauthn"})
}

// backupCodes issues a new set and shows it once (the page is not cached).
func (h *Handler) backupCodes(w http.ResponseWriter, r *http.Request) {
	u, ok := h.signedIn(w, r)
	if !ok {
		return
	}
	ctx, cancel := h.ctx(r)
	defer cancel()
	res, err := h.c.Enrollment.IssueBackupCodes(ctx, &pb.IssueBackupCodesRequest{UserId: u})
	if err != nil {
		st, msg := h.describe("Generating backup codes", err)
		h.renderAccount(w, r, st, &view{User: u, Error: msg})
		return
	}
	h.renderAccount(w, r, http.StatusOK, &view{User: u, BackupCodes: res.GetCodes(),
		Notice: "New backup codes: they are shown only now, and the old ones no longer work."})
}

func (h *Handler) issueAppPassword(w http.ResponseWriter, r *http.Request) {
	u, ok := h.signedIn(w, r)
	if !ok {
		return
	}
	fail := func(err error) {
		st, msg := h.describe("Creating an app password", err)
		h.renderAccount(w, r, st, &view{User: u, Error: msg})
	}
	name, err := formField(r, "name", 100)
	if err != nil {
		fail(err)
		return
	}
	ctx, cancel := h.ctx(r)
	defer cancel()
	res, err := h.c.AppPasswords.IssueAppPassword(ctx, &pb.IssueAppPasswordRequest{UserId: u, Name: name, Scope: &pb.AppPasswordScope{
		ReadOnly: r.PostFormValue("read_only") != "", FilesystemOnly: r.PostFormValue("filesystem_only") != "",
	}})
	if err != nil {
		fail(err)
		return
	}
	h.renderAccount(w, r, http.StatusOK, &view{User: u, NewAppPW: res})
}

func (h *Handler) revokeAppPassword(w http.ResponseWriter, r *http.Request) {
	h.act(w, r, "Revoking the app password", "revoked", func(u string) error {
		id, err := formField(r, "id", 64)
		if err != nil {
			return err
		}
		ctx, cancel := h.ctx(r)
		defer cancel()
		_, err = h.c.AppPasswords.RevokeAppPassword(ctx, &pb.RevokeAppPasswordRequest{UserId: u, AppPasswordId: id})
		return err
	})
}

// passwordCheck asks authd whether a password is in a known breach. The password
// goes to authd only (which sends out only a 5-hex-digit SHA-1 prefix, the
// k-anonymity range API of Pwned Passwords) and is neither stored, logged nor echoed.
func (h *Handler) passwordCheck(w http.ResponseWriter, r *http.Request) {
	u, ok := h.signedIn(w, r)
	if !ok {
		return
	}
	pw := r.PostFormValue("password")
	if pw == "" || len(pw) > 1024 {
		h.renderAccount(w, r, http.StatusBadRequest, &view{User: u, Error: "Enter a password of at most 1024 bytes to check."})
		return
	}
	ctx, cancel := h.ctx(r)
	defer cancel()
	res, err := h.c.Passwords.CheckPassword(ctx, &pb.CheckPasswordRequest{Input: &pb.CheckPasswordRequest_Password{Password: pw}})
	if err != nil {
		st, msg := h.describe("Checking the password", err)
		h.renderAccount(w, r, st, &view{User: u, Error: msg})
		return
	}
	h.renderAccount(w, r, http.StatusOK, &view{User: u, Check: res})
}

// enrollWebAuthnCancel removes a pending WebAuthn enrollment the browser gave up
// on: a key refused by excludeCredentials (already registered), a cancelled or
// timed-out prompt. Only a pending WebAuthn factor of the signed-in user goes;
// without it the row would wait for its expiry.
func (h *Handler) enrollWebAuthnCancel(w http.ResponseWriter, r *http.Request) {
	u, ok := h.signedInJSON(w, r)
	if !ok {
		return
	}
	var in struct {
		FactorID string `json:"factorId"`
	}
	if err := readJSON(r, &in); err != nil {
		h.jsonFail(w, "Cancelling the enrollment", err)
		return
	}
	ctx, cancel := h.ctx(r)
	defer cancel()
	fs, err := h.c.Enrollment.ListFactors(ctx, &pb.ListFactorsRequest{UserId: u})
	if err != nil {
		h.jsonFail(w, "Cancelling the enrollment", err)
		return
	}
	for _, f := range fs.GetFactors() {
		if f.GetId() != in.FactorID || f.GetMethod() != pb.Method_METHOD_WEBAUTHN || f.GetState() != pb.FactorState_FACTOR_STATE_PENDING {
			continue
		}
		if _, err := h.c.Enrollment.RemoveFactor(ctx, &pb.RemoveFactorRequest{UserId: u, FactorId: f.GetId()}); err != nil {
			h.jsonFail(w, "Cancelling the enrollment", err)
			return
		}
	}
	writeJSON(w, http.StatusOK, jsonAnswer{OK: true})
}
