package main

import (
	"flag"
	"fmt"
	"strings"

	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
)

func init() {
	register("backup-codes issue", command{usage: "backup-codes issue <user>", help: "replace a user's backup codes with a new set (shown once)", run: backupIssue})
	register("backup-codes status", command{usage: "backup-codes status <user>", help: "how many backup codes are left", run: backupStatus})
	register("admin code", command{usage: "admin code -actor A <user> [-ttl 24h]", help: "issue a one-time admin backup code for a locked-out user", run: adminCode})
	register("admin reset", command{usage: "admin reset -actor A <user> [-factor ID]", help: "remove one or all second factors of a user", run: adminReset})
	register("admin delete-user", command{usage: "admin delete-user -actor A <user>", help: "remove everything stored about a user", run: adminDeleteUser})
	register("groups set", command{usage: "groups set <user> [group …]", help: "replace the groups a user belongs to", run: groupsSet})
	register("groups admins", command{usage: "groups admins <group> [user …]", help: "replace the admins of a group", run: groupsAdmins})
	register("policy show", command{usage: "policy show", help: "show the 2FA policy", run: policyShow})
	register("policy set", command{usage: "policy set -actor A [-enforced] [-groups g,…] [-exclude g,…] [-allow m,…] [-grace 72h] [-require-uv] [-passkey-login] [-remember] [-remember-groups g,…] [-remember-deny g,…] [-remember-max-age 720h]", help: "replace the 2FA policy", run: policySet})
	register("requirements", command{usage: "requirements <user>", help: "what a login of the user needs (GetLoginRequirements)", run: requirements})
}

func backupIssue(e *env, args []string) error {
	if err := need(args, 1, "backup-codes issue <user>"); err != nil {
		return err
	}
	resp, err := e.c.Enrollment.IssueBackupCodes(e.ctx, &pb.IssueBackupCodesRequest{UserId: args[0]})
	if err != nil {
		return err
	}
	fmt.Fprintln(e.out, "Backup codes (each works once; they are shown only now):")
	for _, c := range resp.GetCodes() {
		fmt.Fprintln(e.out, "  "+c)
	}
	return nil
}

func backupStatus(e *env, args []string) error {
	if err := need(args, 1, "backup-codes status <user>"); err != nil {
		return err
	}
	s, err := e.c.Enrollment.GetBackupCodesStatus(e.ctx, &pb.GetBackupCodesStatusRequest{UserId: args[0]})
	if err != nil {
		return err
	}
	if !s.GetEnabled() {
		fmt.Fprintln(e.out, "no backup codes")
		return nil
	}
	fmt.Fprintf(e.out, "%d of %d left (made %s)\n", s.GetRemaining(), s.GetTotal(), when(s.GetCreatedAt()))
	return nil
}

// actorFlags parses "-actor A" (required) plus extra flags around one user argument.
func actorFlags(fs *flag.FlagSet, args []string, use string) (actor, user string, err error) {
	a := fs.String("actor", "", "the admin acting (required)")
	user, err = userThenFlags(fs, args, use)
	if err != nil {
		return "", "", err
	}
	if *a == "" {
		return "", "", fmt.Errorf("-actor is required: usage: authctl %s", use)
	}
	return *a, user, nil
}

func adminCode(e *env, args []string) error {
	fs := flag.NewFlagSet("admin code", flag.ContinueOnError)
	ttl := fs.Duration("ttl", 0, "validity (default: the server's, 24h)")
	actor, user, err := actorFlags(fs, args, "admin code -actor A <user> [-ttl 24h]")
	if err != nil {
		return err
	}
	req := &pb.IssueAdminBackupCodeRequest{ActorId: actor, UserId: user}
	if *ttl > 0 {
		req.Ttl = durationpb.New(*ttl)
	}
	resp, err := e.c.Admin.IssueAdminBackupCode(e.ctx, req)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.out, "Admin code for %s (works once, until %s):\n  %s\n", user, when(resp.GetExpiresAt()), resp.GetCode())
	return nil
}

func adminReset(e *env, args []string) error {
	fs := flag.NewFlagSet("admin reset", flag.ContinueOnError)
	factor := fs.String("factor", "", "one factor id (default: all factors and backup codes)")
	actor, user, err := actorFlags(fs, args, "admin reset -actor A <user> [-factor ID]")
	if err != nil {
		return err
	}
	resp, err := e.c.Admin.ResetFactors(e.ctx, &pb.ResetFactorsRequest{ActorId: actor, UserId: user, FactorId: *factor})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.out, "removed %d\n", resp.GetRemoved())
	return nil
}

func adminDeleteUser(e *env, args []string) error {
	fs := flag.NewFlagSet("admin delete-user", flag.ContinueOnError)
	actor, user, err := actorFlags(fs, args, "admin delete-user -actor A <user>")
	if err != nil {
		return err
	}
	if _, err := e.c.Admin.DeleteUser(e.ctx, &pb.DeleteUserRequest{ActorId: actor, UserId: user}); err != nil {
		return err
	}
	fmt.Fprintln(e.out, "deleted")
	return nil
}

func groupsSet(e *env, args []string) error {
	if len(args) < 1 {
		return fmt.Errorf("usage: authctl groups set <user> [group …]")
	}
	_, err := e.c.Admin.SetUserGroups(e.ctx, &pb.SetUserGroupsRequest{UserId: args[0], Groups: args[1:]})
	if err == nil {
		fmt.Fprintln(e.out, "ok")
	}
	return err
}

