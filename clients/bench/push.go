package bench

import (
	"context"
	"fmt"

	"time"

	"github.com/twofactor/twofactor/clients/pushdevice"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
)

// spacePush are the push logins' client addresses (192.0.2.0/24 and on, TEST-NET).
const spacePush = 192<<24 | 0<<16 | 2<<8

// pushLogin is a push login: BeginChallenge, the device lists its pending push
// and approves it with the number, VerifyChallenge redeems the approval. Each
// user has one device and one login at a time (authd allows one pending push per
// user); authd must run with a -push-daily-cap above the logins per user.
type pushLogin struct {
	cfg   *Config
	users chan pushUser
}

type pushUser struct {
	i      int
	device *pushdevice.Device
}

func pushUserID(i int) string { return fmt.Sprintf("bench-push-%06d", i) }

func (p *pushLogin) prepare(ctx context.Context) error {
	n := 4 * p.cfg.Workers
	p.users = make(chan pushUser, n)
	devices := pb.NewDeviceServiceClient(p.cfg.Client.Conn())
	return parallel(ctx, p.cfg.Workers, n, func(ctx context.Context, i int) error {
		en, err := p.cfg.Client.Enrollment.BeginEnrollment(ctx, &pb.BeginEnrollmentRequest{UserId: pushUserID(i), Method: pb.Method_METHOD_PUSH})
		if err != nil {
			return err
		}
		d, err := pushdevice.New()
		if err != nil {
			return err
		}
		d.Now = p.cfg.Now
		if err := d.Enroll(ctx, devices, en.GetPush().GetToken(), "authbench", "cli", nil); err != nil {
			return err
		}
		p.users <- pushUser{i: i, device: d}
		return nil
	})
}

func (p *pushLogin) cleanup(ctx context.Context) {
	for {
		select {
		case u := <-p.users:
			p.cfg.Client.Enrollment.RemoveFactor(ctx, &pb.RemoveFactorRequest{UserId: pushUserID(u.i), FactorId: u.device.ID})
		default:
			return
		}
	}
}

func (p *pushLogin) do(ctx context.Context, _ time.Time) error {
	var u pushUser
	select {
	case u = <-p.users:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { p.users <- u }()
	user, cc := pushUserID(u.i), clientContext(spacePush, u.i)
	ch, err := p.cfg.Client.Challenges.BeginChallenge(ctx, &pb.BeginChallengeRequest{UserId: user, Method: pb.Method_METHOD_PUSH, Context: cc})
	if err != nil {
		return err
	}
	devices := pb.NewDeviceServiceClient(p.cfg.Client.Conn())
	pending, err := u.device.Pending(ctx, devices)
	if err != nil {
		return err
	}
	if len(pending) != 1 {
		return unexpected(fmt.Sprintf("push-login: %d pending pushes", len(pending)))
	}
	r, err := u.device.Respond(ctx, devices, pending[0].GetChallengeId(), pb.PushDecision_PUSH_DECISION_APPROVE, ch.GetPush().GetNumber())
	if err != nil {
		return err
	}
	if r.GetResult() != pb.PushResult_PUSH_RESULT_APPROVED {
		return unexpected("push-login: device answer " + r.GetResult().String())
	}
	v, err := p.cfg.Client.Challenges.VerifyChallenge(ctx, &pb.VerifyChallengeRequest{ChallengeId: ch.GetChallengeId(),
		Response: &pb.VerifyChallengeRequest_Push{Push: &pb.PushWait{}}, Context: cc})
	if err != nil {
		return err
	}
	if v.GetResult() != pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
		return unexpected("push-login: " + v.GetResult().String() + " " + v.GetReason().String())
	}
	return nil
}
