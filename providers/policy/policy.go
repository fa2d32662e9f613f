// Package policy decides, for the whole service, which second factors are allowed
// and who must use one, and who may administer whom.
//
// Security properties:
//
//   - 2FA can be enforced for everyone or for chosen groups, with excluded groups
//     that are never forced (exclusion wins). An enforced user without a real factor
//     (TOTP or WebAuthn) must enrol; a grace period, counted from when the user was
//     first found enforced and recorded per user in the shared store (so every
//     replica agrees and it does not restart), lets them log in meanwhile
//     (OWASP ASVS 4.0 V2.1 / NIST SP 800-63B §4.2.1 require MFA at AAL2; the grace
//     state is the enrolment window, kept explicit so the backend can show it).
//   - A user who enrolled a factor is asked for it whether or not 2FA is enforced:
//     a factor, once set up, is never silently skipped (SP 800-63B §4.2.1).
//   - Methods the policy forbids are never offered, even when enrolled.
//   - Who may act on a user is decided here from memberships the backend syncs:
//     members of an admin group act on anyone; a group admin only on members of the
//     groups they administer, and never on a member of an admin group (no escalation
//     from group admin to admin; ASVS V4.1.3 least privilege, V4.2.1 IDOR), nor on a
//     fellow group admin who administers a group the actor does not: acting on them
//     (an admin code, a factor reset) would be a lateral step into that group
//     (issue 16, finding 8; ASVS V4.1.3).
//
// The package speaks in Go types and strings; it knows nothing of gRPC or the wire.
package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twofactor/twofactor/storage"
)

// Method is one method the service offers, as the server's factor registry
// describes it (the policy knows no method by name).
type Method struct {
	Name string
	// Enrollable: a user sets it up as a factor (the others are recovery).
	Enrollable bool
	// AdminIssued: an admin issues it to a locked-out user; having one does not
	// make a second factor required.
	AdminIssued bool
}

// Methods is the list of methods, in the order answers list them.
type Methods []Method

// Names lists the methods' names, in order.
func (ms Methods) Names() []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Name
	}
	return out
}

func (ms Methods) find(name string) (Method, bool) {
	for _, m := range ms {
		if m.Name == name {
			return m, true
		}
	}
	return Method{}, false
}

// MaxGracePeriod bounds Policy.GracePeriod.
const MaxGracePeriod = 365 * 24 * time.Hour

// DefaultAdminGroup is the group whose members administer everyone, unless Options
// name others.
const DefaultAdminGroup = "admin"

// ErrInvalid wraps every validation error of a Policy.
var ErrInvalid = errors.New("invalid policy")

// Policy is the service-wide policy (the Go form of twofactor.v1.Policy).
type Policy struct {
	// AllowedMethods are the methods allowed; all when empty.
	AllowedMethods []string
	// Enforced enforces 2FA for everyone (except ExcludedGroups).
	Enforced bool
	// EnforcedGroups enforce 2FA for their members when Enforced is false.
	EnforcedGroups []string
	// ExcludedGroups are never forced (their members may still use 2FA).
	ExcludedGroups []string
	// GracePeriod is how long an enforced user without a factor may still log in.
	GracePeriod time.Duration
	// PasskeyCompleteLogin: a passkey counts as a complete login.
	PasskeyCompleteLogin bool
	// WebAuthnRequireUserVerification: WebAuthn logins must verify the user.
	WebAuthnRequireUserVerification bool
	// GroupRules forbid methods to the members of groups (groupmethods.go).
	GroupRules []GroupMethodRule
	// RememberDevice allows "remember this device" for everyone, or
	// RememberDeviceGroups for their members only; RememberDeviceDeniedGroups
	// never (denial wins). Off by default.
	RememberDevice             bool
	RememberDeviceGroups       []string
	RememberDeviceDeniedGroups []string
	// RememberDeviceMaxAge is a remembered device's absolute lifetime
	// (DefaultRememberDeviceMaxAge when zero, at most MaxRememberDeviceMaxAge).
	RememberDeviceMaxAge time.Duration
}

