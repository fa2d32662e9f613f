package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/mdp/qrterminal/v3"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
)

func init() {
	register("totp enroll", command{
		usage: "totp enroll <user> [-account A] [-name N]",
		help:  "enroll an authenticator app: shows the QR code, then asks for a code",
		run:   totpEnroll,
	})
	register("login", command{
		usage: "login <user> [-method totp|backup_code|admin_code|email|sms|signal|telegram]",
		help:  "run a second-factor login interactively",
		run:   login,
	})
	register("factors list", command{usage: "factors list <user>", help: "list a user's factors", run: factorsList})
	register("factors remove", command{usage: "factors remove <user> <factor-id>", help: "remove a factor", run: factorsRemove})
	register("factors rename", command{usage: "factors rename <user> <factor-id> <name>", help: "rename a factor", run: factorsRename})
	register("health", command{usage: "health", help: "ask authd whether it is serving", run: healthCmd})
}

// qrCell paints one terminal cell in explicit colours, bright white on black,
// so the code reads the same on light and dark terminals (a block drawn in the
// terminal's own foreground colour comes out inverted on a light one).
func qrCell(ch string) string { return "\033[97;40m" + ch + "\033[0m" }

// drawQR prints uri as a QR code, two modules per cell (half blocks), with the
// four-module quiet zone the QR specification asks for (ISO/IEC 18004 §6.3.8).
func drawQR(w io.Writer, uri string) {
	qrterminal.GenerateWithConfig(uri, qrterminal.Config{
		Level: qrterminal.L, Writer: w, HalfBlocks: true,
		BlackChar: qrCell(qrterminal.BLACK_BLACK), WhiteBlackChar: qrCell(qrterminal.WHITE_BLACK),
		WhiteChar: qrCell(qrterminal.WHITE_WHITE), BlackWhiteChar: qrCell(qrterminal.BLACK_WHITE),
		QuietZone: qrterminal.QUIET_ZONE,
	})
}

func totpEnroll(e *env, args []string) error {
	fs := flag.NewFlagSet("totp enroll", flag.ContinueOnError)
	account := fs.String("account", "", "account name shown in the app (default: the user id)")
	name := fs.String("name", "Authenticator app", "factor name")
	user, err := userThenFlags(fs, args, "totp enroll <user> [-account A] [-name N]")
	if err != nil {
		return err
	}
	if *account == "" {
		*account = user
	}
	resp, err := e.c.EnrollTOTP(e.ctx, user, *account, *name)
	if err != nil {
		return err
	}
	t := resp.GetTotp()
	fmt.Fprintln(e.out, "Scan this QR code with an authenticator app (or enter the secret by hand):")
	drawQR(e.out, t.GetUri())
	fmt.Fprintf(e.out, "URI:    %s\nSecret: %s  (%s, %d digits, %ds)\n\n", t.GetUri(), group(t.GetSecret()), t.GetAlgorithm(), t.GetDigits(), t.GetPeriodSeconds())
	for {
		code, err := e.prompt("Code from the app: ")
		if err != nil {
			return fmt.Errorf("enrollment left pending: %w", err)
		}
		f, err := e.c.FinishWithCode(e.ctx, user, resp.GetFactorId(), code)
		if err == nil {
			fmt.Fprintf(e.out, "Enrolled %q (factor %s).\n", f.GetName(), f.GetId())
			return nil
		}
		st := status.Convert(err)
		if st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), "code:") {
			return err
		}
		fmt.Fprintf(e.out, "%s; try again.\n", strings.TrimPrefix(st.Message(), "code: "))
	}
}

