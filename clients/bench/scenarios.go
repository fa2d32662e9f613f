package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/twofactor/twofactor/clients/client"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
)

// Address spaces: each bench user has a stable client address of its own, as a
// crowd of users would, and the requests meant to fail come from addresses no
// request meant to succeed ever uses, so that authd's throttling (which
// remembers failures per address and user for hours) slows only them.
const (
	spaceTOTP      = 10 << 24         // 10.0.0.0/8
	spaceAppPw     = 172<<24 | 16<<16 // 172.16.0.0/12
	spaceBackup    = 100<<24 | 64<<16 // 100.64.0.0/10
	spaceFailing   = 198<<24 | 18<<16 // 198.18.0.0/15 (RFC 2544 benchmarking)
	spaceAdmin     = 172<<24 | 24<<16 // 172.24.0.0/15 (in 172.16.0.0/12)
	spaceMaskTOTP  = 1<<24 - 1
	spaceMaskOther = 1<<17 - 1
)

func clientContext(space uint32, i int) *pb.ClientContext {
	mask := uint32(spaceMaskOther)
	if space == spaceTOTP {
		mask = spaceMaskTOTP
	}
	a := space | uint32(i)&mask
	return &pb.ClientContext{
		Ip:        fmt.Sprintf("%d.%d.%d.%d", a>>24, a>>16&0xff, a>>8&0xff, a&0xff),
		UserAgent: "authbench",
		Client:    "authbench",
	}
}

type healthCheck struct{ c *client.Client }

func (healthCheck) prepare(context.Context) error { return nil }
func (healthCheck) cleanup(context.Context)       {}
func (h healthCheck) do(ctx context.Context, _ time.Time) error {
	resp, err := h.c.Health.Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return err
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return unexpected("health: " + resp.GetStatus().String())
	}
	return nil
}

// totpLogin logs seeded users in with their current code, each at most once per
// time step.
type totpLogin struct {
	cfg    *Config
	cursor atomic.Uint64
	// last is the step of each user's last login in this run.
	last []atomic.Int64
}

// spreadPrime is coprime to every user count (a prime above any), so that
// u ↦ u·spreadPrime mod n visits every user once per rotation.
const spreadPrime = 1_000_000_007

// spread maps the rotation's slot u to a user: itself, or with Config.Spread a
// user far from the previous one, so that a run touches the whole database.
func (t *totpLogin) spread(u int) int {
	if !t.cfg.Spread {
		return u
	}
	n := uint64(len(t.last))
	return int(uint64(u) % n * (spreadPrime % n) % n)
}

func (*totpLogin) prepare(context.Context) error { return nil }
func (*totpLogin) cleanup(context.Context)       {}

func (t *totpLogin) do(ctx context.Context, until time.Time) error {
	now := t.cfg.Now()
	step := now.Unix() / Period
	u := int((t.cursor.Add(1) - 1) % uint64(len(t.last)))
	if t.last[u].Swap(step) >= step {
		// Every user logged in during this step: wait for the next one.
		end := time.Unix((step+1)*Period, 0)
		if until.Before(end) {
			end = until
		}
		wait := end.Sub(now)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
		return errWaited
	}
	i := t.cfg.FirstUser + t.spread(u)
	user := UserID(i)
	code := Code(SeedFor(t.cfg.Secret, user), step)
	cc := clientContext(spaceTOTP, i)
	ch, err := t.cfg.Client.Challenges.BeginChallenge(ctx, &pb.BeginChallengeRequest{UserId: user, Method: pb.Method_METHOD_TOTP, Context: cc})
	if err != nil {
		return err
	}
	v, err := t.cfg.Client.Challenges.VerifyChallenge(ctx, &pb.VerifyChallengeRequest{
		ChallengeId: ch.GetChallengeId(), Response: &pb.VerifyChallengeRequest_Code{Code: code}, Context: cc})
	if err != nil {
		return err
	}
	if v.GetResult() != pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
		return unexpected("totp-login: " + v.GetResult().String() + " " + v.GetReason().String())
	}
	return nil
}

// appPassword verifies app passwords issued through the API for the run.
type appPassword struct {
	cfg     *Config
	n       atomic.Uint64
	users   []string
	valid   []string // valid[i] belongs to users[i]
	revoked []string // revoked[i] belonged to users[i]
}