// Bounds of Policy.RememberDeviceMaxAge: 30 days by default, at most 400 (the
// longest lifetime browsers give a cookie).
const (
	DefaultRememberDeviceMaxAge = 30 * 24 * time.Hour
	MaxRememberDeviceMaxAge     = 400 * 24 * time.Hour
)

// Validate checks p against the methods ms; errors wrap ErrInvalid and name the field.
func (p Policy) Validate(ms Methods) error {
	for _, m := range p.AllowedMethods {
		if _, ok := ms.find(m); !ok {
			return fmt.Errorf("%w: allowed_methods: unknown method %q", ErrInvalid, m)
		}
	}
	if len(p.AllowedMethods) > 0 && !slices.ContainsFunc(p.AllowedMethods, func(m string) bool { f, _ := ms.find(m); return f.Enrollable }) {
		var names []string
		for _, m := range ms {
			if m.Enrollable {
				names = append(names, m.Name)
			}
		}
		return fmt.Errorf("%w: allowed_methods: allow one of %s, or no user could set up a factor", ErrInvalid, strings.Join(names, ", "))
	}
	for field, groups := range map[string][]string{"enforced_groups": p.EnforcedGroups, "excluded_groups": p.ExcludedGroups,
		"remember_device_groups": p.RememberDeviceGroups, "remember_device_denied_groups": p.RememberDeviceDeniedGroups} {
		for _, g := range groups {
			if g == "" || len(g) > 255 {
				return fmt.Errorf("%w: %s: group names must be 1 to 255 bytes", ErrInvalid, field)
			}
		}
	}
	if err := ValidateGroupMethodRules(p.GroupRules, func(m string) bool { _, ok := ms.find(m); return ok }); err != nil {
		return err
	}
	if p.GracePeriod < 0 || p.GracePeriod > MaxGracePeriod {
		return fmt.Errorf("%w: grace_period: %v is not within 0..%v", ErrInvalid, p.GracePeriod, MaxGracePeriod)
	}
	if a := p.RememberDeviceMaxAge; a != 0 && (a < time.Hour || a > MaxRememberDeviceMaxAge) {
		return fmt.Errorf("%w: remember_device_max_age: %v is not within 1h..%v", ErrInvalid, a, MaxRememberDeviceMaxAge)
	}
	return nil
}

// normalized returns p with methods in canonical order and groups sorted, without
// duplicates.
func (p Policy) normalized(ms Methods) Policy {
	var allowed []string
	for _, m := range ms {
		if slices.Contains(p.AllowedMethods, m.Name) {
			allowed = append(allowed, m.Name)
		}
	}
	p.AllowedMethods = allowed
	p.EnforcedGroups = sortedSet(p.EnforcedGroups)
	p.ExcludedGroups = sortedSet(p.ExcludedGroups)
	p.RememberDeviceGroups = sortedSet(p.RememberDeviceGroups)
	p.RememberDeviceDeniedGroups = sortedSet(p.RememberDeviceDeniedGroups)
	return p
}

// Allowed lists the methods of ms that p allows, in canonical order.
func (p Policy) Allowed(ms Methods) []string {
	if len(p.AllowedMethods) == 0 {
		return ms.Names()
	}
	return p.normalized(ms).AllowedMethods
}

// Allows tells whether p allows method (one of ms).
func (p Policy) Allows(ms Methods, method string) bool {
	return slices.Contains(p.Allowed(ms), method)
}

