package storage_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

func hashes(n int, tag string) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = []byte(fmt.Sprintf("%s-%02d", tag, i))
	}
	return out
}

func TestBackupCodesReplaceAndUse(t *testing.T) {
	s := storagetest.Open(t)
	ctx := context.Background()
	set, err := s.ReplaceBackupCodes(ctx, "u", hashes(3, "a"), t0)
	if err != nil {
		t.Fatal(err)
	}
	codes, _ := s.ListBackupCodes(ctx, "u")
	if len(codes) != 3 {
		t.Fatalf("%d codes, want 3", len(codes))
	}
	use, err := s.UseBackupCode(ctx, "u", set.SetID, codes[0].ID, 1, t0)
	if err != nil || !use.Used || use.Remaining != 2 || use.LowRecorded {
		t.Fatalf("first use = %+v, %v", use, err)
	}
	if use, _ := s.UseBackupCode(ctx, "u", set.SetID, codes[0].ID, 1, t0); use.Used {
		t.Fatal("a used code was used again")
	}
	if use, _ := s.UseBackupCode(ctx, "other", set.SetID, codes[1].ID, 1, t0); use.Used {
		t.Fatal("another user used the code")
	}
	use, _ = s.UseBackupCode(ctx, "u", set.SetID, codes[1].ID, 1, t0.Add(time.Minute))
	if !use.Used || use.Remaining != 1 || !use.LowRecorded {
		t.Fatalf("next-to-last use = %+v, want remaining 1 and the low record", use)
	}
	got, _ := s.GetBackupCodeSet(ctx, "u")
	if got.RunningLowAt == nil || !got.RunningLowAt.Equal(t0.Add(time.Minute)) || got.Total != 3 {
		t.Fatalf("set after next-to-last use = %+v", got)
	}
	use, _ = s.UseBackupCode(ctx, "u", set.SetID, codes[2].ID, 1, t0)
	if !use.Used || use.Remaining != 0 || use.LowRecorded {
		t.Fatalf("last use = %+v, want remaining 0 and no second low record", use)
	}

	// Regeneration replaces the whole set: no old code works.
	set2, err := s.ReplaceBackupCodes(ctx, "u", hashes(2, "b"), t0.Add(time.Hour))
	if err != nil || set2.SetID == set.SetID {
		t.Fatalf("replace = %+v, %v", set2, err)
	}
	got, _ = s.GetBackupCodeSet(ctx, "u")
	if got.SetID != set2.SetID || got.Total != 2 || got.RunningLowAt != nil || !got.CreatedAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("set after replace = %+v", got)
	}
	for _, c := range codes {
		if use, _ := s.UseBackupCode(ctx, "u", set.SetID, c.ID, 1, t0); use.Used {
			t.Fatal("an old code worked after regeneration")
		}
	}
	if n, _ := s.CountUnusedBackupCodes(ctx, "u"); n != 2 {
		t.Fatalf("unused = %d, want 2", n)
	}
	if had, err := s.DeleteBackupCodes(ctx, "u"); !had || err != nil {
		t.Fatalf("DeleteBackupCodes = %v, %v", had, err)
	}
	if _, err := s.GetBackupCodeSet(ctx, "u"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("set after delete: %v", err)
	}
	if _, err := s.ReplaceBackupCodes(ctx, "u", nil, t0); err == nil {
		t.Fatal("an empty set was stored")
	}
}

// Two replicas and many goroutines race for one code: exactly one wins.
func TestUseBackupCodeExactlyOnceAcrossStores(t *testing.T) {
	url := storagetest.URL(t)
	a := storagetest.OpenURL(t, url)
	b := storagetest.OpenURL(t, url)
	ctx := context.Background()
	set, _ := a.ReplaceBackupCodes(ctx, "u", hashes(10, "a"), t0)
	codes, _ := a.ListBackupCodes(ctx, "u")
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func(s *storage.Store) {
			defer wg.Done()
			use, err := s.UseBackupCode(ctx, "u", set.SetID, codes[3].ID, 1, t0)
			if err != nil {
				t.Error(err)
			}
			if use.Used {
				wins.Add(1)
			}
		}([]*storage.Store{a, b}[i%2])
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d callers used the code, want exactly 1", wins.Load())
	}
}

