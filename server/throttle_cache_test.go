package server_test

import (
	"context"
	"testing"
	"time"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/server/throttle"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// With the clean-state cache on, a failure recorded on replica A makes replica B
// throttle as soon as A's announcement reaches B; the TTL cannot be what does it,
// since the injected clock never lets it pass. A count written to the store
// without an announcement shows that B was indeed answering from its cache.
func TestThrottleFailureOnOneReplicaThrottlesAnother(t *testing.T) {
	c := newCluster(t)
	c.throttle = throttle.Config{IPDelayAfter: 2, UserDelayAfter: 4, UserLockAfter: 8, CleanCacheTTL: time.Hour}
	a, b := c.start(), c.start()
	issued, err := a.appPasswords().IssueAppPassword(c.as("selfservice"), &pb.IssueAppPasswordRequest{UserId: "alice", Name: "phone"})
	if err != nil {
		t.Fatal(err)
	}
	const ip = "198.51.100.9"
	verify := func(r *replica, password string) *pb.VerifyAppPasswordResponse {
		t.Helper()
		got, err := r.appPasswords().VerifyAppPassword(c.as("login"), &pb.VerifyAppPasswordRequest{Login: "alice", Password: password,
			Context: &pb.ClientContext{Ip: ip}})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	for name, r := range map[string]*replica{"A": a, "B": b} {
		if got := verify(r, issued.GetPassword()); !got.GetValid() {
			t.Fatalf("first verification on %s: %v", name, got)
		}
	}

	// A count no replica is told about: both keep answering from their caches.
	st := storagetest.OpenURL(t, c.url)
	if _, _, err := st.RecordThrottleFailure(context.Background(), throttle.IP, ip, c.clock.Now(), time.Hour,
		func(int, time.Time) (time.Time, bool) { return c.clock.Now().Add(time.Minute), false }); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]*replica{"A": a, "B": b} {
		if got := verify(r, issued.GetPassword()); !got.GetValid() || got.GetThrottled() {
			t.Fatalf("%s read the store although it had the network as clean: %v", name, got)
		}
	}

	// One wrong password on A: stored (A forgets the network's clean state at
	// once) and announced; B throttles once it has the
	// announcement (delivered asynchronously; waited for, bounded).
	if got := verify(a, "tfap_0123456789abcdefghjkmnpqrs38f93sc"); got.GetValid() {
		t.Fatalf("wrong password on A: %v", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := verify(b, issued.GetPassword())
		if got.GetThrottled() {
			if got.GetRetryAfter().AsDuration() < 59*time.Second {
				t.Fatalf("B throttles for %v, want the stored minute", got.GetRetryAfter().AsDuration())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B still accepts from %s 5 s after A announced a failure: %v", ip, got)
		}
		time.Sleep(time.Millisecond)
	}
	// A itself never cached a subject it recorded a failure of.
	if got := verify(a, issued.GetPassword()); !got.GetThrottled() {
		t.Fatalf("A after its own failure: %v", got)
	}
}
