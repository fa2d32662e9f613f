package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/mdp/qrterminal/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/twofactor/twofactor/clients/pushdevice"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
)

// The terminal push device: a key in a file, requests signed with it.
func init() {
	register("push enroll", command{usage: "push enroll <user>",
		help: "begin a push device's enrollment: shows the one-time token and its QR code", run: pushEnroll})
	register("device enroll", command{usage: "device enroll <token|twofactor-push:URI> [-name N] [-file F]",
		help: "enroll this terminal as a push-approval device (key kept in -file, mode 0600)", run: deviceEnroll})
	register("device listen", command{usage: "device listen [-file F]",
		help: "wait for push logins, show each one's context and ask for its number", run: deviceListen})
	register("device approve", command{usage: "device approve <challenge-id> <number> [-file F]",
		help: "approve a push login with the number the login screen shows", run: deviceApprove})
	register("device deny", command{usage: "device deny <challenge-id> [-not-me] [-file F]",
		help: "deny a push login (-not-me: \"this was not me\")", run: deviceDeny})
}

const defaultDeviceFile = "device.json"

func (e *env) devices() pb.DeviceServiceClient { return pb.NewDeviceServiceClient(e.c.Conn()) }

// parseFlags parses args with flags before or after the positional ones. An
// argument that starts with "-" but names no flag of fs is positional: an
// enrollment token or a link token is base64url and may start with "-".
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for i := 0; i < len(args); {
		name, isFlag := flagName(fs, args[i])
		switch {
		case !isFlag:
			pos = append(pos, args[i])
			i++
			continue
		case args[i] == "--":
			return append(pos, args[i+1:]...), nil
		}
		n := 1 // the flag, and its value when it needs one and has no "="
		if f := fs.Lookup(name); f != nil && !strings.Contains(args[i], "=") && !isBoolFlag(f) && i+1 < len(args) {
			n = 2
		}
		if err := fs.Parse(args[i : i+n]); err != nil {
			return nil, err
		}
		i += n
	}
	return pos, nil
}

