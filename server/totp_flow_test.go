package server_test

import (
	"context"
	"encoding/base32"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/totp"
)

// enrollTOTP enrolls and activates a TOTP factor and returns its seed.
func enrollTOTP(t *testing.T, c *cluster, r *replica, user string) (factorID string, seed []byte, params totp.Params) {
	t.Helper()
	ctx := c.as("selfservice")
	begin, err := r.enrollment().BeginEnrollment(ctx, &pb.BeginEnrollmentRequest{
		UserId: user, Method: pb.Method_METHOD_TOTP, Name: "Phone",
		Options: &pb.BeginEnrollmentRequest_Totp{Totp: &pb.TotpEnrollmentOptions{AccountName: user + "@example.com"}},
	})
	if err != nil {
		t.Fatalf("BeginEnrollment: %v", err)
	}
	tp := begin.GetTotp()
	seed, err = base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(tp.GetSecret())
	if err != nil {
		t.Fatal(err)
	}
	params = totp.Params{Algorithm: tp.GetAlgorithm(), Digits: int(tp.GetDigits()), Period: uint(tp.GetPeriodSeconds())}
	code, _ := totp.CodeAt(seed, params, c.clock.Now())
	fin, err := r.enrollment().FinishEnrollment(ctx, &pb.FinishEnrollmentRequest{
		UserId: user, FactorId: begin.GetFactorId(), Proof: &pb.FinishEnrollmentRequest_Code{Code: code},
	})
	if err != nil {
		t.Fatalf("FinishEnrollment: %v", err)
	}
	if fin.GetFactor().GetState() != pb.FactorState_FACTOR_STATE_ACTIVE {
		t.Fatalf("factor state %v", fin.GetFactor().GetState())
	}
	return begin.GetFactorId(), seed, params
}

func begin(t *testing.T, c *cluster, r *replica, user string) string {
	t.Helper()
	resp, err := r.challenges().BeginChallenge(c.as("login"), &pb.BeginChallengeRequest{
		UserId: user, Method: pb.Method_METHOD_TOTP, Context: &pb.ClientContext{Ip: "203.0.113.7", UserAgent: "test"},
	})
	if err != nil {
		t.Fatalf("BeginChallenge: %v", err)
	}
	return resp.GetChallengeId()
}

func verify(t *testing.T, c *cluster, r *replica, id, code string) *pb.VerifyChallengeResponse {
	t.Helper()
	resp, err := r.challenges().VerifyChallenge(c.as("login"), &pb.VerifyChallengeRequest{
		ChallengeId: id, Response: &pb.VerifyChallengeRequest_Code{Code: code},
	})
	if err != nil {
		t.Fatalf("VerifyChallenge: %v", err)
	}
	return resp
}

func TestTOTPEnrollLoginReplay(t *testing.T) {
	c := newCluster(t)
	r := c.start()
	fid, seed, params := enrollTOTP(t, c, r, "alice")

	c.clock.Add(30 * time.Second)
	code, _ := totp.CodeAt(seed, params, c.clock.Now())
	id := begin(t, c, r, "alice")
	if got := verify(t, c, r, id, wrongCode(seed, params, c.clock.Now())); got.Result != pb.VerifyResult_VERIFY_RESULT_REJECTED ||
		got.Reason != pb.RejectReason_REJECT_REASON_WRONG_CODE || got.RemainingAttempts != 4 {
		t.Fatalf("wrong code: %v", got)
	}
	got := verify(t, c, r, id, code[:3]+"-"+code[3:])
	if got.Result != pb.VerifyResult_VERIFY_RESULT_ACCEPTED || got.UserId != "alice" || got.FactorId != fid {
		t.Fatalf("right code: %v", got)
	}
	// The challenge is used up.
	if got := verify(t, c, r, id, code); got.Result != pb.VerifyResult_VERIFY_RESULT_EXPIRED {
		t.Fatalf("second answer to a used challenge: %v", got)
	}
	// The same code on a fresh challenge is a replay.
	id2 := begin(t, c, r, "alice")
	if got := verify(t, c, r, id2, code); got.Result != pb.VerifyResult_VERIFY_RESULT_REJECTED || got.Reason != pb.RejectReason_REJECT_REASON_REPLAYED {
		t.Fatalf("replayed code: %v", got)
	}
}