// Uses of distinct codes racing on two replicas are counted exactly: each sees a
// different number of codes left, and exactly one records the user running out.
func TestBackupCodeUsesCountExactly(t *testing.T) {
	url := storagetest.URL(t)
	a := storagetest.OpenURL(t, url)
	b := storagetest.OpenURL(t, url)
	ctx := context.Background()
	set, _ := a.ReplaceBackupCodes(ctx, "u", hashes(10, "a"), t0)
	codes, _ := a.ListBackupCodes(ctx, "u")
	var mu sync.Mutex
	var remaining []int
	var lows atomic.Int32
	var wg sync.WaitGroup
	for i, c := range codes {
		wg.Add(1)
		go func(s *storage.Store, id string) {
			defer wg.Done()
			use, err := s.UseBackupCode(ctx, "u", set.SetID, id, 1, t0)
			if err != nil || !use.Used {
				t.Errorf("use = %+v, %v", use, err)
				return
			}
			if use.LowRecorded {
				lows.Add(1)
			}
			mu.Lock()
			remaining = append(remaining, use.Remaining)
			mu.Unlock()
		}([]*storage.Store{a, b}[i%2], c.ID)
	}
	wg.Wait()
	slices.Sort(remaining)
	if want := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}; !slices.Equal(remaining, want) {
		t.Fatalf("remaining counts %v, want %v", remaining, want)
	}
	if lows.Load() != 1 {
		t.Fatalf("%d uses recorded running low, want 1", lows.Load())
	}
}

func TestAdminCodeSingleUseExpiryAndReplace(t *testing.T) {
	url := storagetest.URL(t)
	a := storagetest.OpenURL(t, url)
	b := storagetest.OpenURL(t, url)
	ctx := context.Background()
	if _, err := a.GetAdminCode(ctx, "u"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("GetAdminCode before issue: %v", err)
	}
	put := func(hash string, expires time.Time) {
		t.Helper()
		if err := a.PutAdminCode(ctx, &storage.AdminCode{UserID: "u", Hash: []byte(hash), IssuedBy: "root", IssuedAt: t0, ExpiresAt: expires}); err != nil {
			t.Fatal(err)
		}
	}
	put("h1", t0.Add(time.Hour))
	if ok, _ := a.UseAdminCode(ctx, "u", []byte("other"), t0); ok {
		t.Fatal("a wrong hash consumed the code")
	}
	if ok, _ := a.UseAdminCode(ctx, "u", []byte("h1"), t0.Add(time.Hour)); ok {
		t.Fatal("an expired code was consumed")
	}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func(s *storage.Store) {
			defer wg.Done()
			if ok, err := s.UseAdminCode(ctx, "u", []byte("h1"), t0); err != nil {
				t.Error(err)
			} else if ok {
				wins.Add(1)
			}
		}([]*storage.Store{a, b}[i%2])
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d callers used the admin code, want exactly 1", wins.Load())
	}
	c, _ := a.GetAdminCode(ctx, "u")
	if c.UsedAt == nil || !c.UsedAt.Equal(t0) || c.IssuedBy != "root" {
		t.Fatalf("after use: %+v", c)
	}
	// A newer code replaces the older, used or not.
	put("h2", t0.Add(2*time.Hour))
	c, _ = b.GetAdminCode(ctx, "u")
	if c.UsedAt != nil || string(c.Hash) != "h2" {
		t.Fatalf("after reissue: %+v", c)
	}
	put("h3", t0.Add(2*time.Hour))
	if ok, _ := a.UseAdminCode(ctx, "u", []byte("h2"), t0); ok {
		t.Fatal("a replaced code was consumed")
	}
	if had, _ := a.DeleteAdminCode(ctx, "u"); !had {
		t.Fatal("DeleteAdminCode found nothing")
	}
}

func TestGroupsAndGroupAdmins(t *testing.T) {
	s := storagetest.Open(t)
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.SetUserGroups(ctx, "alice", []string{"sales", "eng", "sales", ""}))
	must(s.SetUserGroups(ctx, "bob", []string{"ops"}))
	must(s.SetGroupAdmins(ctx, "eng", []string{"carol"}))
	must(s.SetGroupAdmins(ctx, "ops", []string{"dave", "carol"}))
	if g, _ := s.ListUserGroups(ctx, "alice"); !slices.Equal(g, []string{"eng", "sales"}) {
		t.Fatalf("alice's groups = %v", g)
	}
	cases := []struct {
		actor, user string
		want        bool
	}{
		{"carol", "alice", true},
		{"carol", "bob", true},
		{"dave", "bob", true},
		{"dave", "alice", false},
		{"alice", "bob", false},
		{"nobody", "alice", false},
	}
	check := func() {
		t.Helper()
		for _, c := range cases {
			got, err := s.IsGroupAdminOf(ctx, c.actor, c.user)
			if err != nil || got != c.want {
				t.Errorf("IsGroupAdminOf(%s, %s) = %v, %v; want %v", c.actor, c.user, got, err, c.want)
			}
		}
	}
	check()
	// Setting replaces: alice leaves eng, carol stops administering ops.
	must(s.SetUserGroups(ctx, "alice", []string{"sales"}))
	must(s.SetGroupAdmins(ctx, "ops", []string{"dave"}))
	cases[0].want, cases[1].want = false, false
	check()
	if a, _ := s.ListGroupAdmins(ctx, "ops"); !slices.Equal(a, []string{"dave"}) {
		t.Fatalf("ops admins = %v", a)
	}
	must(s.SetUserGroups(ctx, "alice", nil))
	if g, _ := s.ListUserGroups(ctx, "alice"); len(g) != 0 {
		t.Fatalf("alice's groups after clearing = %v", g)
	}
}

