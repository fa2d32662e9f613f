package trusteddevice_test

import (
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twofactor/twofactor/providers/trusteddevice"
	"github.com/twofactor/twofactor/storage/storagetest"
)

func TestIssueUseRotate(t *testing.T) {
	ctx := context.Background()
	r := newService(t, nil)
	d, t0k := r.issue(t, "alice")
	if d.ExpiresAt.Sub(d.CreatedAt) != trusteddevice.DefaultMaxAge || d.Label != "Firefox on Linux" || d.IssuedIP != ip {
		t.Fatalf("issued %+v", d)
	}
	r.clock.Advance(time.Hour)
	res := r.mustRemember(t, "alice", t0k)
	if res.SeriesID != d.ID || res.Grace || !res.Device.ExpiresAt.Equal(d.ExpiresAt) || res.Device.Rotations != 1 {
		t.Fatalf("rotation = %+v", res)
	}
	r.clock.Advance(time.Hour)
	res2 := r.mustRemember(t, "alice", res.Token)
	if res2.SeriesID != d.ID || !res2.Device.ExpiresAt.Equal(d.ExpiresAt) {
		t.Fatalf("second rotation moved the series or its expiry: %+v", res2)
	}
	list, err := r.svc.List(ctx, "alice")
	if err != nil || len(list) != 1 {
		t.Fatalf("List = %v, %v", list, err)
	}
	if got := list[0]; got.ID != d.ID || got.Rotations != 2 || !got.LastUsedAt.Equal(t0.Add(2*time.Hour)) || got.LastIP != ip || !got.ExpiresAt.Equal(d.ExpiresAt) {
		t.Fatalf("listed %+v", got)
	}
	if n := storagetest.AssertNotStored(t, r.store.Store, t0k, res.Token, res2.Token, t0k[5:40], res2.Token[5:40]); n < 3 {
		t.Fatalf("read %d rows, want the series and its retired tokens", n)
	}
}

func TestReplayAfterGraceRevokesSeries(t *testing.T) {
	r := newService(t, nil)
	_, tok0 := r.issue(t, "alice")
	_, other := r.issue(t, "alice") // another device of alice survives
	tok1 := r.mustRemember(t, "alice", tok0).Token
	r.clock.Advance(trusteddevice.DefaultGrace + time.Second)
	res := r.check(t, "alice", tok0, ip)
	wantReason(t, res, trusteddevice.ReasonTheft)
	if res.SeriesID == "" {
		t.Fatal("theft names no series")
	}
	wantReason(t, r.check(t, "alice", tok1, ip), trusteddevice.ReasonUnknown) // the thief's copy dies too
	wantReason(t, r.check(t, "alice", tok0, ip), trusteddevice.ReasonUnknown)
	r.mustRemember(t, "alice", other)
}

func TestReplayOfOlderTokenIsTheft(t *testing.T) {
	r := newService(t, nil)
	_, tok0 := r.issue(t, "alice")
	tok1 := r.mustRemember(t, "alice", tok0).Token
	tok2 := r.mustRemember(t, "alice", tok1).Token
	wantReason(t, r.check(t, "alice", tok0, ip), trusteddevice.ReasonTheft) // within grace of tok1, not of tok0
	wantReason(t, r.check(t, "alice", tok2, ip), trusteddevice.ReasonUnknown)
}

func TestGraceAnswersSameSuccessorOnce(t *testing.T) {
	r := newService(t, nil)
	_, tok0 := r.issue(t, "alice")
	tok1 := r.mustRemember(t, "alice", tok0).Token
	r.clock.Advance(trusteddevice.DefaultGrace - time.Second)
	res := r.check(t, "alice", tok0, ip)
	if !res.Remembered || !res.Grace || res.Token != tok1 {
		t.Fatalf("within grace: %+v, want the same successor", res)
	}
	// Once only: a third presentation of tok0 is theft.
	wantReason(t, r.check(t, "alice", tok0, ip), trusteddevice.ReasonTheft)
	wantReason(t, r.check(t, "alice", tok1, ip), trusteddevice.ReasonUnknown)
}

