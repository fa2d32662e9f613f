package server_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"gorm.io/gorm"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/totp"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// A TOTP challenge bound to one factor is carried in its id: the id has the
// sealed form, and no challenges row exists until a wrong answer needs one.
func TestTOTPChallengeIsSealedAndWritesNoRow(t *testing.T) {
	c := newCluster(t)
	r := c.start()
	enrollTOTP(t, c, r, "alice")
	id := begin(t, c, r, "alice")
	head, body, sealed := strings.Cut(id, ".")
	if !sealed || uuid.Validate(head) != nil || body == "" {
		t.Fatalf("challenge id %q: want <uuid>.<sealed>", id)
	}
	if n := challengeRows(t, c, "alice"); n != 0 {
		t.Fatalf("%d challenges rows after BeginChallenge, want none", n)
	}
}

func challengeRows(t *testing.T, c *cluster, user string) int64 {
	t.Helper()
	var n int64
	if err := clusterDB(t, c).Table("challenges").Where("user_id = ?", user).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// clusterDB opens the cluster's database directly, as an operator would.
func clusterDB(t *testing.T, c *cluster) *gorm.DB {
	return storagetest.OpenURL(t, c.url).DB(context.Background())
}

// Once accepted, a sealed challenge stays used up, even for a code of a later
// step; and a login on the factor uses up the challenges begun before it.
func TestSealedChallengeIsWonOnce(t *testing.T) {
	c := newCluster(t)
	a, b := c.start(), c.start()
	_, seed, params := enrollTOTP(t, c, a, "bob")
	c.clock.Add(30 * time.Second)
	early := begin(t, c, b, "bob")
	id := begin(t, c, a, "bob")
	code, _ := totp.CodeAt(seed, params, c.clock.Now())
	if got := verify(t, c, b, id, code); got.Result != pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
		t.Fatalf("login: %v", got)
	}
	c.clock.Add(30 * time.Second)
	next, _ := totp.CodeAt(seed, params, c.clock.Now())
	for name, ch := range map[string]string{"the accepted challenge": id, "a challenge begun before the login": early} {
		if got := verify(t, c, a, ch, next); got.Result != pb.VerifyResult_VERIFY_RESULT_EXPIRED {
			t.Fatalf("%s answered with the next code: %v, want EXPIRED", name, got)
		}
	}
	if got := verify(t, c, a, begin(t, c, b, "bob"), next); got.Result != pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
		t.Fatalf("a fresh challenge with the next code: %v", got)
	}
}

// Wrong answers to a sealed challenge are counted in the shared store: answers
// alternating between replicas use up its attempts, and concurrent wrong answers
// are each counted once.
func TestSealedChallengeCountsWrongAnswersAcrossReplicas(t *testing.T) {
	c := newCluster(t)
	a, b := c.start(), c.start()
	_, seed, params := enrollTOTP(t, c, a, "carol")
	wrong := wrongCode(seed, params, c.clock.Now())
	id := begin(t, c, a, "carol")
	for i, want := range []uint32{4, 3, 2, 1, 0} {
		got := verify(t, c, []*replica{a, b}[i%2], id, wrong)
		if got.Result != pb.VerifyResult_VERIFY_RESULT_REJECTED || got.RemainingAttempts != want {
			t.Fatalf("wrong answer %d: %v, want REJECTED with %d left", i+1, got, want)
		}
	}
	c.clock.Add(30 * time.Second)
	code, _ := totp.CodeAt(seed, params, c.clock.Now())
	if got := verify(t, c, b, id, code); got.Result != pb.VerifyResult_VERIFY_RESULT_EXPIRED {
		t.Fatalf("right code after five wrong ones: %v", got)
	}

	// 24 wrong answers at once on two replicas: exactly five are counted.
	id = begin(t, c, b, "carol")
	var (
		mu      sync.Mutex
		results = map[pb.VerifyResult]int{}
		wg      sync.WaitGroup
	)
	for i := range 24 {
		wg.Add(1)
		go func(r *replica) {
			defer wg.Done()
			resp, err := r.challenges().VerifyChallenge(c.as("login"), &pb.VerifyChallengeRequest{
				ChallengeId: id, Response: &pb.VerifyChallengeRequest_Code{Code: wrong}})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			results[resp.Result]++
			mu.Unlock()
		}([]*replica{a, b}[i%2])
	}
	wg.Wait()
	if results[pb.VerifyResult_VERIFY_RESULT_REJECTED] != 5 ||
		results[pb.VerifyResult_VERIFY_RESULT_REJECTED]+results[pb.VerifyResult_VERIFY_RESULT_EXPIRED]+results[pb.VerifyResult_VERIFY_RESULT_THROTTLED] != 24 {
		t.Fatalf("24 concurrent wrong answers: %v, want exactly 5 REJECTED and the rest EXPIRED or THROTTLED", results)
	}
	var row struct {
		Attempts int
		State    string
	}
	if err := clusterDB(t, c).Table("challenges").Where("id = ?", challengeUUID(id)).Select("attempts", "state").Take(&row).Error; err != nil {
		t.Fatal(err)
	}
	if row.Attempts != 5 || row.State != "failed" {
		t.Fatalf("challenge row %+v, want 5 attempts, failed", row)
	}
}

// A sealed id that was altered, or sealed under another key ring, names no
// challenge; one of the wrong form is bad input.
func TestSealedChallengeIDTamperedOrForeign(t *testing.T) {
	c := newCluster(t)
	r := c.start()
	enrollTOTP(t, c, r, "dave")
	id := begin(t, c, r, "dave")
	other := newCluster(t)
	or := other.start()
	enrollTOTP(t, other, or, "dave")
	foreign := begin(t, other, or, "dave")
	head, body, _ := strings.Cut(id, ".")
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	notFound := map[string]string{
		"a flipped byte in the seal":   head + "." + flip(body, len(body)/2),
		"a flipped last character":     head + "." + flip(body, len(body)-1),
		"another challenge's uuid":     uuid.NewString() + "." + body,
		"a truncated seal":             head + "." + body[:len(body)-8],
		"sealed under another key":     foreign,
		"an unknown stored challenge":  uuid.NewString(),
		"a seal with no key id length": head + ".AQ",
	}
	for name, bad := range notFound {
		_, err := r.challenges().VerifyChallenge(c.as("login"), &pb.VerifyChallengeRequest{
			ChallengeId: bad, Response: &pb.VerifyChallengeRequest_Code{Code: "123456"}})
		if status.Code(err) != codes.NotFound || !strings.HasPrefix(status.Convert(err).Message(), "challenge_id:") {
			t.Errorf("%s: %v, want NotFound naming challenge_id", name, err)
		}
	}
	invalid := map[string]string{
		"not base64url":     head + "." + body[:10] + "+/" + body[12:],
		"an empty seal":     head + ".",
		"a bad uuid":        "not-a-uuid." + body,
		"over 1024 bytes":   head + "." + strings.Repeat("A", 1024),
		"a dot in the seal": head + "." + body + ".x",
	}
	for name, bad := range invalid {
		_, err := r.challenges().VerifyChallenge(c.as("login"), &pb.VerifyChallengeRequest{
			ChallengeId: bad, Response: &pb.VerifyChallengeRequest_Code{Code: "123456"}})
		if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), "challenge_id:") {
			t.Errorf("%s: %v, want InvalidArgument naming challenge_id", name, err)
		}
	}
	if n := challengeRows(t, c, "dave"); n != 0 {
		t.Fatalf("bad ids wrote %d challenges rows", n)
	}
}