func TestPolicyVersions(t *testing.T) {
	s := storagetest.Open(t)
	ctx := context.Background()
	if _, err := s.GetPolicy(ctx); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("GetPolicy before any: %v", err)
	}
	p, err := s.PutPolicy(ctx, []byte(`{"a":1}`), "root", t0)
	if err != nil || p.Version != 1 || string(p.Data) != `{"a":1}` {
		t.Fatalf("first put = %+v, %v", p, err)
	}
	p, err = s.PutPolicy(ctx, []byte(`{"a":2}`), "carol", t0.Add(time.Minute))
	if err != nil || p.Version != 2 || string(p.Data) != `{"a":2}` || p.UpdatedBy != "carol" || !p.UpdatedAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("second put = %+v, %v", p, err)
	}
}

func TestEnsureEnforcementStartKeepsTheFirst(t *testing.T) {
	url := storagetest.URL(t)
	a := storagetest.OpenURL(t, url)
	b := storagetest.OpenURL(t, url)
	ctx := context.Background()
	var wg sync.WaitGroup
	got := make([]time.Time, 8)
	for i := range got {
		wg.Add(1)
		go func(s *storage.Store) {
			defer wg.Done()
			var err error
			got[i], err = s.EnsureEnforcementStart(ctx, "u", t0.Add(time.Duration(i)*time.Second))
			if err != nil {
				t.Error(err)
			}
		}([]*storage.Store{a, b}[i%2])
	}
	wg.Wait()
	for _, g := range got[1:] {
		if !g.Equal(got[0]) {
			t.Fatalf("concurrent first calls disagree: %v", got)
		}
	}
	if later, _ := a.EnsureEnforcementStart(ctx, "u", t0.Add(time.Hour)); !later.Equal(got[0]) {
		t.Fatalf("a later call moved the start to %v", later)
	}
}

