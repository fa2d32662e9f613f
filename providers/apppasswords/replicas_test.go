package apppasswords_test

import (
	"context"
	"errors"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/twofactor/twofactor/providers/apppasswords"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// revokedSubject is the test's own subject; the server's lives in package notify.
const revokedSubject = "twofactor.test.apppassword.revoked"

// natsAnnouncer publishes a revoked id, as the server's announcer does.
type natsAnnouncer struct{ nc *nats.Conn }

func (a natsAnnouncer) AnnounceRevoked(_ context.Context, id string) error {
	if err := a.nc.Publish(revokedSubject, []byte(id)); err != nil {
		return err
	}
	return a.nc.Flush()
}

// embeddedNATS starts an in-process NATS server without a listener.
func embeddedNATS(t testing.TB) *natsserver.Server {
	t.Helper()
	srv, err := natsserver.NewServer(&natsserver.Options{DontListen: true, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(5 * time.Second) {
		t.Fatal("embedded NATS server did not start")
	}
	return srv
}

func connect(t testing.TB, srv *natsserver.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect("", nats.InProcessServer(srv))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// announcementLimit bounds the wait for an announcement: a failure bound only, far
// above the milliseconds it takes, so that a loaded CI machine does not miss it.
const announcementLimit = 10 * time.Second

// Issue on A, verify on B (now cached there), revoke on A: B refuses as soon as
// the announcement reaches it, although B's clock stands still and B trusts its
// cache for an hour after its last read of the revocation counter: only the
// announcement can make B forget the entry.
func TestRevocationReachesOtherReplicaOverNATS(t *testing.T) {
	ctx := context.Background()
	url := storagetest.URL(t)
	ring := storagetest.KeyRing(t)
	srv := embeddedNATS(t)
	ncA, ncB := connect(t, srv), connect(t, srv)

	a := newReplica(t, url, ring, 1000, func(c *apppasswords.Config) { c.Announcer = natsAnnouncer{ncA} })
	b := newReplica(t, url, ring, 1000, func(c *apppasswords.Config) {
		c.Announcer = natsAnnouncer{ncB}
		c.RevocationCheck = time.Hour // the counter does not make B forget within the test
	})

	delivered := make(chan string, 16)
	for _, r := range []struct {
		nc  *nats.Conn
		svc *apppasswords.Service
	}{{ncA, a.svc}, {ncB, b.svc}} {
		nc, svc := r.nc, r.svc
		sub, err := nc.Subscribe(revokedSubject, func(m *nats.Msg) {
			svc.Invalidate(string(m.Data))
			if nc == ncB {
				delivered <- string(m.Data)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sub.Unsubscribe() })
		if err := nc.Flush(); err != nil { // the subscription is registered
			t.Fatal(err)
		}
	}

	p, pw, err := a.svc.Issue(ctx, "alice", "DAVx⁵", apppasswords.Scope{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		res, err := b.svc.Verify(ctx, "alice", pw, "192.0.2.1")
		if err != nil || !res.Valid || res.ID != p.ID || !res.Scope.ReadOnly {
			t.Fatalf("B: Verify = %+v, %v", res, err)
		}
	}
	if n := b.store.lookups.Load(); n != 1 {
		t.Fatalf("B looked up %d times for 3 verifications, want 1 (cached)", n)
	}
	if res, _ := a.svc.Verify(ctx, "alice", pw, ""); !res.Valid {
		t.Fatal("A refused before revocation")
	}

	if err := a.svc.Revoke(ctx, "alice", p.ID); err != nil {
		t.Fatal(err)
	}
	if res, _ := a.svc.Verify(ctx, "alice", pw, ""); res.Valid {
		t.Fatal("A accepted right after revoking")
	}
	select {
	case id := <-delivered:
		if id != p.ID {
			t.Fatalf("B heard of %s, want %s", id, p.ID)
		}
	case <-time.After(announcementLimit):
		t.Fatalf("B heard of no revocation within %v", announcementLimit)
	}
	res, err := b.svc.Verify(ctx, "alice", pw, "192.0.2.1")
	if err != nil || res.Valid || res.Reason != apppasswords.ReasonUnknown {
		t.Fatalf("B after revocation: %+v, %v", res, err)
	}

	// RevokeAll travels the same way.
	_, pw1, _ := a.svc.Issue(ctx, "alice", "one", apppasswords.Scope{})
	_, pw2, _ := a.svc.Issue(ctx, "alice", "two", apppasswords.Scope{})
	for _, pw := range []string{pw1, pw2} {
		if res, _ := b.svc.Verify(ctx, "alice", pw, ""); !res.Valid {
			t.Fatal("B refused a fresh password")
		}
	}
	if n, err := a.svc.RevokeAll(ctx, "alice"); err != nil || n != 2 {
		t.Fatalf("RevokeAll = %d, %v", n, err)
	}
	for i := 0; i < 2; i++ {
		select {
		case <-delivered:
		case <-time.After(announcementLimit):
			t.Fatalf("B heard of fewer than 2 revocations within %v", announcementLimit)
		}
	}
	for _, pw := range []string{pw1, pw2} {
		if res, _ := b.svc.Verify(ctx, "alice", pw, ""); res.Valid {
			t.Fatal("B accepted a password revoked by RevokeAll")
		}
	}
}

// Issue 16, finding 10: when Revoke returns on A, B refuses the password at once,
// round after round, with B's cache holding it each time; and the same when B
// hears no announcements at all (its NATS connection closed).
func TestRevocationAtOnceOnEveryReplica(t *testing.T) {
	ctx := context.Background()
	url := storagetest.URL(t)
	ring := storagetest.KeyRing(t)
	srv := embeddedNATS(t)
	ncA, ncB := connect(t, srv), connect(t, srv)
	fast := func(c *apppasswords.Config) { c.RevocationCheck = 5 * time.Millisecond; c.CacheTTL = time.Hour }
	a := newReplica(t, url, ring, 1000, func(c *apppasswords.Config) { fast(c); c.Announcer = natsAnnouncer{ncA} })
	b := newReplica(t, url, ring, 1000, func(c *apppasswords.Config) { fast(c); c.Announcer = natsAnnouncer{ncB} })
	sub, err := ncB.Subscribe(revokedSubject, func(m *nats.Msg) { b.svc.Invalidate(string(m.Data)) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := ncB.Flush(); err != nil {
		t.Fatal(err)
	}
	rounds := func(n int) (accepted, cachedBefore int) {
		for i := 0; i < n; i++ {
			p, pw, err := a.svc.Issue(ctx, "alice", "sync", apppasswords.Scope{})
			if err != nil {
				t.Fatal(err)
			}
			before := b.store.lookups.Load()
			for j := 0; j < 2; j++ {
				if res, err := b.svc.Verify(ctx, "alice", pw, ""); err != nil || !res.Valid {
					t.Fatalf("B refused a live password: %+v, %v", res, err)
				}
			}
			if b.store.lookups.Load()-before == 1 {
				cachedBefore++ // the second verification came from B's cache
			}
			if err := a.svc.Revoke(ctx, "alice", p.ID); err != nil && !errors.Is(err, apppasswords.ErrNotAnnounced) {
				t.Fatal(err)
			}
			if res, _ := b.svc.Verify(ctx, "alice", pw, ""); res.Valid {
				accepted++
			}
		}
		return accepted, cachedBefore
	}
	if acc, cached := rounds(300); acc != 0 || cached < 250 {
		t.Fatalf("with announcements: B accepted %d of 300 revoked passwords (cached before revocation in %d rounds)", acc, cached)
	}
	ncB.Close() // B hears nothing from now on
	if acc, cached := rounds(50); acc != 0 || cached < 40 {
		t.Fatalf("with B's NATS down: B accepted %d of 50 revoked passwords (cached before revocation in %d rounds)", acc, cached)
	}
}