func TestChallengeExpiresAndDiesAfterWrongAnswers(t *testing.T) {
	c := newCluster(t)
	r := c.start()
	_, seed, params := enrollTOTP(t, c, r, "bob")
	id := begin(t, c, r, "bob")
	for i := 0; i < 5; i++ {
		if got := verify(t, c, r, id, wrongCode(seed, params, c.clock.Now())); got.Result != pb.VerifyResult_VERIFY_RESULT_REJECTED && i < 4 {
			t.Fatalf("attempt %d: %v", i, got)
		}
	}
	c.clock.Add(30 * time.Second)
	code, _ := totp.CodeAt(seed, params, c.clock.Now())
	if got := verify(t, c, r, id, code); got.Result != pb.VerifyResult_VERIFY_RESULT_EXPIRED {
		t.Fatalf("right code after too many wrong ones: %v", got)
	}
	id = begin(t, c, r, "bob")
	c.clock.Add(6 * time.Minute)
	code, _ = totp.CodeAt(seed, params, c.clock.Now())
	if got := verify(t, c, r, id, code); got.Result != pb.VerifyResult_VERIFY_RESULT_EXPIRED {
		t.Fatalf("right code after the challenge's lifetime: %v", got)
	}
}

func TestChallengeMovesBetweenReplicasAndOneRacerWins(t *testing.T) {
	c := newCluster(t)
	a, b := c.start(), c.start()
	_, seed, params := enrollTOTP(t, c, a, "carol")
	c.clock.Add(30 * time.Second)
	code, _ := totp.CodeAt(seed, params, c.clock.Now())

	// Begun on a, verified on b.
	id := begin(t, c, a, "carol")
	if got := verify(t, c, b, id, code); got.Result != pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
		t.Fatalf("verify on the other replica: %v", got)
	}

	// Many racers on both replicas, several challenges, one valid code: one wins.
	c.clock.Add(30 * time.Second)
	code, _ = totp.CodeAt(seed, params, c.clock.Now())
	ids := []string{begin(t, c, a, "carol"), begin(t, c, b, "carol"), begin(t, c, a, "carol")}
	accepted := race(t, c, []*replica{a, b}, ids, code, 30)
	if accepted != 1 {
		t.Fatalf("%d verifications accepted the same code, want exactly 1", accepted)
	}
}

func TestCallerAuthentication(t *testing.T) {
	c := newCluster(t)
	r := c.start()
	req := &pb.ListFactorsRequest{UserId: "alice"}
	cases := []struct {
		name string
		ctx  context.Context
		want codes.Code
	}{
		{"no key", context.Background(), codes.Unauthenticated},
		{"unknown key", withKey("tfk_aaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"), codes.Unauthenticated},
		{"tampered key", withKey(c.keys["selfservice"] + "x"), codes.Unauthenticated},
		{"not bearer", withRaw("Basic " + c.keys["selfservice"]), codes.Unauthenticated},
		{"wrong role", c.as("login"), codes.PermissionDenied},
		{"right role", c.as("selfservice"), codes.OK},
		{"all roles", c.as("all"), codes.OK},
	}
	for _, tc := range cases {
		_, err := r.enrollment().ListFactors(tc.ctx, req)
		if got := status.Code(err); got != tc.want {
			t.Errorf("%s: code %v, want %v (%v)", tc.name, got, tc.want, err)
		}
	}
	if _, err := r.challenges().BeginChallenge(c.as("selfservice"), &pb.BeginChallengeRequest{UserId: "a", Method: pb.Method_METHOD_TOTP}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("selfservice key on ChallengeService: %v", err)
	}
}

