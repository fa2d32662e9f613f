package bench

import (
	"context"
	"fmt"
	"time"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
)

// spaceEmail are the email logins' client addresses (203.0.113.0/24 and on, TEST-NET-3).
const spaceEmail = 203<<24 | 0<<16 | 113<<8

// outboxWait bounds the wait for one message in the outbox.
const outboxWait = 10 * time.Second

// emailLogin is a login with a code by email through authd's development
// outbox: BeginChallenge, the code read from the message file notifyd (in
// authd, or apart) wrote to the user's address, VerifyChallenge. Each user has one email factor,
// enrolled through the API in prepare, and one login at a time; authd must run
// with -otp-user-daily-cap and -otp-destination-daily-cap above the logins per
// user and day.
type emailLogin struct {
	cfg    *Config
	outbox *outboxWatcher
	users  chan emailUser
}

type emailUser struct {
	i      int
	factor string
}

func emailUserID(i int) string { return fmt.Sprintf("bench-email-%06d", i) }

func emailAddress(i int) string { return emailUserID(i) + "@bench.example" }

func (e *emailLogin) prepare(ctx context.Context) error {
	o, err := watchOutbox(e.cfg.OutboxDir)
	if err != nil {
		return err
	}
	e.outbox = o
	n := e.cfg.EmailUsers
	e.users = make(chan emailUser, n)
	return parallel(ctx, e.cfg.Workers, n, e.enroll)
}

// enroll gives user i an email factor, proved with the code of its outbox message.
func (e *emailLogin) enroll(ctx context.Context, i int) error {
	user := emailUserID(i)
	e.outbox.forget(emailAddress(i))
	en, err := e.cfg.Client.Enrollment.BeginEnrollment(ctx, &pb.BeginEnrollmentRequest{UserId: user, Method: pb.Method_METHOD_EMAIL,
		Options: &pb.BeginEnrollmentRequest_OutOfBand{OutOfBand: &pb.OutOfBandEnrollmentOptions{Destination: emailAddress(i)}}})
	if err != nil {
		return err
	}
	code, err := e.wait(ctx, emailAddress(i))
	if err != nil {
		return fmt.Errorf("enroll %s: %w", user, err)
	}
	if _, err := e.cfg.Client.FinishWithCode(ctx, user, en.GetFactorId(), code); err != nil {
		return err
	}
	e.users <- emailUser{i: i, factor: en.GetFactorId()}
	return nil
}

func (e *emailLogin) wait(ctx context.Context, id string) (string, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, outboxWait, fmt.Errorf("none within %v", outboxWait))
	defer cancel()
	return e.outbox.code(ctx, id)
}

func (e *emailLogin) cleanup(ctx context.Context) {
	if e.outbox != nil {
		e.outbox.close()
	}
	for {
		select {
		case u := <-e.users:
			e.cfg.Client.Enrollment.RemoveFactor(ctx, &pb.RemoveFactorRequest{UserId: emailUserID(u.i), FactorId: u.factor})
		default:
			return
		}
	}
}

func (e *emailLogin) do(ctx context.Context, _ time.Time) error {
	var u emailUser
	select {
	case u = <-e.users:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { e.users <- u }()
	user, cc := emailUserID(u.i), clientContext(spaceEmail, u.i)
	e.outbox.forget(emailAddress(u.i))
	ch, err := e.cfg.Client.Challenges.BeginChallenge(ctx, &pb.BeginChallengeRequest{UserId: user, Method: pb.Method_METHOD_EMAIL, FactorId: u.factor, Context: cc})
	if err != nil {
		return err
	}
	code, err := e.wait(ctx, emailAddress(u.i))
	if err != nil {
		return err
	}
	v, err := e.cfg.Client.Challenges.VerifyChallenge(ctx, &pb.VerifyChallengeRequest{
		ChallengeId: ch.GetChallengeId(), Response: &pb.VerifyChallengeRequest_Code{Code: code}, Context: cc})
	if err != nil {
		return err
	}
	if v.GetResult() != pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
		return unexpected("email-login: " + v.GetResult().String() + " " + v.GetReason().String())
	}
	return nil
}