// stored is the JSON form in the policy row.
type stored struct {
	AllowedMethods                  []string          `json:"allowed_methods,omitempty"`
	Enforced                        bool              `json:"enforced"`
	EnforcedGroups                  []string          `json:"enforced_groups,omitempty"`
	ExcludedGroups                  []string          `json:"excluded_groups,omitempty"`
	GracePeriod                     string            `json:"grace_period,omitempty"`
	PasskeyCompleteLogin            bool              `json:"passkey_complete_login"`
	WebAuthnRequireUserVerification bool              `json:"webauthn_require_user_verification"`
	RememberDevice                  bool              `json:"remember_device,omitempty"`
	RememberDeviceGroups            []string          `json:"remember_device_groups,omitempty"`
	RememberDeviceDeniedGroups      []string          `json:"remember_device_denied_groups,omitempty"`
	RememberDeviceMaxAge            string            `json:"remember_device_max_age,omitempty"`
	GroupRules                      []storedGroupRule `json:"group_rules,omitempty"`
}

func encode(p Policy) ([]byte, error) {
	s := stored{
		AllowedMethods: p.AllowedMethods, Enforced: p.Enforced,
		EnforcedGroups: p.EnforcedGroups, ExcludedGroups: p.ExcludedGroups,
		PasskeyCompleteLogin: p.PasskeyCompleteLogin, WebAuthnRequireUserVerification: p.WebAuthnRequireUserVerification,
	}
	if p.GracePeriod > 0 {
		s.GracePeriod = p.GracePeriod.String()
	}
	s.GroupRules = encodeGroupRules(p.GroupRules)
	s.RememberDevice, s.RememberDeviceGroups, s.RememberDeviceDeniedGroups = p.RememberDevice, p.RememberDeviceGroups, p.RememberDeviceDeniedGroups
	if p.RememberDeviceMaxAge > 0 {
		s.RememberDeviceMaxAge = p.RememberDeviceMaxAge.String()
	}
	return json.Marshal(s)
}

func decode(data []byte) (Policy, error) {
	var s stored
	if err := json.Unmarshal(data, &s); err != nil {
		return Policy{}, fmt.Errorf("stored policy: %w", err)
	}
	p := Policy{
		AllowedMethods: s.AllowedMethods, Enforced: s.Enforced,
		EnforcedGroups: s.EnforcedGroups, ExcludedGroups: s.ExcludedGroups,
		PasskeyCompleteLogin: s.PasskeyCompleteLogin, WebAuthnRequireUserVerification: s.WebAuthnRequireUserVerification,
	}
	if s.GracePeriod != "" {
		d, err := time.ParseDuration(s.GracePeriod)
		if err != nil {
			return Policy{}, fmt.Errorf("stored policy: grace_period: %w", err)
		}
		p.GracePeriod = d
	}
	p.GroupRules = decodeGroupRules(s.GroupRules)
	p.RememberDevice, p.RememberDeviceGroups, p.RememberDeviceDeniedGroups = s.RememberDevice, s.RememberDeviceGroups, s.RememberDeviceDeniedGroups
	if s.RememberDeviceMaxAge != "" {
		d, err := time.ParseDuration(s.RememberDeviceMaxAge)
		if err != nil {
			return Policy{}, fmt.Errorf("stored policy: remember_device_max_age: %w", err)
		}
		p.RememberDeviceMaxAge = d
	}
	return p, nil
}

// Store is the part of storage.Store the policy uses.
type Store interface {
	GetPolicy(ctx context.Context) (*storage.PolicyRecord, error)
	PutPolicy(ctx context.Context, data []byte, updatedBy string, now time.Time) (*storage.PolicyRecord, error)
	EnsureEnforcementStart(ctx context.Context, userID string, now time.Time) (time.Time, error)
	ListUserGroups(ctx context.Context, userID string) ([]string, error)
	IsGroupAdminOf(ctx context.Context, actorID, userID string) (bool, error)
	ListAdministeredGroups(ctx context.Context, adminID string) ([]string, error)
}

