package main

import (
	"flag"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
)

func init() {
	register("code enroll", command{
		usage: "code enroll <user> -method email|sms|signal|telegram [-to DEST] [-replaces FACTOR] [-locale L] [-name N]",
		help:  "enroll a destination for codes: asks for the code sent to it (\"resend\" sends it again); Telegram shows a link to open",
		run:   codeEnroll,
	})
}

var codeMethods = map[string]pb.Method{"email": pb.Method_METHOD_EMAIL, "sms": pb.Method_METHOD_SMS,
	"signal": pb.Method_METHOD_SIGNAL, "telegram": pb.Method_METHOD_TELEGRAM}

func codeEnroll(e *env, args []string) error {
	fs := flag.NewFlagSet("code enroll", flag.ContinueOnError)
	method := fs.String("method", "email", "email, sms, signal or telegram")
	to := fs.String("to", "", "email address or phone number (E.164, +49 …); not for telegram")
	replaces := fs.String("replaces", "", "factor id of the destination this one replaces")
	locale := fs.String("locale", "", "locale of the messages, e.g. de-DE")
	name := fs.String("name", "", "factor name (default: the masked destination)")
	user, err := userThenFlags(fs, args, "code enroll <user> -method M [-to DEST]")
	if err != nil {
		return err
	}
	m, ok := codeMethods[*method]
	if !ok {
		return fmt.Errorf("-method %q: want email, sms, signal or telegram", *method)
	}
	resp, err := e.c.Enrollment.BeginEnrollment(e.ctx, &pb.BeginEnrollmentRequest{UserId: user, Method: m, Name: *name,
		Options: &pb.BeginEnrollmentRequest_OutOfBand{OutOfBand: &pb.OutOfBandEnrollmentOptions{
			Destination: *to, ReplacesFactorId: *replaces, Locale: *locale}}})
	if err != nil {
		return err
	}
	if m == pb.Method_METHOD_TELEGRAM {
		return telegramEnroll(e, user, resp)
	}
	fmt.Fprintf(e.out, "A %d-digit code was sent to %s.\n", resp.GetOutOfBand().GetCodeDigits(), resp.GetOutOfBand().GetMaskedDestination())
	return finishCodeEnroll(e, user, resp.GetFactorId(), *locale)
}

func finishCodeEnroll(e *env, user, factorID, locale string) error {
	for {
		code, err := e.prompt("Code (or \"resend\"): ")
		if err != nil {
			return fmt.Errorf("enrollment left pending: %w", err)
		}
		if strings.TrimSpace(code) == "resend" {
			if _, err := e.c.Enrollment.ResendEnrollmentCode(e.ctx, &pb.ResendEnrollmentCodeRequest{UserId: user, FactorId: factorID, Locale: locale}); err != nil {
				fmt.Fprintln(e.out, "Not resent:", status.Convert(err).Message())
			} else {
				fmt.Fprintln(e.out, "Sent again.")
			}
			continue
		}
		f, err := e.c.FinishWithCode(e.ctx, user, factorID, code)
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

func telegramEnroll(e *env, user string, resp *pb.BeginEnrollmentResponse) error {
	fmt.Fprintf(e.out, "Open this link in Telegram and press Start (valid until %s):\n  %s\n",
		when(resp.GetExpiresAt()), resp.GetOutOfBand().GetTelegramLink())
	for {
		if _, err := e.prompt("Press Enter once the bot answered: "); err != nil {
			return fmt.Errorf("enrollment left pending: %w", err)
		}
		fin, err := e.c.Enrollment.FinishEnrollment(e.ctx, &pb.FinishEnrollmentRequest{UserId: user, FactorId: resp.GetFactorId()})
		if err == nil {
			fmt.Fprintf(e.out, "Enrolled %q (factor %s, %s).\n", fin.GetFactor().GetName(), fin.GetFactor().GetId(),
				fin.GetFactor().GetOutOfBand().GetMaskedDestination())
			return nil
		}
		st := status.Convert(err)
		if st.Code() != codes.FailedPrecondition || !strings.Contains(st.Message(), "not pressed Start") {
			return err
		}
		fmt.Fprintln(e.out, "Not bound yet.")
	}
}

// resendChallenge asks for a challenge's code again (login's "resend").
func resendChallenge(e *env, challengeID string) {
	r, err := e.c.Challenges.ResendChallenge(e.ctx, &pb.ResendChallengeRequest{ChallengeId: challengeID, Context: &pb.ClientContext{Client: "authctl"}})
	if err != nil {
		fmt.Fprintln(e.out, "Not resent:", status.Convert(err).Message())
		return
	}
	fmt.Fprintf(e.out, "Sent again (send %d).\n", r.GetDelivery().GetSends())
}