// factorNote names the factor that passed, when the answer names one (backup
// and admin codes belong to no factor row).
func factorNote(id string) string {
	if id == "" {
		return ""
	}
	return " (factor " + id + ")"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func login(e *env, args []string) error {
	fs := flag.NewFlagSet("login", flag.ContinueOnError)
	method := fs.String("method", "totp", "totp, backup_code, admin_code, email, sms, signal or telegram")
	remember := fs.String("remember", "", "remember this device under this label (if policy allows): prints a device token")
	user, err := userThenFlags(fs, args, "login <user> [-method M] [-remember LABEL]")
	if err != nil {
		return err
	}
	m, ok := pb.Method_value["METHOD_"+strings.ToUpper(*method)]
	if !ok {
		return fmt.Errorf("-method %q: want totp, backup_code, admin_code, email, sms, signal or telegram", *method)
	}
	ch, err := e.c.Begin(e.ctx, user, pb.Method(m), &pb.ClientContext{Client: "authctl"})
	if err != nil {
		return err
	}
	q := "Code: "
	if oob := ch.GetOutOfBand(); oob != nil {
		fmt.Fprintf(e.out, "A %d-digit code was sent to %s.\n", oob.GetCodeDigits(), oob.GetMaskedDestination())
		q = "Code (or \"resend\"): "
	}
	for {
		code, err := e.prompt(q)
		if err != nil {
			return err
		}
		if ch.GetOutOfBand() != nil && strings.TrimSpace(code) == "resend" {
			resendChallenge(e, ch.GetChallengeId())
			continue
		}
		r, err := e.c.Challenges.VerifyChallenge(e.ctx, &pb.VerifyChallengeRequest{ChallengeId: ch.GetChallengeId(),
			Response: &pb.VerifyChallengeRequest_Code{Code: code}, Context: &pb.ClientContext{Client: "authctl"},
			RememberDevice: *remember != "", DeviceLabel: *remember})
		if err != nil {
			fmt.Fprintln(e.out, "Not a code:", err)
			continue
		}
		switch r.GetResult() {
		case pb.VerifyResult_VERIFY_RESULT_ACCEPTED:
			fmt.Fprintf(e.out, "Accepted: %s passed the second factor%s.\n", r.GetUserId(), factorNote(r.GetFactorId()))
			if r.GetDeviceToken() != "" {
				fmt.Fprintf(e.out, "Device remembered until %s; its token, shown only now:\n  %s\n", when(r.GetDeviceTokenExpiresAt()), r.GetDeviceToken())
			}
			return nil
		case pb.VerifyResult_VERIFY_RESULT_REJECTED:
			left := r.GetRemainingAttempts()
			if left <= 0 {
				return fmt.Errorf("rejected (%s); no attempts left on this challenge: start a new login", reason(r.GetReason()))
			}
			fmt.Fprintf(e.out, "Rejected (%s); %s left.\n", reason(r.GetReason()), plural(int(left), "attempt", "attempts"))
			if r.GetDelivery().GetState() == pb.DeliveryState_DELIVERY_STATE_FAILED {
				fmt.Fprintf(e.out, "The code could not be delivered (%s): try another method.\n", r.GetDelivery().GetReason())
			}
		case pb.VerifyResult_VERIFY_RESULT_THROTTLED:
			return fmt.Errorf("throttled: try again in %s", r.GetRetryAfter().AsDuration())
		default:
			return fmt.Errorf("challenge over: %s", strings.TrimPrefix(r.GetResult().String(), "VERIFY_RESULT_"))
		}
	}
}

func reason(r pb.RejectReason) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(r.String(), "REJECT_REASON_"), "_", " "))
}

func factorsList(e *env, args []string) error {
	if err := need(args, 1, "factors list <user>"); err != nil {
		return err
	}
	resp, err := e.c.Enrollment.ListFactors(e.ctx, &pb.ListFactorsRequest{UserId: args[0]})
	if err != nil {
		return err
	}
	if len(resp.GetFactors()) == 0 {
		fmt.Fprintln(e.out, "no factors")
		return nil
	}
	fmt.Fprintf(e.out, "%-36s  %-10s  %-8s  %-16s  %-16s  %s\n", "ID", "METHOD", "STATE", "CREATED", "LAST USED", "NAME")
	for _, f := range resp.GetFactors() {
		fmt.Fprintf(e.out, "%-36s  %-10s  %-8s  %-16s  %-16s  %s\n", f.GetId(),
			strings.ToLower(strings.TrimPrefix(f.GetMethod().String(), "METHOD_")),
			strings.ToLower(strings.TrimPrefix(f.GetState().String(), "FACTOR_STATE_")),
			when(f.GetCreatedAt()), when(f.GetLastUsedAt()), f.GetName())
	}
	return nil
}

func factorsRemove(e *env, args []string) error {
	if err := need(args, 2, "factors remove <user> <factor-id>"); err != nil {
		return err
	}
	if _, err := e.c.Enrollment.RemoveFactor(e.ctx, &pb.RemoveFactorRequest{UserId: args[0], FactorId: args[1]}); err != nil {
		return err
	}
	fmt.Fprintln(e.out, "removed")
	return nil
}

func factorsRename(e *env, args []string) error {
	if err := need(args, 3, "factors rename <user> <factor-id> <name>"); err != nil {
		return err
	}
	_, err := e.c.Enrollment.RenameFactor(e.ctx, &pb.RenameFactorRequest{UserId: args[0], FactorId: args[1], Name: args[2]})
	if err == nil {
		fmt.Fprintln(e.out, "renamed")
	}
	return err
}

func healthCmd(e *env, args []string) error {
	resp, err := e.c.Health.Check(e.ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return err
	}
	fmt.Fprintln(e.out, resp.GetStatus())
	return nil
}

// userThenFlags reads "<user> [flags]" or "[flags] <user>".
func userThenFlags(fs *flag.FlagSet, args []string, use string) (string, error) {
	var user string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		user, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if user == "" && fs.NArg() == 1 {
		user = fs.Arg(0)
	} else if fs.NArg() != 0 || user == "" {
		return "", fmt.Errorf("usage: authctl %s", use)
	}
	return user, nil
}

// group splits a base32 secret in blocks of four for typing.
func group(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}
