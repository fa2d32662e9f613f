package apppasswords_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twofactor/twofactor/providers/apppasswords"
	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

func TestIssueVerifyListRenameRevoke(t *testing.T) {
	cacheModes(t, func(t *testing.T, cacheSize int) {
		ctx := context.Background()
		ann := &announcements{}
		r := newReplica(t, storagetest.URL(t), storagetest.KeyRing(t), cacheSize, func(c *apppasswords.Config) { c.Announcer = ann })
		scope := apppasswords.Scope{ReadOnly: true, FilesystemOnly: true}
		p, pw, err := r.svc.Issue(ctx, "alice", "  DAVx⁵ on my phone ", scope)
		if err != nil {
			t.Fatal(err)
		}
		if len(pw) != apppasswords.Length || !strings.HasPrefix(pw, apppasswords.Prefix) {
			t.Fatalf("password %q is not in the format", pw)
		}
		want := apppasswords.AppPassword{ID: p.ID, UserID: "alice", Name: "DAVx⁵ on my phone", Scope: scope, CreatedAt: t0}
		if p != want || p.ID == "" {
			t.Fatalf("Issue = %+v, want %+v", p, want)
		}

		// Only a keyed hash is stored: the password appears nowhere in the row.
		row, err := r.store.GetAppPassword(ctx, "alice", p.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(row.LookupHash) != 32 || strings.Contains(string(row.LookupHash)+row.Name+row.ID, pw[len(apppasswords.Prefix):]) {
			t.Fatalf("stored row leaks the password: %+v", row)
		}

		r.clock.Advance(time.Second)
		for _, typed := range []string{pw, strings.ToUpper(pw), group(pw), " " + pw + "\n"} {
			res, err := r.svc.Verify(ctx, "alice", typed, "2001:db8::7")
			if err != nil {
				t.Fatal(err)
			}
			if want := (apppasswords.Result{Valid: true, UserID: "alice", ID: p.ID, Scope: scope}); res != want {
				t.Fatalf("Verify(%q) = %+v, want %+v", typed, res, want)
			}
		}

		list, err := r.svc.List(ctx, "alice")
		if err != nil || len(list) != 1 {
			t.Fatalf("List = %v, %v", list, err)
		}
		if got := list[0]; got.Name != want.Name || !got.CreatedAt.Equal(t0) || !got.LastUsedAt.Equal(t0.Add(time.Second)) || got.LastClientIP != "2001:db8::7" || got.Scope != scope {
			t.Fatalf("List[0] = %+v", got)
		}
		if other, _ := r.svc.List(ctx, "bob"); len(other) != 0 {
			t.Fatalf("bob sees %d app passwords", len(other))
		}

		renamed, err := r.svc.Rename(ctx, "alice", p.ID, "Thunderbird")
		if err != nil || renamed.Name != "Thunderbird" || renamed.ID != p.ID {
			t.Fatalf("Rename = %+v, %v", renamed, err)
		}
		if _, err := r.svc.Rename(ctx, "bob", p.ID, "mine now"); !errors.Is(err, apppasswords.ErrNotFound) {
			t.Fatalf("bob renamed alice's app password: %v", err)
		}
		if err := r.svc.Revoke(ctx, "bob", p.ID); !errors.Is(err, apppasswords.ErrNotFound) {
			t.Fatalf("bob revoked alice's app password: %v", err)
		}
		if res, _ := r.svc.Verify(ctx, "alice", pw, ""); !res.Valid {
			t.Fatal("alice's password stopped working after bob's attempts")
		}

		if err := r.svc.Revoke(ctx, "alice", p.ID); err != nil {
			t.Fatal(err)
		}
		if res, err := r.svc.Verify(ctx, "alice", pw, ""); err != nil || res.Valid || res.Reason != apppasswords.ReasonUnknown {
			t.Fatalf("Verify after revoke = %+v, %v", res, err)
		}
		if err := r.svc.Revoke(ctx, "alice", p.ID); !errors.Is(err, apppasswords.ErrNotFound) {
			t.Fatalf("second revoke: %v, want ErrNotFound", err)
		}
		if len(ann.ids) != 1 || ann.ids[0] != p.ID {
			t.Fatalf("announced %v, want [%s]", ann.ids, p.ID)
		}
	})
}

// group writes a password the way a user might type it from a grouped display.
func group(pw string) string {
	body := pw[len(apppasswords.Prefix):]
	var parts []string
	for len(body) > 5 {
		parts = append(parts, body[:5])
		body = body[5:]
	}
	return apppasswords.Prefix + strings.Join(append(parts, body), "-")
}

func TestVerifyRefuses(t *testing.T) {
	cacheModes(t, func(t *testing.T, cacheSize int) {
		ctx := context.Background()
		r := newReplica(t, storagetest.URL(t), storagetest.KeyRing(t), cacheSize, nil)
		_, alicePW, err := r.svc.Issue(ctx, "alice", "phone", apppasswords.Scope{})
		if err != nil {
			t.Fatal(err)
		}
		_, bobPW, _ := r.svc.Issue(ctx, "bob", "laptop", apppasswords.Scope{})
		// Well formed, right checksum, never issued.
		const wrongPW = "tfap_0123456789abcdefghjkmnpqrs38f93sc"
		// Warm the cache, so the refusals below are checked against a cache too.
		if res, _ := r.svc.Verify(ctx, "alice", alicePW, ""); !res.Valid {
			t.Fatal("alice's password refused")
		}
		cases := []struct {
			name, login, password string
			reason                apppasswords.Reason
			lookup                bool // whether the database may be asked
		}{
			{"wrong password", "alice", wrongPW, apppasswords.ReasonUnknown, true},
			{"main password", "alice", "correct horse battery staple", apppasswords.ReasonMalformed, false},
			{"empty password", "alice", "", apppasswords.ReasonMalformed, false},
			{"mistyped symbol", "alice", alicePW[:10] + flip(alicePW[10]) + alicePW[11:], apppasswords.ReasonMalformed, false},
			{"truncated", "alice", alicePW[:len(alicePW)-1], apppasswords.ReasonMalformed, false},
			{"unknown user", "mallory", alicePW, apppasswords.ReasonOtherUser, true},
			{"another user's password", "alice", bobPW, apppasswords.ReasonOtherUser, true},
			{"login differs in case", "Alice", alicePW, apppasswords.ReasonOtherUser, true},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				before := r.store.lookups.Load()
				res, err := r.svc.Verify(ctx, c.login, c.password, "192.0.2.9")
				if err != nil {
					t.Fatal(err)
				}
				if want := (apppasswords.Result{Reason: c.reason}); res != want {
					t.Fatalf("Verify = %+v, want %+v", res, want)
				}
				if !c.lookup && r.store.lookups.Load() != before {
					t.Fatal("a malformed password reached the database")
				}
			})
		}
		// The refusals recorded no use.
		list, _ := r.svc.List(ctx, "bob")
		if !list[0].LastUsedAt.IsZero() {
			t.Fatalf("bob's password marked used by a refused login: %+v", list[0])
		}
	})
}

