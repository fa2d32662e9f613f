package policy

import (
	"fmt"
	"slices"
)

// Bounds of group method rules.
const (
	MaxGroupRules          = 256
	MaxForbiddenPerGroup   = 32
	maxGroupRuleNameLength = 255
)

// GroupMethodRule forbids methods to the members of one group: for instance
// email codes (not an out-of-band authenticator, NIST SP 800-63B-4 §3.1.3.1)
// or SMS codes (a restricted authenticator, §3.1.3.3) to the admins, while
// other groups keep them. A method forbidden to any of a user's groups is
// forbidden to the user (the stricter rule wins, as exclusion wins for
// enforcement); the service-wide AllowedMethods apply as well.
type GroupMethodRule struct {
	Group     string
	Forbidden []string
}

// ValidateGroupMethodRules checks rules: bounded, named groups, known methods
// (known tells which names exist), one rule per group. Errors wrap ErrInvalid
// and start with the field's name.
func ValidateGroupMethodRules(rules []GroupMethodRule, known func(method string) bool) error {
	if len(rules) > MaxGroupRules {
		return fmt.Errorf("%w: group_rules: at most %d rules", ErrInvalid, MaxGroupRules)
	}
	seen := map[string]bool{}
	for _, r := range rules {
		if r.Group == "" || len(r.Group) > maxGroupRuleNameLength {
			return fmt.Errorf("%w: group_rules: group names must be 1 to %d bytes", ErrInvalid, maxGroupRuleNameLength)
		}
		if seen[r.Group] {
			return fmt.Errorf("%w: group_rules: group %q has two rules", ErrInvalid, r.Group)
		}
		seen[r.Group] = true
		if len(r.Forbidden) == 0 || len(r.Forbidden) > MaxForbiddenPerGroup {
			return fmt.Errorf("%w: group_rules: group %q must forbid 1 to %d methods", ErrInvalid, r.Group, MaxForbiddenPerGroup)
		}
		for _, m := range r.Forbidden {
			if !known(m) {
				return fmt.Errorf("%w: group_rules: group %q: unknown method %q", ErrInvalid, r.Group, m)
			}
		}
	}
	return nil
}

// ForbiddenByGroups lists the methods rules forbid to a member of groups,
// sorted and without duplicates.
func ForbiddenByGroups(rules []GroupMethodRule, groups []string) []string {
	var out []string
	for _, r := range rules {
		if slices.Contains(groups, r.Group) {
			out = append(out, r.Forbidden...)
		}
	}
	return sortedSet(out)
}

// AllowedForGroups tells whether method is allowed to a member of groups: not
// forbidden by any of their groups' rules.
func AllowedForGroups(rules []GroupMethodRule, groups []string, method string) bool {
	return !slices.Contains(ForbiddenByGroups(rules, groups), method)
}

// storedGroupRule is a rule's JSON form in the policy row.
type storedGroupRule struct {
	Group     string   `json:"group"`
	Forbidden []string `json:"forbidden"`
}

func encodeGroupRules(rules []GroupMethodRule) []storedGroupRule {
	var out []storedGroupRule
	for _, r := range rules {
		out = append(out, storedGroupRule{Group: r.Group, Forbidden: r.Forbidden})
	}
	return out
}

func decodeGroupRules(rules []storedGroupRule) []GroupMethodRule {
	var out []GroupMethodRule
	for _, r := range rules {
		out = append(out, GroupMethodRule{Group: r.Group, Forbidden: r.Forbidden})
	}
	return out
}

func cloneGroupRules(rules []GroupMethodRule) []GroupMethodRule {
	if rules == nil {
		return nil
	}
	out := make([]GroupMethodRule, len(rules))
	for i, r := range rules {
		out[i] = GroupMethodRule{Group: r.Group, Forbidden: slices.Clone(r.Forbidden)}
	}
	return out
}
