package policy_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twofactor/twofactor/internal/testfix"
	"github.com/twofactor/twofactor/providers/policy"
	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// directory syncs the groups the tests use: alice in eng, bob in sales, carol
// administers eng, erin is an admin who is also in eng, frank is a contractor in
// eng, root is an admin.
func directory(t testing.TB, s *storage.Store) {
	t.Helper()
	ctx := context.Background()
	for user, groups := range map[string][]string{
		"alice": {"eng"},
		"bob":   {"sales"},
		"erin":  {"eng", "admin"},
		"frank": {"eng", "contractors"},
		"root":  {"admin"},
		"olga":  {"it-ops"},
		"gina":  {"sales"},
	} {
		if err := s.SetUserGroups(ctx, user, groups); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetGroupAdmins(ctx, "eng", []string{"carol"}); err != nil {
		t.Fatal(err)
	}
	// gina administers a group she belongs to.
	if err := s.SetGroupAdmins(ctx, "sales", []string{"gina"}); err != nil {
		t.Fatal(err)
	}
}

// methods are the server's four built-in methods, as its factor registry lists them.
var methods = policy.Methods{
	{Name: "totp", Enrollable: true}, {Name: "webauthn", Enrollable: true},
	{Name: "backup_code"}, {Name: "admin_code", AdminIssued: true},
}

func newProvider(t testing.TB, s *storage.Store, c *testfix.Clock, opts policy.Options) *policy.Provider {
	t.Helper()
	opts.Clock = c.Now
	opts.Methods = methods
	p, err := policy.New(s, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var all = []string{"totp", "webauthn", "backup_code", "admin_code"}

func TestRequirements(t *testing.T) {
	grace := 72 * time.Hour
	cases := []struct {
		name     string
		policy   policy.Policy
		user     string
		enrolled []string
		want     policy.Requirements
	}{
		{"default, no factor", policy.Policy{}, "dave", nil,
			policy.Requirements{Allowed: all}},
		{"default, own factor is asked for", policy.Policy{}, "dave", []string{"totp"},
			policy.Requirements{Required: true, Available: []string{"totp"}, Allowed: all}},
		{"default, backup codes only are asked for", policy.Policy{}, "dave", []string{"backup_code"},
			policy.Requirements{Required: true, Available: []string{"backup_code"}, Allowed: all}},
		{"default, an admin code alone does not turn 2FA on", policy.Policy{}, "dave", []string{"admin_code"},
			policy.Requirements{Available: []string{"admin_code"}, Allowed: all}},
		{"enforced, no factor, no grace", policy.Policy{Enforced: true}, "dave", nil,
			policy.Requirements{Enforced: true, MustEnroll: true, Allowed: all}},
		{"enforced, no factor, in grace", policy.Policy{Enforced: true, GracePeriod: grace}, "dave", nil,
			policy.Requirements{Enforced: true, MustEnroll: true, InGrace: true, GraceUntil: t0.Add(grace), Allowed: all}},
		{"enforced, enrolled", policy.Policy{Enforced: true, GracePeriod: grace}, "dave", []string{"webauthn", "totp"},
			policy.Requirements{Enforced: true, Required: true, Available: []string{"totp", "webauthn"}, Allowed: all}},
		{"enforced, backup codes only: pass one, then enrol", policy.Policy{Enforced: true}, "dave", []string{"backup_code"},
			policy.Requirements{Enforced: true, Required: true, MustEnroll: true, Available: []string{"backup_code"}, Allowed: all}},
		{"enforced, admin code after a reset", policy.Policy{Enforced: true}, "dave", []string{"admin_code"},
			policy.Requirements{Enforced: true, Required: true, MustEnroll: true, Available: []string{"admin_code"}, Allowed: all}},
		{"enforced group member", policy.Policy{EnforcedGroups: []string{"eng"}}, "alice", nil,
			policy.Requirements{Enforced: true, MustEnroll: true, Allowed: all}},
		{"not in the enforced group", policy.Policy{EnforcedGroups: []string{"eng"}}, "bob", nil,
			policy.Requirements{Allowed: all}},
		{"excluded from enforcement for everyone", policy.Policy{Enforced: true, ExcludedGroups: []string{"contractors"}}, "frank", nil,
			policy.Requirements{Allowed: all}},
		{"exclusion wins over an enforced group", policy.Policy{EnforcedGroups: []string{"eng"}, ExcludedGroups: []string{"contractors"}}, "frank", nil,
			policy.Requirements{Allowed: all}},
		{"excluded but enrolled is still asked", policy.Policy{Enforced: true, ExcludedGroups: []string{"contractors"}}, "frank", []string{"totp"},
			policy.Requirements{Required: true, Available: []string{"totp"}, Allowed: all}},
		{"forbidden methods are not offered", policy.Policy{AllowedMethods: []string{"backup_code", "totp"}}, "alice", all,
			policy.Requirements{Required: true, Available: []string{"totp", "backup_code"}, Allowed: []string{"totp", "backup_code"}}},
		{"enforced, only a forbidden factor", policy.Policy{Enforced: true, AllowedMethods: []string{"webauthn"}}, "alice", []string{"totp"},
			policy.Requirements{Enforced: true, MustEnroll: true, Allowed: []string{"webauthn"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := storagetest.Open(t)
			directory(t, s)
			p := newProvider(t, s, testfix.NewClock(t0), policy.Options{})
			if _, err := p.Set(context.Background(), "root", tc.policy); err != nil {
				t.Fatal(err)
			}
			got, err := p.Requirements(context.Background(), tc.user, tc.enrolled)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Requirements(%s, %v)\n got %+v\nwant %+v", tc.user, tc.enrolled, got, tc.want)
			}
		})
	}
}

// Grace starts when the user is first found enforced, is recorded per user in the
// shared store (another replica sees the same), and does not restart.
func TestGraceStartsWhenFirstEnforced(t *testing.T) {
	url := storagetest.URL(t)
	s := storagetest.OpenURL(t, url)
	directory(t, s)
	c := testfix.NewClock(t0)
	a := newProvider(t, s, c, policy.Options{})
	b := newProvider(t, storagetest.OpenURL(t, url), c, policy.Options{})
	ctx := context.Background()
	grace := 72 * time.Hour
	if _, err := a.Set(ctx, "root", policy.Policy{EnforcedGroups: []string{"eng"}, GracePeriod: grace}); err != nil {
		t.Fatal(err)
	}
	if r, _ := a.Requirements(ctx, "dave", nil); r.Enforced || r.MustEnroll {
		t.Fatalf("dave outside eng: %+v", r)
	}
	c.Advance(10 * 24 * time.Hour)
	became := c.Now()
	s.SetUserGroups(ctx, "dave", []string{"eng"})
	r, _ := a.Requirements(ctx, "dave", nil)
	if !r.InGrace || !r.GraceUntil.Equal(became.Add(grace)) {
		t.Fatalf("dave just enforced: %+v, want grace until %v", r, became.Add(grace))
	}
	c.Advance(grace - time.Second)
	if r, _ := b.Requirements(ctx, "dave", nil); !r.InGrace || !r.GraceUntil.Equal(became.Add(grace)) {
		t.Fatalf("other replica, last second of grace: %+v", r)
	}
	c.Advance(time.Second)
	r, _ = b.Requirements(ctx, "dave", nil)
	if r.InGrace || !r.MustEnroll || !r.GraceUntil.Equal(became.Add(grace)) {
		t.Fatalf("grace over: %+v", r)
	}
	// Leaving and rejoining the enforced group does not restart the grace.
	s.SetUserGroups(ctx, "dave", nil)
	a.Requirements(ctx, "dave", nil)
	s.SetUserGroups(ctx, "dave", []string{"eng"})
	c.Advance(time.Hour)
	if r, _ := a.Requirements(ctx, "dave", nil); r.InGrace {
		t.Fatalf("grace restarted: %+v", r)
	}
	// Enrolling ends the must-enroll state.
	if r, _ := a.Requirements(ctx, "dave", []string{"totp"}); r.MustEnroll || r.InGrace || !r.Required || !r.GraceUntil.IsZero() {
		t.Fatalf("enrolled: %+v", r)
	}
}

func TestCanAct(t *testing.T) {
	s := storagetest.Open(t)
	directory(t, s)
	ctx := context.Background()
	def := newProvider(t, s, testfix.NewClock(t0), policy.Options{})
	custom := newProvider(t, s, testfix.NewClock(t0), policy.Options{AdminGroups: []string{"it-ops"}})
	cases := []struct {
		p           *policy.Provider
		actor, user string
		want        bool
	}{
		{def, "root", "alice", true},
		{def, "root", "bob", true},
		{def, "root", "erin", true},
		{def, "carol", "alice", true},  // group admin, member of her group
		{def, "carol", "frank", true},  // also a member of eng
		{def, "carol", "bob", false},   // outside her groups
		{def, "carol", "erin", false},  // an admin in her group: no escalation
		{def, "carol", "carol", false}, // not a member of eng herself
		{def, "gina", "bob", true},     // group admin of sales, a member too
		{def, "gina", "gina", false},   // but never on herself: no bypass of her own factor
		{def, "root", "root", true},    // a full admin is the root of trust
		{def, "alice", "bob", false},
		{def, "alice", "alice", false},
		{def, "", "alice", false},
		{def, "root", "", false},
		{def, "olga", "alice", false},
		{custom, "olga", "bob", true},
		{custom, "root", "bob", false}, // "admin" is not an admin group here
		{custom, "carol", "erin", true},
	}
	for _, tc := range cases {
		got, err := tc.p.CanAct(ctx, tc.actor, tc.user)
		if err != nil || got != tc.want {
			t.Errorf("CanAct(%q, %q) = %v, %v; want %v", tc.actor, tc.user, got, err, tc.want)
		}
	}
	if ok, _ := def.IsAdmin(ctx, "root"); !ok {
		t.Error("root is not an admin")
	}
	if ok, _ := def.IsAdmin(ctx, "carol"); ok {
		t.Error("a group admin is a full admin")
	}
}

func TestSetGetAcrossReplicas(t *testing.T) {
	url := storagetest.URL(t)
	c := testfix.NewClock(t0)
	def := policy.Policy{GracePeriod: time.Hour}
	a := newProvider(t, storagetest.OpenURL(t, url), c, policy.Options{Default: def})
	b := newProvider(t, storagetest.OpenURL(t, url), c, policy.Options{Default: def})
	ctx := context.Background()
	if got, _ := b.Get(ctx); !reflect.DeepEqual(got, def) {
		t.Fatalf("before any Set: %+v, want the default", got)
	}
	in := policy.Policy{
		AllowedMethods:                  []string{"webauthn", "backup_code", "totp", "totp"},
		EnforcedGroups:                  []string{"eng", "admin", "eng"},
		ExcludedGroups:                  []string{"contractors"},
		GracePeriod:                     7 * 24 * time.Hour,
		PasskeyCompleteLogin:            true,
		WebAuthnRequireUserVerification: true,
	}
	want := in
	want.AllowedMethods = []string{"totp", "webauthn", "backup_code"}
	want.EnforcedGroups = []string{"admin", "eng"}
	set, err := a.Set(ctx, "root", in)
	if err != nil || !reflect.DeepEqual(set, want) {
		t.Fatalf("Set = %+v, %v", set, err)
	}
	if got, err := b.Get(ctx); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Get on the other replica = %+v, %v\nwant %+v", got, err, want)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name  string
		p     policy.Policy
		field string // "" means valid
	}{
		{"zero", policy.Policy{}, ""},
		{"full", policy.Policy{AllowedMethods: all, Enforced: true, EnforcedGroups: []string{"a"}, GracePeriod: time.Hour}, ""},
		{"unknown method", policy.Policy{AllowedMethods: []string{"totp", "sms"}}, "allowed_methods"},
		{"recovery only", policy.Policy{AllowedMethods: []string{"backup_code", "admin_code"}}, "allowed_methods"},
		{"empty group", policy.Policy{EnforcedGroups: []string{""}}, "enforced_groups"},
		{"long group", policy.Policy{ExcludedGroups: []string{strings.Repeat("g", 256)}}, "excluded_groups"},
		{"negative grace", policy.Policy{GracePeriod: -time.Second}, "grace_period"},
		{"grace too long", policy.Policy{GracePeriod: policy.MaxGracePeriod + 1}, "grace_period"},
	}
	for _, tc := range cases {
		err := tc.p.Validate(methods)
		if tc.field == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if !errors.Is(err, policy.ErrInvalid) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: %v, want ErrInvalid naming %s", tc.name, err, tc.field)
		}
	}
	if _, err := policy.New(nil, policy.Options{Methods: methods, Default: policy.Policy{GracePeriod: -1}}); err == nil {
		t.Error("New accepted an invalid default")
	}
}

func BenchmarkRequirements(b *testing.B) {
	s := storagetest.Open(b)
	directory(b, s)
	p := newProvider(b, s, testfix.NewClock(t0), policy.Options{})
	ctx := context.Background()
	p.Set(ctx, "root", policy.Policy{EnforcedGroups: []string{"eng"}, GracePeriod: time.Hour})
	for b.Loop() {
		p.Requirements(ctx, "alice", []string{"totp"})
	}
}

// Issue 16, finding 8: a group admin acts on a fellow group admin only when they
// administer every group that admin administers; otherwise acting on them (an admin
// code, a factor reset) would be a step into a group they do not administer.
func TestCanActRefusesTheLateralStep(t *testing.T) {
	s := storagetest.Open(t)
	ctx := context.Background()
	for user, groups := range map[string][]string{
		"amy": {"a"}, "ben": {"a"}, "cleo": {"a"}, "dan": {"b"}, "eve": {"a", "b"},
	} {
		if err := s.SetUserGroups(ctx, user, groups); err != nil {
			t.Fatal(err)
		}
	}
	// amy administers A; ben administers A and B; cleo administers A; eve A and B.
	if err := s.SetGroupAdmins(ctx, "a", []string{"amy", "ben", "cleo", "eve"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetGroupAdmins(ctx, "b", []string{"ben", "eve"}); err != nil {
		t.Fatal(err)
	}
	p := newProvider(t, s, testfix.NewClock(t0), policy.Options{})
	for _, tc := range []struct {
		actor, user string
		want        bool
	}{
		{"amy", "ben", false}, // the lateral case: ben also administers B
		{"amy", "cleo", true}, // a fellow admin of exactly A
		{"amy", "eve", false}, // eve administers B too
		{"ben", "amy", true},  // ben administers everything amy does
		{"ben", "eve", true},  // and everything eve does
		{"ben", "dan", true},  // a plain member of B
		{"amy", "dan", false}, // not in A
		{"cleo", "amy", true}, // same groups both ways
		{"eve", "ben", true},  // same groups
	} {
		got, err := p.CanAct(ctx, tc.actor, tc.user)
		if err != nil || got != tc.want {
			t.Errorf("CanAct(%q, %q) = %v, %v; want %v", tc.actor, tc.user, got, err, tc.want)
		}
	}
}