// Options tune a Provider; zero values take the defaults.
type Options struct {
	// Methods are the methods the service offers, in the order answers list them
	// (required: the server's factor registry lists them).
	Methods Methods
	// AdminGroups are the groups whose members may act on anyone
	// ([DefaultAdminGroup]).
	AdminGroups []string
	// Default is the policy in force until one is set (nothing enforced, every
	// method allowed, when zero).
	Default Policy
	// Clock tells the time (time.Now).
	Clock func() time.Time
	// CacheTTL, when positive, keeps the policy read from the store for that
	// long, saving a read on every challenge. A policy set through this Provider
	// is in force here at once; one set on another replica reaches this one
	// within CacheTTL. Zero reads the store every time.
	CacheTTL time.Duration
}

// Provider answers policy questions from the shared store; it keeps no state
// beyond the optional cache of the policy itself (Options.CacheTTL).
type Provider struct {
	methods     Methods
	store       Store
	adminGroups []string
	def         Policy
	now         func() time.Time

	cacheTTL time.Duration
	mu       sync.Mutex
	cached   Policy
	cachedAt time.Time
	hasCache bool
	gen      uint64 // counts Sets, so that a read begun before one is not cached after it
}

// New returns a Provider. It fails when opts.Default is not a valid policy.
func New(store Store, opts Options) (*Provider, error) {
	if len(opts.Methods) == 0 {
		return nil, errors.New("policy: Options.Methods is required")
	}
	if err := opts.Default.Validate(opts.Methods); err != nil {
		return nil, fmt.Errorf("default policy: %w", err)
	}
	p := &Provider{methods: slices.Clone(opts.Methods), store: store, adminGroups: sortedSet(opts.AdminGroups),
		def: opts.Default.normalized(opts.Methods), now: opts.Clock, cacheTTL: opts.CacheTTL}
	if len(p.adminGroups) == 0 {
		p.adminGroups = []string{DefaultAdminGroup}
	}
	if p.now == nil {
		p.now = time.Now
	}
	return p, nil
}

// Methods are the methods the provider knows, in order.
func (p *Provider) Methods() Methods { return slices.Clone(p.methods) }

// Allows tells whether the policy in force allows method.
func (p *Provider) Allows(ctx context.Context, method string) (bool, error) {
	pol, err := p.Get(ctx)
	if err != nil {
		return false, err
	}
	return pol.Allows(p.methods, method), nil
}

// AllowsFor tells whether the policy allows method to userID: allowed at all,
// and forbidden to none of the user's groups.
func (p *Provider) AllowsFor(ctx context.Context, userID, method string) (bool, error) {
	pol, err := p.Get(ctx)
	if err != nil || !pol.Allows(p.methods, method) {
		return false, err
	}
	if len(pol.GroupRules) == 0 || userID == "" {
		return true, nil
	}
	groups, err := p.store.ListUserGroups(ctx, userID)
	if err != nil {
		return false, fmt.Errorf("policy: groups: %w", err)
	}
	return AllowedForGroups(pol.GroupRules, groups, method), nil
}

// Get returns the policy in force.
func (p *Provider) Get(ctx context.Context) (Policy, error) {
	var gen uint64
	if p.cacheTTL > 0 {
		p.mu.Lock()
		if p.hasCache && p.now().Sub(p.cachedAt) < p.cacheTTL {
			pol := p.cached.clone()
			p.mu.Unlock()
			return pol, nil
		}
		gen = p.gen
		p.mu.Unlock()
	}
	pol, err := p.load(ctx)
	if err != nil || p.cacheTTL <= 0 {
		return pol, err
	}
	p.remember(pol, gen)
	return pol.clone(), nil
}

func (p *Provider) load(ctx context.Context) (Policy, error) {
	rec, err := p.store.GetPolicy(ctx)
	if errors.Is(err, storage.ErrNotFound) {
		return p.def, nil
	}
	if err != nil {
		return Policy{}, fmt.Errorf("policy: load: %w", err)
	}
	return decode(rec.Data)
}

// remember caches pol unless a Set happened since generation gen was read.
func (p *Provider) remember(pol Policy, gen uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gen != gen {
		return
	}
	p.cached, p.cachedAt, p.hasCache = pol.clone(), p.now(), true
}

