package server_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/totp"
	"github.com/twofactor/twofactor/server/throttle"
)

// strangersLock has strangers guess user's TOTP codes at full speed (bursts of
// concurrent guesses, each from a network of its own that the user never
// signed in from, every delay waited out) until BeginChallenge from a fresh
// network answers that the user is locked. It returns the guesses evaluated.
func strangersLock(t *testing.T, c *cluster, replicas []*replica, user string, seed []byte, params totp.Params) int {
	t.Helper()
	evaluated := 0
	for round := 0; round < 40; round++ {
		ip := func(i int) string { return fmt.Sprintf("203.0.%d.%d", 100+round, i+1) }
		wrong := wrongCode(seed, params, c.clock.Now())
		var answers []answer
		for i := range 50 {
			resp, err := beginFrom(c, replicas[i%2], user, ip(i))
			if status.Code(err) == codes.ResourceExhausted && strings.Contains(status.Convert(err).Message(), "user is locked") {
				return evaluated
			}
			if status.Code(err) == codes.ResourceExhausted {
				break // delayed: send what was begun
			}
			if err != nil {
				t.Fatalf("BeginChallenge: %v", err)
			}
			answers = append(answers, answer{r: replicas[(i+1)%2], id: resp.GetChallengeId(), code: wrong, ip: ip(i)})
		}
		evaluated += answerAll(t, c, answers)[pb.VerifyResult_VERIFY_RESULT_REJECTED]
		c.clock.Add(25 * time.Second)
	}
	t.Fatalf("%s was never locked (%d guesses evaluated)", user, evaluated)
	return 0
}

func loginFrom(t *testing.T, c *cluster, r *replica, user, ip string, seed []byte, params totp.Params) *pb.VerifyChallengeResponse {
	t.Helper()
	resp, err := beginFrom(c, r, user, ip)
	if err != nil {
		t.Fatalf("BeginChallenge from %s: %v", ip, err)
	}
	code, _ := totp.CodeAt(seed, params, c.clock.Now())
	return verifyFrom(t, c, r, resp.GetChallengeId(), code, ip)
}

// Strangers guessing from unfamiliar networks at full speed lock the user for
// such networks only: the user's login from the network they passed a second
// factor from before still succeeds, on either replica (smart lockout).
func TestStrangersCannotLockTheUserOutOfHerNetwork(t *testing.T) {
	c := newCluster(t)
	c.throttle = throttle.Config{IPDelayAfter: 2, UserDelayAfter: 4, UserLockAfter: 8, LockDuration: time.Hour}
	a, b := c.start(), c.start()
	_, seed, params := enrollTOTP(t, c, a, "alice")
	const home = "2001:db8:77:1::20"
	c.clock.Add(30 * time.Second) // past the step the enrollment used
	if got := loginFrom(t, c, a, "alice", home, seed, params); got.Result != pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
		t.Fatalf("alice's first login from home: %v", got)
	}
	c.clock.Add(30 * time.Second)
	if n := strangersLock(t, c, []*replica{a, b}, "alice", seed, params); n != 8 {
		t.Fatalf("the strangers had %d guesses evaluated, want UserLockAfter = 8", n)
	}
	// Home again, from another address of the same /56, on the other replica.
	c.clock.Add(30 * time.Second)
	if got := loginFrom(t, c, b, "alice", "2001:db8:77:2::9", seed, params); got.Result != pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
		t.Fatalf("alice from her familiar network while strangers locked her elsewhere: %v", got)
	}
	if _, err := beginFrom(c, a, "alice", "192.0.2.200"); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a network alice never signed in from is still locked: %v", err)
	}
}

