package server

import (
	"context"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/twofactor/twofactor/notify"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/server/throttle"
)

// retryAfter rounds a wait up to whole milliseconds for the wire.
func retryAfter(d time.Duration) *durationpb.Duration {
	return durationpb.New((d + time.Millisecond - 1).Truncate(time.Millisecond))
}

// highEntropy tells whether method's secret cannot be guessed in the attempts a
// network is allowed: an Unguessable factor's, or an app password (130 bits).
// Such attempts are counted per client network only and never against the user,
// and the user's lock does not hold them up (throttle.Subjects.HighEntropy).
func (s *core) highEntropy(method string) bool {
	if method == "app_password" {
		return true
	}
	f, ok := s.factors.named(method)
	return ok && f.Unguessable
}

// checkThrottle asks whether subj may make an attempt now. A blocked attempt is
// counted in the metrics and audited (event "throttled"); the caller answers it.
// It evaluates nothing (a pre-check, e.g. before a challenge is begun): an
// attempt that evaluates a secret goes through guardAttempt.
func (s *core) checkThrottle(ctx context.Context, client *pb.ClientContext, subj throttle.Subjects, method string) (throttle.Decision, error) {
	subj.HighEntropy = subj.HighEntropy || s.highEntropy(method)
	d, err := s.throttle.Check(ctx, subj)
	if err != nil {
		return d, s.toStatus(ctx, err)
	}
	if d.Blocked {
		s.throttledEvent(ctx, client, subj, method, d)
	}
	return d, nil
}

// throttledEvent counts and audits a blocked attempt.
func (s *core) throttledEvent(ctx context.Context, client *pb.ClientContext, subj throttle.Subjects, method string, d throttle.Decision) {
	s.metrics.throttled.WithLabelValues(d.By.Kind).Inc()
	user := subj.UserID
	if user == "" {
		user = subj.Login
	}
	s.audit(ctx, client, AuditEvent{Event: notify.EventThrottled, UserID: user, Method: method, Result: "throttled",
		Details: map[string]string{"by": d.By.Kind, "locked": strconv.FormatBool(d.Locked), "retry_after": retryAfter(d.RetryAfter).AsDuration().String()}})
}

// guardAttempt runs eval as one attempt by subj at method's secret, counted
// before it is evaluated (throttle.Guard: the subjects held and their counts
// read in one transaction with eval and the failure, on every replica). A
// blocked attempt is audited as checkThrottle does and eval does not run; a
// rejection's new locks are audited and its counts announced. Errors (eval's
// too) come back as statuses. VerifyChallenge holds the challenge as well
// (challenge.HoldKey), whose Verify reads its attempts again inside eval.
func (s *core) guardAttempt(ctx context.Context, client *pb.ClientContext, subj throttle.Subjects, method string, eval func(ctx context.Context) (throttle.Verdict, error)) (throttle.Result, error) {
	subj.HighEntropy = subj.HighEntropy || s.highEntropy(method)
	res, err := s.throttle.Guard(ctx, subj, eval)
	if err != nil {
		return res, s.toStatus(ctx, err)
	}
	if res.Blocked {
		s.throttledEvent(ctx, client, subj, method, res.Decision)
	}
	s.announceThrottleFailed(ctx, res.Recorded)
	s.lockoutEvents(ctx, client, method, res.NewLocks)
	return res, nil
}

// deviceGuard is guardAttempt for the DeviceService's requests (method push,
// the peer's network as the client's): blocks are audited, counts announced.
func (s *core) deviceGuard(ctx context.Context, subj throttle.Subjects, eval func(ctx context.Context) (throttle.Verdict, error)) (throttle.Result, error) {
	return s.guardAttempt(ctx, &pb.ClientContext{Ip: subj.IP}, subj, "push", eval)
}

// throttledError is the ResourceExhausted status of a blocked attempt, with the
// wait in a google.rpc.RetryInfo detail.
func throttledError(d throttle.Decision) error {
	what := "client network"
	switch d.By.Kind {
	case throttle.User:
		what = "user"
	case throttle.Login:
		what = "login"
	case throttle.Device:
		what = "device"
	}
	kind := "delayed"
	if d.Locked {
		kind = "locked"
	}
	st := status.Newf(codes.ResourceExhausted, "too many failed attempts: the %s is %s; retry after %v", what, kind, retryAfter(d.RetryAfter).AsDuration())
	if with, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: retryAfter(d.RetryAfter)}); err == nil {
		st = with
	}
	return st.Err()
}

// throttleFailure counts a wrong answer; the locks it starts are audited
// ("lockout") and counted. A failure to count is an error: an attempt the
// throttle could not see must not be answered.
func (s *core) throttleFailure(ctx context.Context, client *pb.ClientContext, subj throttle.Subjects, method string) (throttle.Outcome, error) {
	subj.HighEntropy = subj.HighEntropy || s.highEntropy(method)
	out, err := s.throttle.Failure(ctx, subj)
	s.announceThrottleFailed(ctx, out.Recorded)
	if err != nil {
		return out, s.toStatus(ctx, err)
	}
	s.lockoutEvents(ctx, client, method, out.NewLocks)
	return out, nil
}

// lockoutEvents counts and audits ("lockout") the locks a failure started.
func (s *core) lockoutEvents(ctx context.Context, client *pb.ClientContext, method string, locks []throttle.Subject) {
	for _, l := range locks {
		s.metrics.locks.WithLabelValues(l.Kind).Inc()
		e := AuditEvent{Event: notify.EventLockout, Method: method, Result: "locked",
			Details: map[string]string{"kind": l.Kind, "key": l.Key, "lock_duration": s.throttle.Config().LockDuration.String()}}
		if l.Kind != throttle.IP {
			e.UserID = l.Key
		}
		s.audit(ctx, client, e)
	}
}

// announceThrottleFailed tells the other replicas that subjects have failures
// now, so they stop taking them to be clean. A failure to announce is logged: the
// count is stored, and the other replicas' cache entries expire on their own.
func (s *core) announceThrottleFailed(ctx context.Context, recorded []throttle.Subject) {
	if s.events == nil || len(recorded) == 0 {
		return
	}
	subs := make([]notify.ThrottleSubject, len(recorded))
	for i, r := range recorded {
		subs[i] = notify.ThrottleSubject{Kind: r.Kind, Key: r.Key}
	}
	if err := s.events.AnnounceThrottleFailed(context.WithoutCancel(ctx), subs); err != nil {
		s.log.WarnContext(ctx, "throttle failure not announced", "request_id", requestIDFrom(ctx), "error", err.Error())
	}
}

// throttleSuccess resets the user's (or login's) count after a right answer.
// A failure is logged only: the answer was right.
func (s *core) throttleSuccess(ctx context.Context, subj throttle.Subjects) {
	if err := s.throttle.Success(ctx, subj); err != nil {
		s.log.WarnContext(ctx, "throttle reset failed", "request_id", requestIDFrom(ctx), "error", err.Error())
	}
}

// clientIP is the IP the request names, or the one the challenge was begun from.
func clientIP(client *pb.ClientContext, fallback string) string {
	if ip := client.GetIp(); ip != "" {
		return ip
	}
	return fallback
}