func TestGraceFromAnotherClientIsTheft(t *testing.T) {
	r := newService(t, nil)
	_, tok0 := r.issue(t, "alice")
	tok1 := r.mustRemember(t, "alice", tok0).Token
	wantReason(t, r.check(t, "alice", tok0, "198.51.100.7"), trusteddevice.ReasonTheft)
	wantReason(t, r.check(t, "alice", tok1, ip), trusteddevice.ReasonUnknown)
}

func TestExpiryIsAbsolute(t *testing.T) {
	ctx := context.Background()
	r := newService(t, nil)
	d, tok, _, err := r.svc.Issue(ctx, trusteddevice.IssueInput{UserID: "alice", MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ { // uses every 11 minutes never extend the hour
		r.clock.Advance(11 * time.Minute)
		tok = r.mustRemember(t, "alice", tok).Token
	}
	r.clock.Advance(d.ExpiresAt.Sub(r.clock.Now()))
	wantReason(t, r.check(t, "alice", tok, ip), trusteddevice.ReasonExpired)
	wantReason(t, r.check(t, "alice", tok, ip), trusteddevice.ReasonUnknown) // removed
	if list, _ := r.svc.List(ctx, "alice"); len(list) != 0 {
		t.Fatalf("expired series listed: %v", list)
	}
	for _, age := range []time.Duration{time.Second, trusteddevice.MaxMaxAge + time.Hour, -time.Hour} {
		if _, _, _, err := r.svc.Issue(ctx, trusteddevice.IssueInput{UserID: "alice", MaxAge: age}); !errors.Is(err, trusteddevice.ErrInvalidArgument) || !strings.Contains(err.Error(), "max_age") {
			t.Errorf("MaxAge %v: err = %v", age, err)
		}
	}
	if d, _, _, err := r.svc.Issue(ctx, trusteddevice.IssueInput{UserID: "alice", MaxAge: trusteddevice.MaxMaxAge}); err != nil || d.ExpiresAt.Sub(d.CreatedAt) != trusteddevice.MaxMaxAge {
		t.Errorf("MaxMaxAge: %+v, %v", d, err)
	}
}

func TestCredentialsEpoch(t *testing.T) {
	ctx := context.Background()
	r := newService(t, nil)
	_, a1 := r.issue(t, "alice")
	_, a2 := r.issue(t, "alice")
	_, b := r.issue(t, "bob")
	epoch, removed, err := r.svc.CredentialsChanged(ctx, "alice")
	if err != nil || epoch != 1 || removed != 2 {
		t.Fatalf("CredentialsChanged = %d, %d, %v", epoch, removed, err)
	}
	wantReason(t, r.check(t, "alice", a1, ip), trusteddevice.ReasonUnknown)
	wantReason(t, r.check(t, "alice", a2, ip), trusteddevice.ReasonUnknown)
	r.mustRemember(t, "bob", b)
	// A device issued after the change lives; the next change kills it.
	_, a3 := r.issue(t, "alice")
	a3 = r.mustRemember(t, "alice", a3).Token
	if e, _, _ := r.svc.CredentialsChanged(ctx, "alice"); e != 2 {
		t.Fatalf("epoch %d, want 2", e)
	}
	wantReason(t, r.check(t, "alice", a3, ip), trusteddevice.ReasonUnknown)
}

// An issue that read the epoch just before a change stores the old epoch; the
// check finds it stale.
func TestIssueRacingEpochChangeIsDead(t *testing.T) {
	ctx := context.Background()
	r := newService(t, nil)
	once := sync.Once{}
	r.store.afterEpoch = func() {
		once.Do(func() {
			if _, _, err := r.store.BumpCredentialsEpoch(ctx, "alice", t0); err != nil {
				t.Error(err)
			}
		})
	}
	_, tok := r.issue(t, "alice")
	r.store.afterEpoch = nil
	wantReason(t, r.check(t, "alice", tok, ip), trusteddevice.ReasonEpoch)
	wantReason(t, r.check(t, "alice", tok, ip), trusteddevice.ReasonUnknown)
}

func TestCapEvictsOldest(t *testing.T) {
	r := newService(t, func(c *trusteddevice.Config) { c.MaxPerUser = 3 })
	var ids, toks []string
	for i := 0; i < 3; i++ {
		d, tok := r.issue(t, "alice")
		ids, toks = append(ids, d.ID), append(toks, tok)
		r.clock.Advance(time.Second)
	}
	_, _ = r.issue(t, "bob")
	d, _, evicted, err := r.svc.Issue(context.Background(), trusteddevice.IssueInput{UserID: "alice"})
	if err != nil || len(evicted) != 1 || evicted[0] != ids[0] {
		t.Fatalf("evicted %v, %v; want the oldest %s", evicted, err, ids[0])
	}
	wantReason(t, r.check(t, "alice", toks[0], ip), trusteddevice.ReasonUnknown)
	r.mustRemember(t, "alice", toks[1])
	list, _ := r.svc.List(context.Background(), "alice")
	if len(list) != 3 || list[2].ID != d.ID {
		t.Fatalf("list %v", list)
	}
}

func TestOtherUsersToken(t *testing.T) {
	r := newService(t, nil)
	_, tok := r.issue(t, "alice")
	wantReason(t, r.check(t, "bob", tok, ip), trusteddevice.ReasonOtherUser)
	tok1 := r.mustRemember(t, "alice", tok).Token // still alice's, not rotated by bob
	r.clock.Advance(time.Hour)
	wantReason(t, r.check(t, "bob", tok, ip), trusteddevice.ReasonOtherUser) // retired, of alice: no theft by bob
	r.mustRemember(t, "alice", tok1)
	if err := r.svc.Revoke(context.Background(), "bob", r.mustList(t, "alice")[0].ID); !errors.Is(err, trusteddevice.ErrNotFound) {
		t.Fatalf("bob revoked alice's device: %v", err)
	}
}

func (r *replica) mustList(t testing.TB, user string) []trusteddevice.Device {
	t.Helper()
	l, err := r.svc.List(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestRevoke(t *testing.T) {
	ctx := context.Background()
	r := newService(t, nil)
	d1, tok1 := r.issue(t, "alice")
	_, tok2 := r.issue(t, "alice")
	_, tok3 := r.issue(t, "alice")
	if err := r.svc.Revoke(ctx, "alice", d1.ID); err != nil {
		t.Fatal(err)
	}
	if err := r.svc.Revoke(ctx, "alice", d1.ID); !errors.Is(err, trusteddevice.ErrNotFound) {
		t.Fatalf("second revoke: %v", err)
	}
	if err := r.svc.Revoke(ctx, "alice", "nope"); !errors.Is(err, trusteddevice.ErrInvalidArgument) {
		t.Fatalf("bad id: %v", err)
	}
	wantReason(t, r.check(t, "alice", tok1, ip), trusteddevice.ReasonUnknown)
	tok2 = r.mustRemember(t, "alice", tok2).Token
	if n, err := r.svc.RevokeAll(ctx, "alice"); err != nil || n != 2 {
		t.Fatalf("RevokeAll = %d, %v", n, err)
	}
	wantReason(t, r.check(t, "alice", tok2, ip), trusteddevice.ReasonUnknown)
	wantReason(t, r.check(t, "alice", tok3, ip), trusteddevice.ReasonUnknown)
}

func TestBadArguments(t *testing.T) {
	ctx := context.Background()
	r := newService(t, nil)
	for name, in := range map[string]trusteddevice.IssueInput{
		"user_id":      {},
		"device_label": {UserID: "alice", Label: strings.Repeat("é", trusteddevice.MaxLabelLen+1)},
		"client_ip":    {UserID: "alice", ClientIP: "not-an-ip"},
	} {
		if _, _, _, err := r.svc.Issue(ctx, in); !errors.Is(err, trusteddevice.ErrInvalidArgument) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	d, _, _, err := r.svc.Issue(ctx, trusteddevice.IssueInput{UserID: "alice", UserAgent: strings.Repeat("x", 5000) + "\x00"})
	if err != nil || len(d.UserAgent) != trusteddevice.MaxUserAgentLen {
		t.Fatalf("long user agent: %d bytes, %v", len(d.UserAgent), err)
	}
	if _, err := r.svc.Check(ctx, "", "x", ""); !errors.Is(err, trusteddevice.ErrInvalidArgument) {
		t.Fatalf("Check without user: %v", err)
	}
}

// Two replicas rotate the same token at once: exactly one rotation writes, the
// other request gets the same successor through the grace, one series survives
// and exactly one new token is valid.
func TestReplicasRaceToRotate(t *testing.T) {
	url := storagetest.URL(t)
	ring := storagetest.KeyRing(t)
	a := newReplica(t, url, ring, nil)
	b := newReplica(t, url, ring, nil)
	_, tok0 := a.issue(t, "alice")
	var ready sync.WaitGroup
	ready.Add(2)
	barrier := func() { ready.Done(); ready.Wait() } // both have read the row before either rotates
	a.store.beforeRotate, b.store.beforeRotate = barrier, barrier
	results := make([]trusteddevice.Result, 2)
	var wg sync.WaitGroup
	for i, r := range []*replica{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := r.svc.Check(context.Background(), "alice", tok0, ip)
			if err != nil {
				t.Error(err)
			}
			results[i] = res
		}()
	}
	wg.Wait()
	a.store.beforeRotate, b.store.beforeRotate = nil, nil
	if !results[0].Remembered || !results[1].Remembered || results[0].Token != results[1].Token || results[0].Grace == results[1].Grace {
		t.Fatalf("results %+v / %+v: want both remembered, one by rotation and one by grace, with one successor", results[0], results[1])
	}
	list := a.mustList(t, "alice")
	if len(list) != 1 || list[0].Rotations != 1 {
		t.Fatalf("series after the race: %+v", list)
	}
	b.mustRemember(t, "alice", results[0].Token)
}

// The comparisons of hashes and user ids go through crypto/subtle or
// hmac.Equal (storage.EqualMAC): no ==, != or bytes.Equal on them in the
// package's code.
func TestComparisonsAreConstantTime(t *testing.T) {
	fset := token.NewFileSet()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]*ast.File{}
	for _, e := range entries {
		if name := e.Name(); strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") {
			f, err := parser.ParseFile(fset, name, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			files[name] = f
		}
	}
	secretish := func(e ast.Expr) bool {
		switch x := e.(type) {
		case *ast.SelectorExpr:
			n := x.Sel.Name
			return n == "UserID" || strings.HasSuffix(n, "Hash")
		case *ast.Ident:
			return x.Name == "h" || x.Name == "userID" || x.Name == "canonical" || x.Name == "token"
		}
		return false
	}
	checked := 0
	for name, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.BinaryExpr:
				if (x.Op == token.EQL || x.Op == token.NEQ) && (secretish(x.X) || secretish(x.Y)) {
					t.Errorf("%s: %s compares a secret or user id with %s", name, fset.Position(x.Pos()), x.Op)
				}
			case *ast.CallExpr:
				if sel, ok := x.Fun.(*ast.SelectorExpr); ok {
					switch sel.Sel.Name {
					case "ConstantTimeCompare", "EqualMAC":
						checked++
					case "Equal", "Compare":
						if id, ok := sel.X.(*ast.Ident); ok && id.Name == "bytes" {
							t.Errorf("%s: %s uses bytes.%s", name, fset.Position(x.Pos()), sel.Sel.Name)
						}
					}
				}
			}
			return true
		})
	}
	if checked < 4 {
		t.Fatalf("found %d constant-time comparisons, want the hash and user checks", checked)
	}
}