// seedUser gives a user rows in every table that holds user rows.
func seedUser(t *testing.T, s *storage.Store, user string) {
	t.Helper()
	ctx := context.Background()
	for _, err := range []error{
		s.CreateFactor(ctx, &storage.Factor{ID: user + "-f", UserID: user, Method: "totp", Name: "x", State: storage.FactorActive}),
		s.CreateChallenge(ctx, &storage.Challenge{ID: user + "-c", UserID: user, FactorID: user + "-f", Method: "totp", State: storage.ChallengeOpen, MaxAttempts: 3, ExpiresAt: t0}),
		func() error { _, err := s.ReplaceBackupCodes(ctx, user, hashes(2, user), t0); return err }(),
		s.PutAdminCode(ctx, &storage.AdminCode{UserID: user, Hash: []byte(user), IssuedBy: "root", IssuedAt: t0, ExpiresAt: t0}),
		s.SetUserGroups(ctx, user, []string{"g-" + user}),
		s.SetGroupAdmins(ctx, "g-admin-"+user, []string{user}),
		func() error { _, err := s.EnsureEnforcementStart(ctx, user, t0); return err }(),
		s.CreateAppPassword(ctx, &storage.AppPassword{ID: user + "-ap", UserID: user, Name: "dav", LookupHash: []byte(user + "-hash"), CreatedAt: t0}),
		func() error { _, err := s.EnsureWebAuthnUser(ctx, user, []byte(user+"-handle"), t0); return err }(),
		s.CreateOTPCode(ctx, &storage.OTPCode{ID: user + "-otp", UserID: user, FactorID: user + "-f", Channel: "email", Purpose: storage.OTPLogin,
			State: storage.OTPOpen, CodeHash: []byte(user), SealedCode: []byte(user), CodeKeyID: "k1", MaxAttempts: 5,
			Delivery: storage.DeliveryQueued, ExpiresAt: t0}, nil, t0),
		s.CreateOTPLinkToken(ctx, &storage.OTPLinkToken{TokenHash: user + "-token", UserID: user, FactorID: user + "-f", ExpiresAt: t0}),
		s.RememberFamiliarNetwork(ctx, user, "192.0.2.1", t0, time.Hour, time.Hour, 10),
		seedPush(ctx, s, user),
		func() error { _, _, err := s.BumpCredentialsEpoch(ctx, user, t0); return err }(),
		func() error {
			id := (user + "-td-000000000000000000000000000000000000")[:36]
			if _, err := s.CreateTrustedDevice(ctx, &storage.TrustedDevice{ID: id, UserID: user, TokenHash: []byte(user + "-td0"),
				Epoch: 1, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}, 10); err != nil {
				return err
			}
			_, err := s.RotateTrustedDevice(ctx, id, []byte(user+"-td0"), []byte(user+"-td1"), t0, "")
			return err
		}(),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// userColumns are the column names that name a user's rows.
var userColumns = []string{"user_id", "admin_id"}

func TestDeleteUserRemovesEveryUserRow(t *testing.T) {
	s := storagetest.Open(t)
	ctx := context.Background()
	seedUser(t, s, "alice")
	seedUser(t, s, "bob")
	removed, err := s.DeleteUser(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	db := s.DB(ctx)
	tables, err := db.Migrator().GetTables()
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, table := range tables {
		if table == "audit_events" {
			continue // kept on purpose: the trail outlives the account (AuditRecord)
		}
		for _, col := range userColumns {
			if !db.Migrator().HasColumn(table, col) {
				continue
			}
			checked++
			if _, ok := removed[table]; !ok {
				t.Errorf("table %s has a %s column but DeleteUser does not clear it (add it to userRows)", table, col)
			}
			var alice, bob int64
			db.Table(table).Where(col+" = ?", "alice").Count(&alice)
			db.Table(table).Where(col+" = ?", "bob").Count(&bob)
			if alice != 0 {
				t.Errorf("table %s still has %d rows of alice", table, alice)
			}
			if bob == 0 {
				t.Errorf("table %s lost bob's rows (or the test does not seed it: extend seedUser)", table)
			}
		}
	}
	if checked < 8 {
		t.Fatalf("checked %d tables with user rows, want at least 8", checked)
	}
	if removed["factors"] != 1 || removed["backup_codes"] != 2 {
		t.Fatalf("removed = %v", removed)
	}
}

func TestResetFactors(t *testing.T) {
	s := storagetest.Open(t)
	ctx := context.Background()
	seedUser(t, s, "alice")
	s.CreateFactor(ctx, &storage.Factor{ID: "alice-f2", UserID: "alice", Method: "webauthn", Name: "key", State: storage.FactorActive})
	if _, err := s.ResetFactors(ctx, "alice", "nope"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("reset of an unknown factor: %v", err)
	}
	if n, err := s.ResetFactors(ctx, "alice", "alice-f2"); n != 1 || err != nil {
		t.Fatalf("reset one = %d, %v", n, err)
	}
	if n, err := s.ResetFactors(ctx, "alice", ""); n != 2 || err != nil {
		t.Fatalf("reset all = %d, %v; want 2 (a factor and the backup codes)", n, err)
	}
	if f, _ := s.ListFactors(ctx, "alice", "", ""); len(f) != 0 {
		t.Fatalf("factors left: %d", len(f))
	}
	if _, err := s.GetBackupCodeSet(ctx, "alice"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("backup codes left: %v", err)
	}
	if _, err := s.GetChallenge(ctx, "alice-c"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("open challenge left: %v", err)
	}
}

// A replayed code leaves the set as it was, also inside a caller's transaction
// (VerifyChallenge runs the use in one), where the rollback of a nested InTx does
// not happen: last_used_at stays the time of the last accepted code.
func TestReplayedBackupCodeInTxLeavesSetUntouched(t *testing.T) {
	s := storagetest.Open(t)
	ctx := context.Background()
	set, err := s.ReplaceBackupCodes(ctx, "u", hashes(3, "a"), t0)
	if err != nil {
		t.Fatal(err)
	}
	codes, _ := s.ListBackupCodes(ctx, "u")
	if use, err := s.UseBackupCode(ctx, "u", set.SetID, codes[0].ID, 1, t0); err != nil || !use.Used {
		t.Fatalf("first use = %+v, %v", use, err)
	}
	err = s.InTx(ctx, func(ctx context.Context) error {
		use, err := s.UseBackupCode(ctx, "u", set.SetID, codes[0].ID, 1, t0.Add(time.Hour))
		if use.Used {
			t.Error("a used code was used again")
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.GetBackupCodeSet(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	if got.LastUsedAt == nil || !got.LastUsedAt.Equal(t0) {
		t.Fatalf("last_used_at after a replay = %v, want %v (the accepted use)", got.LastUsedAt, t0)
	}
}
