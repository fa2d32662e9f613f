package server_test

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/twofactor/twofactor/internal/testfix"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/otpcode"
)

// capEnrollments begins n enrollments at once on two replicas and checks that
// exactly limit pass and the rest are refused with FailedPrecondition naming
// the limit; then, with the cap reached, one more is refused too.
func capEnrollments(t *testing.T, c *cluster, rs []*replica, n, limit int, req func(i int) *pb.BeginEnrollmentRequest) {
	t.Helper()
	errs := testfix.AtOnce(n, func(i int) error {
		_, err := rs[i%len(rs)].enrollment().BeginEnrollment(c.as("selfservice"), req(i))
		return err
	})
	won, refused := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case status.Code(err) == codes.FailedPrecondition && strings.Contains(status.Convert(err).Message(), fmt.Sprintf("the most allowed is %d", limit)):
			refused++
		default:
			t.Errorf("begin enrollment: %v", err)
		}
	}
	if won != limit || refused != n-limit {
		t.Fatalf("%d enrollments begun, %d refused; want %d and %d", won, refused, limit, n-limit)
	}
	_, err := rs[0].enrollment().BeginEnrollment(c.as("selfservice"), req(n))
	if status.Code(err) != codes.FailedPrecondition || !strings.HasPrefix(status.Convert(err).Message(), "user_id: ") {
		t.Fatalf("enrollment past the cap: %v", err)
	}
}

// Every factor method caps a user's factors, pending enrollments included
// (push: its enrollment tokens waiting; its active devices had a cap already),
// under concurrent enrollments on two replicas (storage.LockAttempt in the
// inserting transaction; PostgreSQL with TWOFACTOR_TEST_DATABASE_URL).
func TestFactorCapsHoldUnderConcurrency(t *testing.T) {
	t.Run("totp", func(t *testing.T) {
		c := newCluster(t)
		rs := []*replica{c.start(), c.start()}
		capEnrollments(t, c, rs, 24, 16, func(i int) *pb.BeginEnrollmentRequest {
			return &pb.BeginEnrollmentRequest{UserId: "alice", Method: pb.Method_METHOD_TOTP, Name: fmt.Sprintf("Phone %d", i),
				Options: &pb.BeginEnrollmentRequest_Totp{Totp: &pb.TotpEnrollmentOptions{AccountName: "alice@example.com"}}}
		})
	})
	t.Run("webauthn", func(t *testing.T) {
		c := newCluster(t)
		rs := []*replica{c.start(), c.start()}
		capEnrollments(t, c, rs, 40, 32, func(i int) *pb.BeginEnrollmentRequest {
			return &pb.BeginEnrollmentRequest{UserId: "alice", Method: pb.Method_METHOD_WEBAUTHN, Name: fmt.Sprintf("Key %d", i),
				Options: &pb.BeginEnrollmentRequest_Webauthn{Webauthn: &pb.WebAuthnEnrollmentOptions{UserName: "alice@example.com", DisplayName: "Alice"}}}
		})
	})
	t.Run("push enrollments waiting", func(t *testing.T) {
		c := newCluster(t)
		rs := []*replica{c.start(), c.start()}
		capEnrollments(t, c, rs, 12, 5, func(int) *pb.BeginEnrollmentRequest {
			return &pb.BeginEnrollmentRequest{UserId: "alice", Method: pb.Method_METHOD_PUSH}
		})
	})
	t.Run("email", func(t *testing.T) {
		c, _, _ := otpCluster(t, otpcode.Config{UserDailyCap: 100, DestinationDailyCap: 100})
		rs := []*replica{c.start(), c.start()}
		capEnrollments(t, c, rs, 14, otpcode.DefaultMaxFactorsPerChannel, func(i int) *pb.BeginEnrollmentRequest {
			return &pb.BeginEnrollmentRequest{UserId: "alice", Method: pb.Method_METHOD_EMAIL,
				Options: &pb.BeginEnrollmentRequest_OutOfBand{OutOfBand: &pb.OutOfBandEnrollmentOptions{Destination: fmt.Sprintf("alice%d@example.com", i)}}}
		})
	})
}