func apUser(i int) string { return fmt.Sprintf("bench-ap-%06d", i) }

// apStranger names a login that never has an app password of its own.
func apStranger(i int) string { return fmt.Sprintf("bench-ap-stranger-%06d", i) }

// apRevokedUser owns the revoked passwords, so that their failures do not
// throttle the users whose passwords are valid.
func apRevokedUser(i int) string { return fmt.Sprintf("bench-ap-revoked-%06d", i) }

func (a *appPassword) prepare(ctx context.Context) error {
	n := a.cfg.AppPasswordUsers
	a.users = make([]string, n)
	a.valid = make([]string, n)
	a.revoked = make([]string, n/8+1)
	return parallel(ctx, a.cfg.Workers, n, func(ctx context.Context, i int) error {
		a.users[i] = apUser(i)
		c := a.cfg.Client.AppPasswords
		// Start from nothing: an earlier run that was stopped may have left some.
		if _, err := c.RevokeAllAppPasswords(ctx, &pb.RevokeAllAppPasswordsRequest{UserId: a.users[i]}); err != nil {
			return err
		}
		resp, err := c.IssueAppPassword(ctx, &pb.IssueAppPasswordRequest{UserId: a.users[i], Name: "authbench"})
		if err != nil {
			return err
		}
		a.valid[i] = resp.GetPassword()
		if i < len(a.revoked) {
			gone, err := c.IssueAppPassword(ctx, &pb.IssueAppPasswordRequest{UserId: apRevokedUser(i), Name: "authbench revoked"})
			if err != nil {
				return err
			}
			if _, err := c.RevokeAppPassword(ctx, &pb.RevokeAppPasswordRequest{UserId: apRevokedUser(i), AppPasswordId: gone.GetAppPassword().GetId()}); err != nil {
				return err
			}
			a.revoked[i] = gone.GetPassword()
		}
		return nil
	})
}

func (a *appPassword) cleanup(ctx context.Context) {
	_ = parallel(ctx, a.cfg.Workers, len(a.users), func(ctx context.Context, i int) error {
		_, err := a.cfg.Client.AppPasswords.RevokeAllAppPasswords(ctx, &pb.RevokeAllAppPasswordsRequest{UserId: a.users[i]})
		return err
	})
}

func (a *appPassword) do(ctx context.Context, _ time.Time) error {
	k := a.n.Add(1) - 1
	i := int(k % uint64(len(a.users)))
	login, password, want, cc := a.users[i], a.valid[i], true, clientContext(spaceAppPw, i)
	if every := uint64(a.cfg.AppPasswordInvalidEvery); every > 0 && k%every == every-1 {
		if j := int(k / every); j%2 == 0 { // revoked
			j = (j / 2) % len(a.revoked)
			login, password, want, cc = apRevokedUser(j), a.revoked[j], false, clientContext(spaceFailing, 2*j)
		} else { // another user's, under a login that has none
			login, want, cc = apStranger(i), false, clientContext(spaceFailing, 2*i+1)
		}
	}
	// A failure may be answered as throttled: still valid=false.
	resp, err := a.cfg.Client.AppPasswords.VerifyAppPassword(ctx, &pb.VerifyAppPasswordRequest{
		Login: login, Password: password, Context: cc})
	if err != nil {
		return err
	}
	if resp.GetValid() != want {
		return unexpected(fmt.Sprintf("app-password: valid=%v, want %v", resp.GetValid(), want))
	}
	return nil
}

// backupCode logs in with backup codes issued through the API before the run;
// each code is used once.
type backupCode struct {
	cfg   *Config
	mu    sync.Mutex
	codes []bcCode
	next  int
}

type bcCode struct {
	user int
	code string
}

func bcUser(i int) string { return fmt.Sprintf("bench-bc-%06d", i) }

func (b *backupCode) prepare(ctx context.Context) error {
	n := b.cfg.BackupUsers
	sets := make([][]string, n)
	err := parallel(ctx, b.cfg.Workers, n, func(ctx context.Context, i int) error {
		resp, err := b.cfg.Client.Enrollment.IssueBackupCodes(ctx, &pb.IssueBackupCodesRequest{UserId: bcUser(i)})
		sets[i] = resp.GetCodes()
		return err
	})
	if err != nil {
		return err
	}
	// Interleave users, so that concurrent logins are of different users.
	b.codes = b.codes[:0]
	for j := 0; ; j++ {
		added := false
		for i, s := range sets {
			if j < len(s) {
				b.codes = append(b.codes, bcCode{user: i, code: s[j]})
				added = true
			}
		}
		if !added {
			break
		}
	}
	b.next = 0
	return nil
}