func groupsAdmins(e *env, args []string) error {
	if len(args) < 1 {
		return fmt.Errorf("usage: authctl groups admins <group> [user …]")
	}
	_, err := e.c.Admin.SetGroupAdmins(e.ctx, &pb.SetGroupAdminsRequest{Group: args[0], AdminUserIds: args[1:]})
	if err == nil {
		fmt.Fprintln(e.out, "ok")
	}
	return err
}

func policyShow(e *env, args []string) error {
	if err := need(args, 0, "policy show"); err != nil {
		return err
	}
	resp, err := e.c.Admin.GetPolicy(e.ctx, &pb.GetPolicyRequest{})
	if err != nil {
		return err
	}
	printPolicy(e, resp.GetPolicy())
	return nil
}

func printPolicy(e *env, p *pb.Policy) {
	allowed := "all"
	if len(p.GetAllowedMethods()) > 0 {
		var ms []string
		for _, m := range p.GetAllowedMethods() {
			ms = append(ms, methodWord(m))
		}
		allowed = strings.Join(ms, ", ")
	}
	fmt.Fprintf(e.out, "allowed methods:      %s\nenforced for all:     %v\nenforced groups:      %s\nexcluded groups:      %s\ngrace period:         %s\nwebauthn requires UV: %v\npasskey is a login:   %v\n",
		allowed, p.GetEnforced(), strings.Join(p.GetEnforcedGroups(), ", "), strings.Join(p.GetExcludedGroups(), ", "),
		p.GetGracePeriod().AsDuration(), p.GetWebauthnRequireUserVerification(), p.GetPasskeyCompleteLogin())
	fmt.Fprintf(e.out, "remember devices:     %v\nremember groups:      %s\nnever remember:       %s\nremembered for:       %s\n",
		p.GetRememberDevice(), strings.Join(p.GetRememberDeviceGroups(), ", "), strings.Join(p.GetRememberDeviceDeniedGroups(), ", "),
		p.GetRememberDeviceMaxAge().AsDuration())
}

func methodWord(m pb.Method) string {
	return strings.ToLower(strings.TrimPrefix(m.String(), "METHOD_"))
}

func policySet(e *env, args []string) error {
	fs := flag.NewFlagSet("policy set", flag.ContinueOnError)
	actor := fs.String("actor", "", "the admin acting (required)")
	enforced := fs.Bool("enforced", false, "enforce 2FA for everyone")
	groups := fs.String("groups", "", "enforce 2FA for these groups")
	exclude := fs.String("exclude", "", "never force these groups")
	allow := fs.String("allow", "", "allowed methods (totp,webauthn,backup_code,admin_code); default all")
	grace := fs.Duration("grace", 0, "how long an enforced user may log in without a factor")
	uv := fs.Bool("require-uv", false, "WebAuthn logins must verify the user")
	passkey := fs.Bool("passkey-login", false, "a passkey counts as a complete login")
	remember := fs.Bool("remember", false, "allow \"remember this device\" for everyone")
	rememberGroups := fs.String("remember-groups", "", "allow \"remember this device\" for these groups")
	rememberDeny := fs.String("remember-deny", "", "never remember devices of these groups")
	rememberAge := fs.Duration("remember-max-age", 0, "absolute lifetime of a remembered device (default 720h, at most 9600h)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *actor == "" {
		return fmt.Errorf("-actor is required")
	}
	p := &pb.Policy{
		Enforced: *enforced, EnforcedGroups: list(*groups), ExcludedGroups: list(*exclude),
		GracePeriod: durationpb.New(*grace), WebauthnRequireUserVerification: *uv, PasskeyCompleteLogin: *passkey,
		RememberDevice: *remember, RememberDeviceGroups: list(*rememberGroups), RememberDeviceDeniedGroups: list(*rememberDeny),
	}
	if *rememberAge != 0 {
		p.RememberDeviceMaxAge = durationpb.New(*rememberAge)
	}
	for _, m := range list(*allow) {
		v, ok := pb.Method_value["METHOD_"+strings.ToUpper(m)]
		if !ok {
			return fmt.Errorf("-allow: unknown method %q", m)
		}
		p.AllowedMethods = append(p.AllowedMethods, pb.Method(v))
	}
	resp, err := e.c.Admin.SetPolicy(e.ctx, &pb.SetPolicyRequest{ActorId: *actor, Policy: p})
	if err != nil {
		return err
	}
	printPolicy(e, resp.GetPolicy())
	return nil
}

func requirements(e *env, args []string) error {
	if err := need(args, 1, "requirements <user>"); err != nil {
		return err
	}
	r, err := e.c.Challenges.GetLoginRequirements(e.ctx, &pb.GetLoginRequirementsRequest{UserId: args[0]})
	if err != nil {
		return err
	}
	var avail []string
	for _, m := range r.GetAvailableMethods() {
		avail = append(avail, methodWord(m))
	}
	fmt.Fprintf(e.out, "second factor required: %v\navailable methods:      %s\nmust enroll:            %v\nin grace:               %v (until %s)\n",
		r.GetSecondFactorRequired(), strings.Join(avail, ", "), r.GetMustEnroll(), r.GetInGrace(), when(r.GetGraceUntil()))
	return nil
}

func list(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