func TestMalformedInputNamesTheField(t *testing.T) {
	c := newCluster(t)
	r := c.start()
	_, seed, params := enrollTOTP(t, c, r, "dave")
	id := begin(t, c, r, "dave")
	login, self := c.as("login"), c.as("selfservice")
	cases := []struct {
		name  string
		call  func() error
		field string
	}{
		{"empty user", func() error {
			_, err := r.challenges().BeginChallenge(login, &pb.BeginChallengeRequest{Method: pb.Method_METHOD_TOTP})
			return err
		}, "user_id"},
		{"no method", func() error {
			_, err := r.challenges().BeginChallenge(login, &pb.BeginChallengeRequest{UserId: "dave"})
			return err
		}, "method"},
		{"bad ip", func() error {
			_, err := r.challenges().BeginChallenge(login, &pb.BeginChallengeRequest{UserId: "dave", Method: pb.Method_METHOD_TOTP, Context: &pb.ClientContext{Ip: "300.1.1.1"}})
			return err
		}, "context.ip"},
		{"bad challenge id", func() error {
			_, err := r.challenges().VerifyChallenge(login, &pb.VerifyChallengeRequest{ChallengeId: "nope", Response: &pb.VerifyChallengeRequest_Code{Code: "123456"}})
			return err
		}, "challenge_id"},
		{"no response", func() error {
			_, err := r.challenges().VerifyChallenge(login, &pb.VerifyChallengeRequest{ChallengeId: id})
			return err
		}, "response"},
		{"letters in code", func() error {
			_, err := r.challenges().VerifyChallenge(login, &pb.VerifyChallengeRequest{ChallengeId: id, Response: &pb.VerifyChallengeRequest_Code{Code: "12a456"}})
			return err
		}, "code"},
		{"short code", func() error {
			_, err := r.challenges().VerifyChallenge(login, &pb.VerifyChallengeRequest{ChallengeId: id, Response: &pb.VerifyChallengeRequest_Code{Code: "12345"}})
			return err
		}, "code"},
		{"control chars in user", func() error {
			_, err := r.enrollment().ListFactors(self, &pb.ListFactorsRequest{UserId: "a\x00b"})
			return err
		}, "user_id"},
		{"bad factor id", func() error {
			_, err := r.enrollment().RemoveFactor(self, &pb.RemoveFactorRequest{UserId: "dave", FactorId: "x"})
			return err
		}, "factor_id"},
	}
	for _, tc := range cases {
		err := tc.call()
		st := status.Convert(err)
		if st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), tc.field+":") {
			t.Errorf("%s: %v %q, want InvalidArgument naming %q", tc.name, st.Code(), st.Message(), tc.field)
		}
	}
	// Malformed answers do not count as attempts.
	if got := verify(t, c, r, id, wrongCode(seed, params, c.clock.Now())); got.RemainingAttempts != 4 {
		t.Fatalf("remaining after malformed answers and one wrong code: %d, want 4", got.RemainingAttempts)
	}
	_, err := r.challenges().VerifyChallenge(login, &pb.VerifyChallengeRequest{ChallengeId: "00000000-0000-0000-0000-000000000000", Response: &pb.VerifyChallengeRequest_Code{Code: "123456"}})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("unknown challenge: %v", err)
	}
	_, err = r.challenges().BeginChallenge(login, &pb.BeginChallengeRequest{UserId: "nobody", Method: pb.Method_METHOD_TOTP})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("user without factor: %v", err)
	}
}

func TestFactorsListRenameRemove(t *testing.T) {
	c := newCluster(t)
	r := c.start()
	fid, _, _ := enrollTOTP(t, c, r, "erin")
	self := c.as("selfservice")
	list, err := r.enrollment().ListFactors(self, &pb.ListFactorsRequest{UserId: "erin"})
	if err != nil || len(list.Factors) != 1 || list.Factors[0].GetTotp().GetDigits() != 6 {
		t.Fatalf("list: %v, %v", list, err)
	}
	if _, err := r.enrollment().RenameFactor(self, &pb.RenameFactorRequest{UserId: "erin", FactorId: fid, Name: "Work phone"}); err != nil {
		t.Fatal(err)
	}
	// Another user cannot touch the factor.
	if _, err := r.enrollment().RemoveFactor(self, &pb.RemoveFactorRequest{UserId: "mallory", FactorId: fid}); status.Code(err) != codes.NotFound {
		t.Fatalf("remove someone else's factor: %v", err)
	}
	if _, err := r.enrollment().RemoveFactor(self, &pb.RemoveFactorRequest{UserId: "erin", FactorId: fid}); err != nil {
		t.Fatal(err)
	}
	list, _ = r.enrollment().ListFactors(self, &pb.ListFactorsRequest{UserId: "erin"})
	if len(list.Factors) != 0 {
		t.Fatalf("factors after remove: %v", list.Factors)
	}
}