// clone copies the slices, so that a caller cannot change a cached policy.
func (pol Policy) clone() Policy {
	pol.AllowedMethods = slices.Clone(pol.AllowedMethods)
	pol.EnforcedGroups = slices.Clone(pol.EnforcedGroups)
	pol.ExcludedGroups = slices.Clone(pol.ExcludedGroups)
	pol.GroupRules = cloneGroupRules(pol.GroupRules)
	pol.RememberDeviceGroups = slices.Clone(pol.RememberDeviceGroups)
	pol.RememberDeviceDeniedGroups = slices.Clone(pol.RememberDeviceDeniedGroups)
	return pol
}

// Set validates pol and puts it in force on every replica; it returns the policy as
// stored (methods in canonical order, groups sorted and without duplicates).
// Errors from validation wrap ErrInvalid.
func (p *Provider) Set(ctx context.Context, actorID string, pol Policy) (Policy, error) {
	if err := pol.Validate(p.methods); err != nil {
		return Policy{}, err
	}
	pol = pol.normalized(p.methods)
	data, err := encode(pol)
	if err != nil {
		return Policy{}, err
	}
	p.mu.Lock()
	p.gen++
	p.hasCache = false
	p.mu.Unlock()
	if _, err := p.store.PutPolicy(ctx, data, actorID, p.now().UTC()); err != nil {
		return Policy{}, fmt.Errorf("policy: store: %w", err)
	}
	if p.cacheTTL > 0 {
		p.mu.Lock()
		p.gen++
		p.cached, p.cachedAt, p.hasCache = pol.clone(), p.now(), true
		p.mu.Unlock()
	}
	return pol, nil
}

// Requirements is what a login of one user needs.
type Requirements struct {
	// Enforced: policy enforces 2FA for the user.
	Enforced bool
	// Required: a second factor must be passed to complete the login. True when
	// the user has a usable factor and either 2FA is enforced or the user set up
	// a factor of their own (an admin code alone does not turn 2FA on).
	Required bool
	// Available are the methods the user can use now: enrolled and allowed.
	Available []string
	// MustEnroll: 2FA is enforced but the user has no usable TOTP or WebAuthn
	// factor; they must set one up (after passing a recovery code, if Required).
	MustEnroll bool
	// InGrace: MustEnroll, but the user may still log in without until GraceUntil.
	InGrace bool
	// GraceUntil is the end of the grace period when MustEnroll and the policy
	// has one (zero otherwise).
	GraceUntil time.Time
	// Allowed are the methods policy allows at all (to offer for enrolment).
	Allowed []string
}

// Requirements tells what a login of userID needs, given the methods the user can
// use now (enrolledMethods: active factors' methods, "backup_code" with unused
// codes, "admin_code" with a usable admin code). The first time it finds the user
// enforced, it records the start of their grace period.
func (p *Provider) Requirements(ctx context.Context, userID string, enrolledMethods []string) (Requirements, error) {
	pol, err := p.Get(ctx)
	if err != nil {
		return Requirements{}, err
	}
	groups, err := p.store.ListUserGroups(ctx, userID)
	if err != nil {
		return Requirements{}, fmt.Errorf("policy: groups: %w", err)
	}
	forbidden := ForbiddenByGroups(pol.GroupRules, groups)
	r := Requirements{Allowed: slices.DeleteFunc(pol.Allowed(p.methods), func(m string) bool { return slices.Contains(forbidden, m) })}
	r.Enforced = (pol.Enforced || intersects(groups, pol.EnforcedGroups)) && !intersects(groups, pol.ExcludedGroups)
	for _, m := range r.Allowed {
		if slices.Contains(enrolledMethods, m) {
			r.Available = append(r.Available, m)
		}
	}
	ownFactor := slices.ContainsFunc(r.Available, func(m string) bool { f, _ := p.methods.find(m); return !f.AdminIssued })
	r.Required = len(r.Available) > 0 && (r.Enforced || ownFactor)
	if !r.Enforced {
		return r, nil
	}
	r.MustEnroll = !slices.ContainsFunc(r.Available, func(m string) bool { f, _ := p.methods.find(m); return f.Enrollable })
	now := p.now().UTC()
	start, err := p.store.EnsureEnforcementStart(ctx, userID, now)
	if err != nil {
		return Requirements{}, fmt.Errorf("policy: enforcement start: %w", err)
	}
	if r.MustEnroll && pol.GracePeriod > 0 {
		r.GraceUntil = start.UTC().Add(pol.GracePeriod)
		r.InGrace = now.Before(r.GraceUntil)
	}
	return r, nil
}

