package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/twofactor/twofactor/notify"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/totp"
	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// A verification's record is committed with the verification: when
// VerifyChallenge returns, challenge.rejected and challenge.accepted are in the
// database, although this replica's audit writer holds every event recorded
// outside a transaction for an hour (its linger) and is never flushed, as after a
// crash. challenge.begun, recorded outside one, is still held: the test tells the
// two paths apart. Sealed (TOTP) and stored (backup code) challenges alike.
func TestVerificationRecordsCommitWithTheVerification(t *testing.T) {
	c := newCluster(t)
	c.auditLinger = time.Hour
	r := c.start()
	_, seed, params := enrollTOTP(t, c, r, "alice")
	c.clock.Add(30 * time.Second)
	id := begin(t, c, r, "alice")
	if got := verify(t, c, r, id, wrongCode(seed, params, c.clock.Now())); got.Result != pb.VerifyResult_VERIFY_RESULT_REJECTED {
		t.Fatal(got)
	}
	code, _ := totp.CodeAt(seed, params, c.clock.Now())
	if got := verify(t, c, r, id, code); got.Result != pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
		t.Fatal(got)
	}
	bc, err := r.enrollment().IssueBackupCodes(c.as("selfservice"), &pb.IssueBackupCodesRequest{UserId: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	bid, err := r.challenges().BeginChallenge(c.as("login"), &pb.BeginChallengeRequest{UserId: "alice", Method: pb.Method_METHOD_BACKUP_CODE})
	if err != nil {
		t.Fatal(err)
	}
	if got := verify(t, c, r, bid.GetChallengeId(), "AAAAA-AAAAA"); got.Result != pb.VerifyResult_VERIFY_RESULT_REJECTED {
		t.Fatal(got)
	}
	if got := verify(t, c, r, bid.GetChallengeId(), bc.GetCodes()[0]); got.Result != pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
		t.Fatal(got)
	}

	st := storagetest.OpenURL(t, c.url) // what another process sees now
	count := func(event string) map[string]int {
		var rows []storage.AuditRecord
		if err := st.DB(context.Background()).Where("event = ?", event).Find(&rows).Error; err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, r := range rows {
			out[r.Method]++
		}
		return out
	}
	for _, e := range []string{notify.EventChallengeRejected, notify.EventChallengeAccepted} {
		if got := count(e); got["totp"] != 1 || got["backup_code"] != 1 {
			t.Errorf("%s records committed: %v, want one of totp and of backup_code", e, got)
		}
	}
	if got := count(notify.EventBackupCodeUsed); got["backup_code"] != 1 {
		t.Errorf("backupcode.used records committed: %v, want 1 (the factor's own event, in the same transaction)", got)
	}
	if got := count(notify.EventChallengeBegun); len(got) != 0 {
		t.Fatalf("challenge.begun already stored (%v): the writer was not holding events, the test proves nothing", got)
	}
}