// flip replaces a symbol by a different one of the alphabet.
func flip(c byte) string {
	if c == 'a' {
		return "b"
	}
	return "a"
}

func TestArgumentErrors(t *testing.T) {
	ctx := context.Background()
	r := newReplica(t, storagetest.URL(t), storagetest.KeyRing(t), 0, func(c *apppasswords.Config) { c.MaxPerUser = 2 })
	p, pw, err := r.svc.Issue(ctx, "alice", "one", apppasswords.Scope{})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		call  func() error
		field string
	}{
		{"issue: empty user", func() error { _, _, err := r.svc.Issue(ctx, "", "x", apppasswords.Scope{}); return err }, "user_id"},
		{"issue: control in user", func() error { _, _, err := r.svc.Issue(ctx, "a\x00b", "x", apppasswords.Scope{}); return err }, "user_id"},
		{"issue: long user", func() error {
			_, _, err := r.svc.Issue(ctx, strings.Repeat("u", 256), "x", apppasswords.Scope{})
			return err
		}, "user_id"},
		{"issue: blank name", func() error { _, _, err := r.svc.Issue(ctx, "alice", "  ", apppasswords.Scope{}); return err }, "name"},
		{"issue: long name", func() error {
			_, _, err := r.svc.Issue(ctx, "alice", strings.Repeat("é", 129), apppasswords.Scope{})
			return err
		}, "name"},
		{"issue: newline in name", func() error { _, _, err := r.svc.Issue(ctx, "alice", "a\nb", apppasswords.Scope{}); return err }, "name"},
		{"verify: empty login", func() error { _, err := r.svc.Verify(ctx, "", pw, ""); return err }, "login"},
		{"verify: bad client ip", func() error { _, err := r.svc.Verify(ctx, "alice", pw, "example.org"); return err }, "client_ip"},
		{"rename: empty id", func() error { _, err := r.svc.Rename(ctx, "alice", "", "x"); return err }, "app_password_id"},
		{"rename: empty name", func() error { _, err := r.svc.Rename(ctx, "alice", p.ID, ""); return err }, "name"},
		{"revoke: empty user", func() error { return r.svc.Revoke(ctx, "", p.ID) }, "user_id"},
		{"revoke all: empty user", func() error { _, err := r.svc.RevokeAll(ctx, ""); return err }, "user_id"},
		{"list: empty user", func() error { _, err := r.svc.List(ctx, ""); return err }, "user_id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if !errors.Is(err, apppasswords.ErrInvalidArgument) || !strings.HasPrefix(strings.TrimPrefix(err.Error(), "invalid argument: "), c.field+":") {
				t.Fatalf("err = %v, want ErrInvalidArgument naming %s", err, c.field)
			}
			if strings.Contains(err.Error(), pw) {
				t.Fatal("the error contains the password")
			}
		})
	}
	if _, _, err := r.svc.Issue(ctx, "alice", "two", apppasswords.Scope{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.svc.Issue(ctx, "alice", "three", apppasswords.Scope{}); !errors.Is(err, apppasswords.ErrTooMany) {
		t.Fatalf("third of 2 allowed: %v, want ErrTooMany", err)
	}
}

func TestRevokeAll(t *testing.T) {
	cacheModes(t, func(t *testing.T, cacheSize int) {
		ctx := context.Background()
		ann := &announcements{}
		r := newReplica(t, storagetest.URL(t), storagetest.KeyRing(t), cacheSize, func(c *apppasswords.Config) { c.Announcer = ann })
		var alice []string
		ids := map[string]bool{}
		for _, name := range []string{"phone", "laptop", "tablet"} {
			p, pw, err := r.svc.Issue(ctx, "alice", name, apppasswords.Scope{})
			if err != nil {
				t.Fatal(err)
			}
			alice = append(alice, pw)
			ids[p.ID] = true
			r.svc.Verify(ctx, "alice", pw, "") // cache it
		}
		_, bobPW, _ := r.svc.Issue(ctx, "bob", "phone", apppasswords.Scope{})
		n, err := r.svc.RevokeAll(ctx, "alice")
		if err != nil || n != 3 {
			t.Fatalf("RevokeAll = %d, %v", n, err)
		}
		for _, pw := range alice {
			if res, _ := r.svc.Verify(ctx, "alice", pw, ""); res.Valid {
				t.Fatal("a revoked password still verifies")
			}
		}
		if res, _ := r.svc.Verify(ctx, "bob", bobPW, ""); !res.Valid {
			t.Fatal("bob's password was revoked with alice's")
		}
		if len(ann.ids) != 3 {
			t.Fatalf("announced %d ids, want 3", len(ann.ids))
		}
		for _, id := range ann.ids {
			if !ids[id] {
				t.Fatalf("announced %s, not one of alice's", id)
			}
		}
		if n, err := r.svc.RevokeAll(ctx, "alice"); err != nil || n != 0 {
			t.Fatalf("second RevokeAll = %d, %v", n, err)
		}
	})
}

func TestRevokeWhenAnnouncingFails(t *testing.T) {
	ctx := context.Background()
	r := newReplica(t, storagetest.URL(t), storagetest.KeyRing(t), 100, func(c *apppasswords.Config) {
		c.Announcer = &announcements{fail: true}
	})
	p, pw, _ := r.svc.Issue(ctx, "alice", "phone", apppasswords.Scope{})
	r.svc.Verify(ctx, "alice", pw, "")
	err := r.svc.Revoke(ctx, "alice", p.ID)
	if !errors.Is(err, apppasswords.ErrNotAnnounced) {
		t.Fatalf("Revoke = %v, want ErrNotAnnounced", err)
	}
	// Revoked in the database and in this replica nonetheless.
	if res, _ := r.svc.Verify(ctx, "alice", pw, ""); res.Valid {
		t.Fatal("revoked password still verifies locally")
	}
	if _, err := r.store.GetAppPassword(ctx, "alice", p.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("row still there: %v", err)
	}
}

// A busy client: last use is written at most once per interval, whichever
// replica verifies, and a cache spares the lookups in between.
func TestLastUsedWrittenAtMostOncePerMinute(t *testing.T) {
	cacheModes(t, func(t *testing.T, cacheSize int) {
		ctx := context.Background()
		url := storagetest.URL(t)
		ring := storagetest.KeyRing(t)
		a := newReplica(t, url, ring, cacheSize, nil)
		b := newReplica(t, url, ring, cacheSize, nil)
		p, pw, _ := a.svc.Issue(ctx, "alice", "sync", apppasswords.Scope{})

		lastUsed := func() (time.Time, string) {
			row, err := a.store.GetAppPassword(ctx, "alice", p.ID)
			if err != nil {
				t.Fatal(err)
			}
			if row.LastUsedAt == nil {
				return time.Time{}, row.LastClientIP
			}
			return row.LastUsedAt.UTC(), row.LastClientIP
		}
		steps := []struct {
			advance time.Duration // both clocks
			on      *replica
			ip      string
			wantAt  time.Duration // recorded last use, from t0
			wantIP  string
		}{
			{0, a, "192.0.2.1", 0, "192.0.2.1"},
			{10 * time.Second, a, "192.0.2.2", 0, "192.0.2.1"},
			{10 * time.Second, b, "192.0.2.3", 0, "192.0.2.1"},
			{40 * time.Second, a, "192.0.2.4", 0, "192.0.2.1"}, // exactly one minute: not yet
			{time.Second, b, "192.0.2.5", 61 * time.Second, "192.0.2.5"},
			{time.Second, a, "192.0.2.6", 61 * time.Second, "192.0.2.5"},
			{2 * time.Minute, a, "192.0.2.7", 182 * time.Second, "192.0.2.7"},
		}
		for i, s := range steps {
			a.clock.Advance(s.advance)
			b.clock.Advance(s.advance)
			for k := 0; k < 5; k++ { // a burst of requests
				if res, err := s.on.svc.Verify(ctx, "alice", pw, s.ip); err != nil || !res.Valid {
					t.Fatalf("step %d: Verify = %+v, %v", i, res, err)
				}
			}
			at, ip := lastUsed()
			if !at.Equal(t0.Add(s.wantAt)) || ip != s.wantIP {
				t.Fatalf("step %d: last used %v from %s, want %v from %s", i, at, ip, t0.Add(s.wantAt), s.wantIP)
			}
		}
		writes := a.store.touches.Load() + b.store.touches.Load()
		lookups := a.store.lookups.Load() + b.store.lookups.Load()
		t.Logf("35 verifications: %d touch statements, %d lookups", writes, lookups)
		if cacheSize > 0 {
			// Each replica asks the database once per cache TTL (10 s here) at
			// most; and issues an UPDATE only when its cached last use is stale.
			if lookups > 7 || writes > 5 {
				t.Fatalf("%d lookups and %d touch statements for 35 cached verifications", lookups, writes)
			}
		} else if lookups != 35 || writes != 3 {
			t.Fatalf("%d lookups and %d touch statements, want 35 and 3", lookups, writes)
		}
	})
}

func TestTouchFailureDoesNotFailVerification(t *testing.T) {
	ctx := context.Background()
	var reported []error
	r := newReplica(t, storagetest.URL(t), storagetest.KeyRing(t), 0, func(c *apppasswords.Config) {
		c.OnTouchError = func(err error) { reported = append(reported, err) }
	})
	_, pw, _ := r.svc.Issue(ctx, "alice", "sync", apppasswords.Scope{})
	r.store.failTouch = true
	if res, err := r.svc.Verify(ctx, "alice", pw, ""); err != nil || !res.Valid {
		t.Fatalf("Verify = %+v, %v", res, err)
	}
	if len(reported) != 1 || strings.Contains(reported[0].Error(), pw) {
		t.Fatalf("reported %v", reported)
	}
}

// Without an announcement (NATS down), a replica that cached a password refuses it
// as soon as Revoke returned elsewhere (issue 16, finding 10), although its clock
// stands still and its cache entry would live on for CacheTTL.
func TestRevocationHoldsWithoutAnnouncement(t *testing.T) {
	ctx := context.Background()
	url := storagetest.URL(t)
	ring := storagetest.KeyRing(t)
	a := newReplica(t, url, ring, 100, nil)
	b := newReplica(t, url, ring, 100, func(c *apppasswords.Config) { c.CacheTTL = time.Hour })
	p, pw, _ := a.svc.Issue(ctx, "alice", "phone", apppasswords.Scope{})
	for i := 0; i < 3; i++ {
		if res, _ := b.svc.Verify(ctx, "alice", pw, ""); !res.Valid {
			t.Fatal("refused before revocation")
		}
	}
	if n := b.store.lookups.Load(); n != 1 {
		t.Fatalf("B looked up %d times for 3 verifications, want 1 (the test would prove nothing)", n)
	}
	if err := a.svc.Revoke(ctx, "alice", p.ID); err != nil {
		t.Fatal(err)
	}
	if res, _ := b.svc.Verify(ctx, "alice", pw, ""); res.Valid {
		t.Fatal("B accepted a revoked password after Revoke returned on A")
	}
}

// A replica that cannot read the revocation counter does not trust its cache.
func TestCacheUnusedWhenTheCounterCannotBeRead(t *testing.T) {
	ctx := context.Background()
	r := newReplica(t, storagetest.URL(t), storagetest.KeyRing(t), 100, func(c *apppasswords.Config) { c.RevocationCheck = time.Millisecond })
	_, pw, _ := r.svc.Issue(ctx, "alice", "phone", apppasswords.Scope{})
	if res, _ := r.svc.Verify(ctx, "alice", pw, ""); !res.Valid {
		t.Fatal("refused")
	}
	r.store.failCounter.Store(true)
	before := r.store.lookups.Load()
	deadline := time.Now().Add(5 * time.Second)
	for r.store.lookups.Load() == before { // once the last read is over a millisecond old
		if res, _ := r.svc.Verify(ctx, "alice", pw, ""); !res.Valid {
			t.Fatal("refused while the database answers lookups")
		}
		if time.Now().After(deadline) {
			t.Fatal("the cache was still trusted 5 s after the counter became unreadable")
		}
	}
}

// An announcement that arrives while a lookup is reading the revoked row must not
// be undone by that lookup caching the row afterwards.
func TestInvalidationDuringLookupIsNotUndone(t *testing.T) {
	ctx := context.Background()
	url := storagetest.URL(t)
	ring := storagetest.KeyRing(t)
	a := newReplica(t, url, ring, 100, nil)
	b := newReplica(t, url, ring, 100, nil)
	p, pw, _ := a.svc.Issue(ctx, "alice", "phone", apppasswords.Scope{})
	b.store.afterLookup = func(row *storage.AppPassword) {
		// B has read the row; now A revokes and B hears of it.
		if err := a.svc.Revoke(ctx, "alice", row.ID); err != nil {
			t.Error(err)
		}
		b.svc.Invalidate(row.ID)
	}
	b.svc.Verify(ctx, "alice", pw, "") // linearised before the revocation: may be valid
	b.store.afterLookup = nil
	if res, _ := b.svc.Verify(ctx, "alice", pw, ""); res.Valid {
		t.Fatalf("B cached app password %s that was revoked during its lookup", p.ID)
	}
}