func TestNoSecretInLogs(t *testing.T) {
	c := newCluster(t)
	r := c.start()
	_, seed, params := enrollTOTP(t, c, r, "frank")
	c.clock.Add(30 * time.Second)
	code, _ := totp.CodeAt(seed, params, c.clock.Now())
	verify(t, c, r, begin(t, c, r, "frank"), code)
	logs := c.logs.String()
	if !strings.Contains(logs, "challenge.accepted") {
		t.Fatalf("the log has no audit line; captured:\n%s", logs)
	}
	secret := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(seed)
	for what, s := range map[string]string{"seed": secret, "api key": c.keys["login"]} {
		if strings.Contains(strings.ToLower(logs), strings.ToLower(s)) {
			t.Errorf("the %s appears in the logs", what)
		}
	}
	// A six-digit code may occur inside longer numbers (durations, ids) by chance;
	// it must not occur on its own.
	if regexp.MustCompile(`(^|[^0-9A-Za-z])` + code + `([^0-9A-Za-z]|$)`).MatchString(logs) {
		t.Errorf("the code appears in the logs")
	}
}

func withKey(k string) context.Context { return withRaw("Bearer " + k) }

// race has n goroutines answer the challenges ids with one code at once, spread
// over the replicas, and returns how many were accepted.
func race(t *testing.T, c *cluster, replicas []*replica, ids []string, code string, n int) int {
	t.Helper()
	var accepted atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func(r *replica, id string) {
			defer wg.Done()
			resp, err := r.challenges().VerifyChallenge(c.as("login"), &pb.VerifyChallengeRequest{
				ChallengeId: id, Response: &pb.VerifyChallengeRequest_Code{Code: code},
			})
			if err != nil {
				t.Error(err)
				return
			}
			if resp.Result == pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
				accepted.Add(1)
			}
		}(replicas[i%len(replicas)], ids[i%len(ids)])
	}
	wg.Wait()
	return int(accepted.Load())
}

// A user with one TOTP factor gets challenges bound to it; with two, a challenge
// accepts the code of either, and says which one it was. A factor removed after
// the challenge was begun no longer answers it.
func TestTOTPOneOrSeveralFactors(t *testing.T) {
	c := newCluster(t)
	r := c.start()
	first, seed1, params1 := enrollTOTP(t, c, r, "frank")
	c.clock.Add(30 * time.Second)
	code, _ := totp.CodeAt(seed1, params1, c.clock.Now())
	if got := verify(t, c, r, begin(t, c, r, "frank"), code); got.Result != pb.VerifyResult_VERIFY_RESULT_ACCEPTED || got.GetFactorId() != first {
		t.Fatalf("only factor: %v", got)
	}

	second, seed2, params2 := enrollTOTP(t, c, r, "frank")
	for _, tc := range []struct {
		seed   []byte
		params totp.Params
		want   string
	}{{seed2, params2, second}, {seed1, params1, first}} {
		c.clock.Add(30 * time.Second)
		code, _ := totp.CodeAt(tc.seed, tc.params, c.clock.Now())
		if got := verify(t, c, r, begin(t, c, r, "frank"), code); got.Result != pb.VerifyResult_VERIFY_RESULT_ACCEPTED || got.GetFactorId() != tc.want {
			t.Fatalf("two factors, code of %s: %v", tc.want, got)
		}
	}

	if _, err := r.enrollment().RemoveFactor(c.as("selfservice"), &pb.RemoveFactorRequest{UserId: "frank", FactorId: second}); err != nil {
		t.Fatal(err)
	}
	id := begin(t, c, r, "frank") // bound to the first, the only one left
	if _, err := r.enrollment().RemoveFactor(c.as("selfservice"), &pb.RemoveFactorRequest{UserId: "frank", FactorId: first}); err != nil {
		t.Fatal(err)
	}
	c.clock.Add(30 * time.Second)
	code, _ = totp.CodeAt(seed1, params1, c.clock.Now())
	got, err := r.challenges().VerifyChallenge(c.as("login"), &pb.VerifyChallengeRequest{ChallengeId: id, Response: &pb.VerifyChallengeRequest_Code{Code: code}})
	if status.Code(err) != codes.NotFound && got.GetResult() != pb.VerifyResult_VERIFY_RESULT_REJECTED {
		t.Fatalf("code of a factor removed after begin: %v, %v", got, err)
	}
}
