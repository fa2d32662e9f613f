package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"golang.org/x/term"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
)

func init() {
	register("app-password issue", command{usage: "app-password issue <user> -name N [-read-only] [-files-only]", help: "issue an app password for a DAV or sync client (shown once)", run: appIssue})
	register("app-password list", command{usage: "app-password list <user>", help: "list a user's app passwords", run: appList})
	register("app-password revoke", command{usage: "app-password revoke <user> <id>|-all", help: "revoke one or all app passwords", run: appRevoke})
	register("app-password verify", command{usage: "app-password verify <login>", help: "check an app password (read from the terminal)", run: appVerify})
	register("password check", command{usage: "password check", help: "check a password against known breaches (read from the terminal)", run: passwordCheck})
	register("keys list", command{usage: "keys list <user>", help: "list a user's WebAuthn security keys and passkeys", run: keysList})
	register("keys remove", command{usage: "keys remove <user> <factor-id>", help: "remove a security key", run: factorsRemove})
}

func appIssue(e *env, args []string) error {
	fs := flag.NewFlagSet("app-password issue", flag.ContinueOnError)
	name := fs.String("name", "", "client name, e.g. \"Thunderbird on laptop\" (required)")
	ro := fs.Bool("read-only", false, "read-only scope")
	files := fs.Bool("files-only", false, "filesystem-only scope")
	user, err := userThenFlags(fs, args, "app-password issue <user> -name N")
	if err != nil {
		return err
	}
	resp, err := e.c.AppPasswords.IssueAppPassword(e.ctx, &pb.IssueAppPasswordRequest{
		UserId: user, Name: *name, Scope: &pb.AppPasswordScope{ReadOnly: *ro, FilesystemOnly: *files},
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.out, "App password %q (id %s), shown only now:\n  %s\n", resp.GetAppPassword().GetName(), resp.GetAppPassword().GetId(), resp.GetPassword())
	return nil
}

func appList(e *env, args []string) error {
	if err := need(args, 1, "app-password list <user>"); err != nil {
		return err
	}
	resp, err := e.c.AppPasswords.ListAppPasswords(e.ctx, &pb.ListAppPasswordsRequest{UserId: args[0]})
	if err != nil {
		return err
	}
	if len(resp.GetAppPasswords()) == 0 {
		fmt.Fprintln(e.out, "no app passwords")
		return nil
	}
	fmt.Fprintf(e.out, "%-36s  %-16s  %-16s  %-15s  %-10s  %s\n", "ID", "CREATED", "LAST USED", "LAST IP", "SCOPE", "NAME")
	for _, a := range resp.GetAppPasswords() {
		scope := "full"
		switch {
		case a.GetScope().GetReadOnly() && a.GetScope().GetFilesystemOnly():
			scope = "ro,files"
		case a.GetScope().GetReadOnly():
			scope = "read-only"
		case a.GetScope().GetFilesystemOnly():
			scope = "files"
		}
		fmt.Fprintf(e.out, "%-36s  %-16s  %-16s  %-15s  %-10s  %s\n", a.GetId(), when(a.GetCreatedAt()), when(a.GetLastUsedAt()), orDash(a.GetLastClientIp()), scope, a.GetName())
	}
	return nil
}

func appRevoke(e *env, args []string) error {
	if len(args) == 2 && args[1] == "-all" {
		resp, err := e.c.AppPasswords.RevokeAllAppPasswords(e.ctx, &pb.RevokeAllAppPasswordsRequest{UserId: args[0]})
		if err == nil {
			fmt.Fprintf(e.out, "revoked %d\n", resp.GetRevoked())
		}
		return err
	}
	if err := need(args, 2, "app-password revoke <user> <id>|-all"); err != nil {
		return err
	}
	_, err := e.c.AppPasswords.RevokeAppPassword(e.ctx, &pb.RevokeAppPasswordRequest{UserId: args[0], AppPasswordId: args[1]})
	if err == nil {
		fmt.Fprintln(e.out, "revoked")
	}
	return err
}

// secret reads a secret without echo from a terminal, or a line from a pipe.
func (e *env) secret(q string) (string, error) {
	if f, ok := e.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(e.out, q)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.out)
		return string(b), err
	}
	return e.prompt(q)
}

func appVerify(e *env, args []string) error {
	if err := need(args, 1, "app-password verify <login>"); err != nil {
		return err
	}
	pw, err := e.secret("App password: ")
	if err != nil {
		return err
	}
	resp, err := e.c.AppPasswords.VerifyAppPassword(e.ctx, &pb.VerifyAppPasswordRequest{Login: args[0], Password: pw, Context: &pb.ClientContext{Client: "authctl"}})
	if err != nil {
		return err
	}
	switch {
	case resp.GetThrottled():
		fmt.Fprintf(e.out, "throttled: retry in %s\n", resp.GetRetryAfter().AsDuration())
	case resp.GetValid():
		fmt.Fprintf(e.out, "valid: user %s, app password %s\n", resp.GetUserId(), resp.GetAppPasswordId())
	default:
		fmt.Fprintln(e.out, "invalid")
	}
	return nil
}

func passwordCheck(e *env, args []string) error {
	if err := need(args, 0, "password check"); err != nil {
		return err
	}
	pw, err := e.secret("Password: ")
	if err != nil {
		return err
	}
	resp, err := e.c.Passwords.CheckPassword(e.ctx, &pb.CheckPasswordRequest{Input: &pb.CheckPasswordRequest_Password{Password: pw}})
	if err != nil {
		return err
	}
	switch {
	case !resp.GetChecked():
		fmt.Fprintln(e.out, "could not check (the lookup is unavailable; failing open)")
	case resp.GetBreached():
		fmt.Fprintf(e.out, "BREACHED: seen %d times in known breaches; do not use it\n", resp.GetCount())
	default:
		fmt.Fprintln(e.out, "not found in known breaches")
	}
	return nil
}

func keysList(e *env, args []string) error {
	if err := need(args, 1, "keys list <user>"); err != nil {
		return err
	}
	resp, err := e.c.Enrollment.ListFactors(e.ctx, &pb.ListFactorsRequest{UserId: args[0]})
	if err != nil {
		return err
	}
	n := 0
	for _, f := range resp.GetFactors() {
		w := f.GetWebauthn()
		if f.GetMethod() != pb.Method_METHOD_WEBAUTHN || w == nil {
			continue
		}
		if n == 0 {
			fmt.Fprintf(e.out, "%-36s  %-8s  %-16s  %-16s  %-10s  %s\n", "ID", "STATE", "CREATED", "LAST USED", "KIND", "NAME")
		}
		n++
		kind := "key"
		switch {
		case w.GetLegacyU2F():
			kind = "u2f"
		case w.GetDiscoverable():
			kind = "passkey"
		}
		if w.GetCloneWarning() {
			kind += " CLONED?"
		}
		fmt.Fprintf(e.out, "%-36s  %-8s  %-16s  %-16s  %-10s  %s\n", f.GetId(),
			strings.ToLower(strings.TrimPrefix(f.GetState().String(), "FACTOR_STATE_")), when(f.GetCreatedAt()), when(f.GetLastUsedAt()), kind, f.GetName())
	}
	if n == 0 {
		fmt.Fprintln(e.out, "no security keys")
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