// flagName returns the flag arg names and whether it is one of fs's (or asks
// for help, or is the "--" that ends the flags); anything not starting with
// "-" is not one.
func flagName(fs *flag.FlagSet, arg string) (string, bool) {
	if len(arg) < 2 || arg[0] != '-' {
		return "", false
	}
	name, _, _ := strings.Cut(strings.TrimPrefix(arg[1:], "-"), "=")
	return name, name == "" || name == "h" || name == "help" || fs.Lookup(name) != nil
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// enrollToken takes a token or the enrollment URI of its QR code.
func enrollToken(s string) string {
	if u, err := url.Parse(s); err == nil && u.Scheme == "twofactor-push" {
		return u.Query().Get("token")
	}
	return s
}

func pushEnroll(e *env, args []string) error {
	if err := need(args, 1, commands["push enroll"].usage); err != nil {
		return err
	}
	resp, err := e.c.Enrollment.BeginEnrollment(e.ctx, &pb.BeginEnrollmentRequest{UserId: args[0], Method: pb.Method_METHOD_PUSH})
	if err != nil {
		return err
	}
	p := resp.GetPush()
	fmt.Fprintln(e.out, "Scan this QR code with the device, or run on it: authctl device enroll <token>")
	qrterminal.GenerateWithConfig(p.GetUri(), qrterminal.Config{
		Level: qrterminal.L, Writer: e.out, HalfBlocks: true,
		BlackChar: qrterminal.BLACK_BLACK, WhiteBlackChar: qrterminal.WHITE_BLACK,
		WhiteChar: qrterminal.WHITE_WHITE, BlackWhiteChar: qrterminal.BLACK_WHITE, QuietZone: 2,
	})
	fmt.Fprintf(e.out, "Token: %s  (one use, expires %s)\n", p.GetToken(), when(resp.GetExpiresAt()))
	return nil
}

func deviceEnroll(e *env, args []string) error {
	fs := flag.NewFlagSet("device enroll", flag.ContinueOnError)
	name := fs.String("name", "Terminal", "device name")
	file := fs.String("file", defaultDeviceFile, "where to keep the device's key")
	pos, err := parseFlags(fs, args)
	if err != nil || len(pos) != 1 {
		return errors.Join(err, fmt.Errorf("usage: authctl %s", commands["device enroll"].usage))
	}
	d, err := pushdevice.New()
	if err != nil {
		return err
	}
	if err := d.Enroll(e.ctx, e.devices(), enrollToken(pos[0]), *name, "cli", nil); err != nil {
		return err
	}
	if err := d.Save(*file, ""); err != nil {
		return fmt.Errorf("enrolled as %s but not saved: %w", d.ID, err)
	}
	fmt.Fprintf(e.out, "Enrolled device %s for user %s (key in %s). Run: authctl device listen\n", d.ID, d.UserID, *file)
	return nil
}

func loadDevice(fs *flag.FlagSet, args []string, n int, usage string) (*pushdevice.Device, []string, error) {
	file := fs.String("file", defaultDeviceFile, "the device's key file")
	pos, err := parseFlags(fs, args)
	if err != nil || len(pos) != n {
		return nil, nil, errors.Join(err, fmt.Errorf("usage: authctl %s", usage))
	}
	d, _, err := pushdevice.Load(*file)
	return d, pos, err
}

func deviceListen(e *env, args []string) error {
	d, _, err := loadDevice(flag.NewFlagSet("device listen", flag.ContinueOnError), args, 0, commands["device listen"].usage)
	if err != nil {
		return err
	}
	client := e.devices()
	fmt.Fprintln(e.out, "Waiting for push logins (Ctrl-C to stop)…")
	for {
		opened := time.Now()
		err := e.listenOnce(d, client)
		// -timeout (or the caller) ended the listening; its deadline may come
		// as the server's DeadlineExceeded just before the context's own.
		if code := status.Code(err); e.ctx.Err() != nil || code == codes.DeadlineExceeded || code == codes.Canceled {
			return nil
		}
		switch {
		case errors.Is(err, io.EOF):
			// The stream's lifetime ended: open the next one, at once unless
			// it ended as soon as it opened (no tight loop against a proxy
			// that closes streams).
			if time.Since(opened) < time.Second && !e.pause(time.Second) {
				return nil
			}
		case status.Code(err) == codes.Unavailable:
			// The replica is stopping or gone (or authd is not there at all:
			// said, so that a wrong -addr does not look like a quiet wait):
			// reconnect after a pause.
			fmt.Fprintln(e.out, "   authd unavailable, retrying in a second:", status.Convert(err).Message())
			if !e.pause(time.Second) {
				return nil
			}
		default:
			return err
		}
	}
}

// pause waits d; false when the command's context ended first.
func (e *env) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-e.ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// listenOnce reads one WatchPushes stream until it ends and answers each push.
func (e *env) listenOnce(d *pushdevice.Device, c pb.DeviceServiceClient) error {
	stream, err := d.Watch(e.ctx, c)
	if err != nil {
		return err
	}
	for {
		msg, err := stream.Recv()
		if err != nil {
			return err
		}
		if err := e.answerPush(d, c, msg.GetPush().GetChallengeId()); err != nil {
			fmt.Fprintln(e.out, "  ", err)
		}
	}
}

// answerPush shows one push's context and asks the user.
func (e *env) answerPush(d *pushdevice.Device, c pb.DeviceServiceClient, id string) error {
	pc, err := d.Context(e.ctx, c, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.out, "\nSign-in request: %s from %s (%s) at %s, expires %s\n", orDash(pc.GetClient()), orDash(pc.GetClientIp()),
		orDash(pc.GetUserAgent()), when(pc.GetTime()), when(pc.GetExpiresAt()))
	q := "Type the number on the login screen (or n: deny, x: this was not me): "
	switch pc.GetNumberMode() {
	case pb.NumberMode_NUMBER_MODE_CHOICE:
		q = "Which number does the login screen show? " + strings.Join(pc.GetChoices(), " / ") + " (or n, x): "
	case pb.NumberMode_NUMBER_MODE_NONE:
		q = "Approve? y / n / x (this was not me): "
	}
	ans, err := e.prompt(q)
	if err != nil {
		return err
	}
	dec, number := pb.PushDecision_PUSH_DECISION_APPROVE, ans
	switch strings.ToLower(ans) {
	case "n", "no", "":
		dec, number = pb.PushDecision_PUSH_DECISION_DENY, ""
	case "x":
		dec, number = pb.PushDecision_PUSH_DECISION_NOT_ME, ""
	case "y", "yes":
		number = ""
	}
	resp, err := d.Respond(e.ctx, c, id, dec, number)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.out, "  →", resultText(resp))
	return nil
}