// 60 made-up app passwords in the public format (valid checksum), or another
// user's, for alice's login lock nothing: her sync client's real app password
// from its own address is valid, and her TOTP login still begins. Only the
// guessing network is delayed. (Before, they locked alice for an hour.)
func TestAppPasswordGuessingNeverLocks(t *testing.T) {
	c := newCluster(t)
	c.throttle = throttle.Config{IPDelayAfter: 2, UserDelayAfter: 4, UserLockAfter: 8, LockDuration: time.Hour}
	a, b := c.start(), c.start()
	enrollTOTP(t, c, a, "alice")
	issued, err := a.appPasswords().IssueAppPassword(c.as("selfservice"), &pb.IssueAppPasswordRequest{UserId: "alice", Name: "DAV"})
	if err != nil {
		t.Fatal(err)
	}
	bob, err := a.appPasswords().IssueAppPassword(c.as("selfservice"), &pb.IssueAppPasswordRequest{UserId: "bob", Name: "DAV"})
	if err != nil {
		t.Fatal(err)
	}
	throttled := 0
	for i := range 60 {
		pw := []string{"tfap_0123456789abcdefghjkmnpqrs38f93sc", bob.GetPassword()}[i%2]
		got, err := []*replica{a, b}[i%2].appPasswords().VerifyAppPassword(c.as("login"), &pb.VerifyAppPasswordRequest{
			Login: "alice", Password: pw, Context: &pb.ClientContext{Ip: fmt.Sprintf("203.0.113.%d", i%3+1)}})
		if err != nil || got.GetValid() {
			t.Fatalf("guess %d: %v %v", i, got, err)
		}
		if got.GetThrottled() {
			throttled++
		}
		c.clock.Add(time.Second)
	}
	if throttled == 0 {
		t.Fatal("the guessing networks were never delayed")
	}
	got, err := b.appPasswords().VerifyAppPassword(c.as("login"), &pb.VerifyAppPasswordRequest{
		Login: "alice", Password: issued.GetPassword(), Context: &pb.ClientContext{Ip: "198.51.100.30"}})
	if err != nil || !got.GetValid() || got.GetThrottled() {
		t.Fatalf("alice's real app password after 60 guesses: %v %v", got, err)
	}
	if _, err := beginFrom(c, a, "alice", "198.51.100.31"); err != nil {
		t.Fatalf("alice's TOTP login after 60 app-password guesses: %v", err)
	}
}

// While alice is locked (strangers, and no familiar network to spare her), an
// admin-issued code recovers her: it is begun and accepted, and a wrong one
// counts against its network only.
func TestAdminCodeWorksWhileLocked(t *testing.T) {
	c := newCluster(t)
	c.throttle = throttle.Config{IPDelayAfter: 2, UserDelayAfter: 4, UserLockAfter: 8, LockDuration: time.Hour}
	a, b := c.start(), c.start()
	directory(t, c, a)
	_, seed, params := enrollTOTP(t, c, a, "alice")
	strangersLock(t, c, []*replica{a, b}, "alice", seed, params)
	if _, err := beginFrom(c, a, "alice", "192.0.2.8"); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("alice is not locked: %v", err)
	}
	issued, err := b.admin().IssueAdminBackupCode(c.as("admin"), &pb.IssueAdminBackupCodeRequest{ActorId: "root", UserId: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	begin := func(r *replica) string {
		t.Helper()
		resp, err := r.challenges().BeginChallenge(c.as("login"), &pb.BeginChallengeRequest{UserId: "alice", Method: pb.Method_METHOD_ADMIN_CODE,
			Context: &pb.ClientContext{Ip: "192.0.2.8", UserAgent: "helpdesk"}})
		if err != nil {
			t.Fatalf("BeginChallenge(admin code) while locked: %v", err)
		}
		return resp.GetChallengeId()
	}
	if got := verifyFrom(t, c, a, begin(a), "AAAA-BBBB-CCCC-DDDD", "192.0.2.8"); got.Result != pb.VerifyResult_VERIFY_RESULT_REJECTED {
		t.Fatalf("a wrong admin code: %v", got)
	}
	if got := verifyFrom(t, c, b, begin(b), issued.GetCode(), "192.0.2.8"); got.Result != pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
		t.Fatalf("the admin code while locked: %v", got)
	}
}
