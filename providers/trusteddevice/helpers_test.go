package trusteddevice_test

import (
	"context"
	"testing"
	"time"

	"github.com/twofactor/twofactor/internal/testfix"
	"github.com/twofactor/twofactor/providers/trusteddevice"
	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// hookStore is the real store with optional hooks on the calls a test races.
type hookStore struct {
	*storage.Store
	beforeRotate func()
	afterEpoch   func()
}

func (s *hookStore) RotateTrustedDevice(ctx context.Context, id string, oldHash, newHash []byte, now time.Time, ip string) (bool, error) {
	if s.beforeRotate != nil {
		s.beforeRotate()
	}
	return s.Store.RotateTrustedDevice(ctx, id, oldHash, newHash, now, ip)
}

func (s *hookStore) GetCredentialsEpoch(ctx context.Context, userID string) (int64, error) {
	e, err := s.Store.GetCredentialsEpoch(ctx, userID)
	if s.afterEpoch != nil {
		s.afterEpoch()
	}
	return e, err
}

type replica struct {
	svc   *trusteddevice.Service
	store *hookStore
	clock *testfix.Clock
}

// newReplica starts a service on the database at url (one replica).
func newReplica(t testing.TB, url string, ring *storage.KeyRing, mod func(*trusteddevice.Config)) *replica {
	t.Helper()
	r := &replica{store: &hookStore{Store: storagetest.OpenURL(t, url)}, clock: testfix.NewClock(t0)}
	cfg := trusteddevice.Config{Store: r.store, Hasher: ring, Now: r.clock.Now}
	if mod != nil {
		mod(&cfg)
	}
	svc, err := trusteddevice.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.svc = svc
	return r
}

func newService(t testing.TB, mod func(*trusteddevice.Config)) *replica {
	t.Helper()
	return newReplica(t, storagetest.URL(t), storagetest.KeyRing(t), mod)
}

const ip = "192.0.2.10"

func (r *replica) issue(t testing.TB, user string) (trusteddevice.Device, string) {
	t.Helper()
	d, tok, _, err := r.svc.Issue(context.Background(), trusteddevice.IssueInput{UserID: user, Label: "Firefox on Linux",
		ClientIP: ip, UserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"})
	if err != nil {
		t.Fatal(err)
	}
	return d, tok
}

func (r *replica) check(t testing.TB, user, token, fromIP string) trusteddevice.Result {
	t.Helper()
	res, err := r.svc.Check(context.Background(), user, token, fromIP)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// mustRemember checks token and returns its successor.
func (r *replica) mustRemember(t testing.TB, user, token string) trusteddevice.Result {
	t.Helper()
	res := r.check(t, user, token, ip)
	if !res.Remembered || res.Token == "" || res.Token == token || res.Reason != "" {
		t.Fatalf("Check = %+v, want remembered with a new token", res)
	}
	if _, err := trusteddevice.Parse(res.Token); err != nil {
		t.Fatalf("successor is not a device token: %v", err)
	}
	return res
}

func wantReason(t testing.TB, res trusteddevice.Result, want trusteddevice.Reason) {
	t.Helper()
	if res.Remembered || res.Token != "" || res.Reason != want {
		t.Fatalf("Check = remembered %v, token set %v, reason %q; want reason %q", res.Remembered, res.Token != "", res.Reason, want)
	}
}