func (*backupCode) cleanup(context.Context) {}

func (b *backupCode) take() (bcCode, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.next >= len(b.codes) {
		return bcCode{}, false
	}
	c := b.codes[b.next]
	b.next++
	return c, true
}

func (b *backupCode) do(ctx context.Context, _ time.Time) error {
	c, ok := b.take()
	if !ok {
		return unexpected("backup-code: ran out of issued codes (raise -backup-users)")
	}
	user, cc := bcUser(c.user), clientContext(spaceBackup, c.user)
	ch, err := b.cfg.Client.Challenges.BeginChallenge(ctx, &pb.BeginChallengeRequest{UserId: user, Method: pb.Method_METHOD_BACKUP_CODE, Context: cc})
	if err != nil {
		return err
	}
	v, err := b.cfg.Client.Challenges.VerifyChallenge(ctx, &pb.VerifyChallengeRequest{
		ChallengeId: ch.GetChallengeId(), Response: &pb.VerifyChallengeRequest_Code{Code: c.code}, Context: cc})
	if err != nil {
		return err
	}
	if v.GetResult() != pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
		return unexpected("backup-code: " + v.GetResult().String() + " " + v.GetReason().String())
	}
	return nil
}

// parallel runs fn(i) for i in [0, n) on at most workers goroutines and returns
// the first error.
func parallel(ctx context.Context, workers, n int, fn func(ctx context.Context, i int) error) error {
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, i); err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// adminCode logs in with admin codes issued through the admin API before the
// run, one per user; each code is used once.
type adminCode struct {
	cfg   *Config
	mu    sync.Mutex
	codes []string // codes[i] belongs to acUser(i)
	next  int
}

func acUser(i int) string { return fmt.Sprintf("bench-ac-%06d", i) }

func (a *adminCode) prepare(ctx context.Context) error {
	if _, err := a.cfg.Client.Admin.SetUserGroups(ctx, &pb.SetUserGroupsRequest{UserId: a.cfg.AdminActor, Groups: []string{a.cfg.AdminGroup}}); err != nil {
		return fmt.Errorf("put %s in group %s: %w", a.cfg.AdminActor, a.cfg.AdminGroup, err)
	}
	a.codes = make([]string, a.cfg.AdminCodeUsers)
	a.next = 0
	return parallel(ctx, a.cfg.Workers, len(a.codes), func(ctx context.Context, i int) error {
		resp, err := a.cfg.Client.Admin.IssueAdminBackupCode(ctx, &pb.IssueAdminBackupCodeRequest{ActorId: a.cfg.AdminActor, UserId: acUser(i)})
		a.codes[i] = resp.GetCode()
		return err
	})
}

func (*adminCode) cleanup(context.Context) {}

func (a *adminCode) take() (int, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.next >= len(a.codes) {
		return 0, false
	}
	a.next++
	return a.next - 1, true
}

func (a *adminCode) do(ctx context.Context, _ time.Time) error {
	i, ok := a.take()
	if !ok {
		return unexpected("admin-code: ran out of issued codes (raise -admin-code-users)")
	}
	user, cc := acUser(i), clientContext(spaceAdmin, i)
	ch, err := a.cfg.Client.Challenges.BeginChallenge(ctx, &pb.BeginChallengeRequest{UserId: user, Method: pb.Method_METHOD_ADMIN_CODE, Context: cc})
	if err != nil {
		return err
	}
	v, err := a.cfg.Client.Challenges.VerifyChallenge(ctx, &pb.VerifyChallengeRequest{
		ChallengeId: ch.GetChallengeId(), Response: &pb.VerifyChallengeRequest_Code{Code: a.codes[i]}, Context: cc})
	if err != nil {
		return err
	}
	if v.GetResult() != pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
		return unexpected("admin-code: " + v.GetResult().String() + " " + v.GetReason().String())
	}
	return nil
}