func deviceApprove(e *env, args []string) error {
	d, pos, err := loadDevice(flag.NewFlagSet("device approve", flag.ContinueOnError), args, 2, commands["device approve"].usage)
	if err != nil {
		return err
	}
	resp, err := d.Respond(e.ctx, e.devices(), pos[0], pb.PushDecision_PUSH_DECISION_APPROVE, pos[1])
	if err != nil {
		return err
	}
	fmt.Fprintln(e.out, resultText(resp))
	return nil
}

func deviceDeny(e *env, args []string) error {
	fs := flag.NewFlagSet("device deny", flag.ContinueOnError)
	notMe := fs.Bool("not-me", false, "report \"this was not me\"")
	d, pos, err := loadDevice(fs, args, 1, commands["device deny"].usage)
	if err != nil {
		return err
	}
	dec := pb.PushDecision_PUSH_DECISION_DENY
	if *notMe {
		dec = pb.PushDecision_PUSH_DECISION_NOT_ME
	}
	resp, err := d.Respond(e.ctx, e.devices(), pos[0], dec, "")
	if err != nil {
		return err
	}
	fmt.Fprintln(e.out, resultText(resp))
	return nil
}

func resultText(r *pb.RespondPushResponse) string {
	s := map[pb.PushResult]string{
		pb.PushResult_PUSH_RESULT_APPROVED:     "approved",
		pb.PushResult_PUSH_RESULT_DENIED:       "denied",
		pb.PushResult_PUSH_RESULT_WRONG_NUMBER: "wrong number: the login is denied",
		pb.PushResult_PUSH_RESULT_NOT_ME:       "denied and reported as not you",
	}[r.GetResult()]
	if r.GetLocked() {
		s += "; push logins are locked until you sign in another way"
	}
	return s
}

// loginPush is `login <user> -method push`: it sends the push, shows the number
// to type on the device and long-polls VerifyChallenge until the device answers
// (or the challenge expires).
func loginPush(e *env, user string) error {
	cc := &pb.ClientContext{Client: "authctl"}
	ch, err := e.c.Begin(e.ctx, user, pb.Method_METHOD_PUSH, cc)
	if err != nil {
		return err
	}
	if n := ch.GetPush().GetNumber(); n != "" {
		fmt.Fprintf(e.out, "Number: %s (type it on your device)\n", n)
	}
	fmt.Fprintf(e.out, "Push sent to %d device(s); waiting for the answer…\n", ch.GetPush().GetDevices())
	for {
		r, err := e.c.Challenges.VerifyChallenge(e.ctx, &pb.VerifyChallengeRequest{ChallengeId: ch.GetChallengeId(), Context: cc,
			Response: &pb.VerifyChallengeRequest_Push{Push: &pb.PushWait{Wait: durationpb.New(25 * time.Second)}}})
		if err != nil {
			return err
		}
		switch r.GetResult() {
		case pb.VerifyResult_VERIFY_RESULT_PENDING:
			continue
		case pb.VerifyResult_VERIFY_RESULT_ACCEPTED:
			fmt.Fprintf(e.out, "Accepted: %s passed the second factor%s.\n", r.GetUserId(), factorNote(r.GetFactorId()))
			return nil
		case pb.VerifyResult_VERIFY_RESULT_REJECTED:
			return fmt.Errorf("rejected (%s)", reason(r.GetReason()))
		case pb.VerifyResult_VERIFY_RESULT_THROTTLED:
			return fmt.Errorf("throttled: try again in %s", r.GetRetryAfter().AsDuration())
		}
		return fmt.Errorf("challenge over: %s", strings.TrimPrefix(r.GetResult().String(), "VERIFY_RESULT_"))
	}
}