// RememberDevice tells whether the policy in force lets userID's devices be
// remembered, and for how long (absolute).
func (p *Provider) RememberDevice(ctx context.Context, userID string) (bool, time.Duration, error) {
	pol, err := p.Get(ctx)
	if err != nil {
		return false, 0, err
	}
	maxAge := pol.RememberDeviceMaxAge
	if maxAge == 0 {
		maxAge = DefaultRememberDeviceMaxAge
	}
	if !pol.RememberDevice && len(pol.RememberDeviceGroups) == 0 {
		return false, maxAge, nil
	}
	groups, err := p.store.ListUserGroups(ctx, userID)
	if err != nil {
		return false, 0, fmt.Errorf("policy: groups: %w", err)
	}
	allowed := (pol.RememberDevice || intersects(groups, pol.RememberDeviceGroups)) && !intersects(groups, pol.RememberDeviceDeniedGroups)
	return allowed, maxAge, nil
}

// IsAdmin tells whether actorID is a member of an admin group (may act on anyone,
// and change the policy).
func (p *Provider) IsAdmin(ctx context.Context, actorID string) (bool, error) {
	if actorID == "" {
		return false, nil
	}
	groups, err := p.store.ListUserGroups(ctx, actorID)
	if err != nil {
		return false, fmt.Errorf("policy: groups of actor: %w", err)
	}
	return intersects(groups, p.adminGroups), nil
}

// CanAct tells whether actorID may act on userID (issue an admin code, reset
// factors, delete): yes for members of an admin group; for a group admin, yes for
// members of a group they administer unless that member is an admin, administers a
// group the actor does not, or is the group admin themselves (an admin code issued to oneself would bypass one's own second
// factor; delegated administration is for helping others).
func (p *Provider) CanAct(ctx context.Context, actorID, userID string) (bool, error) {
	if actorID == "" || userID == "" {
		return false, nil
	}
	if admin, err := p.IsAdmin(ctx, actorID); err != nil || admin {
		return admin, err
	}
	if actorID == userID {
		return false, nil
	}
	ok, err := p.store.IsGroupAdminOf(ctx, actorID, userID)
	if err != nil || !ok {
		return false, err
	}
	targetAdmin, err := p.IsAdmin(ctx, userID)
	if err != nil || targetAdmin {
		return false, err
	}
	return p.administersAllOf(ctx, actorID, userID)
}

// administersAllOf tells whether actorID administers every group userID administers
// (true when userID administers none).
func (p *Provider) administersAllOf(ctx context.Context, actorID, userID string) (bool, error) {
	theirs, err := p.store.ListAdministeredGroups(ctx, userID)
	if err != nil || len(theirs) == 0 {
		return err == nil, err
	}
	mine, err := p.store.ListAdministeredGroups(ctx, actorID)
	if err != nil {
		return false, err
	}
	for _, g := range theirs {
		if !slices.Contains(mine, g) {
			return false, nil
		}
	}
	return true, nil
}

func intersects(a, b []string) bool {
	return slices.ContainsFunc(a, func(x string) bool { return slices.Contains(b, x) })
}

func sortedSet(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}
