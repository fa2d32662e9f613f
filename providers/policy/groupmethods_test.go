package policy

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestGroupMethodRules(t *testing.T) {
	known := func(m string) bool {
		return slices.Contains([]string{"totp", "webauthn", "email", "sms", "telegram", "signal"}, m)
	}
	rules := []GroupMethodRule{
		{Group: "admin", Forbidden: []string{"email", "sms"}},
		{Group: "finance", Forbidden: []string{"sms"}},
	}
	if err := ValidateGroupMethodRules(rules, known); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		groups []string
		want   []string
	}{
		{nil, nil},
		{[]string{"staff"}, nil},
		{[]string{"finance"}, []string{"sms"}},
		{[]string{"finance", "admin"}, []string{"email", "sms"}},
	}
	for _, tc := range tests {
		if got := ForbiddenByGroups(rules, tc.groups); !slices.Equal(got, tc.want) {
			t.Errorf("groups %v: forbidden %v; want %v", tc.groups, got, tc.want)
		}
	}
	if AllowedForGroups(rules, []string{"admin"}, "email") || !AllowedForGroups(rules, []string{"admin"}, "telegram") ||
		!AllowedForGroups(rules, []string{"staff"}, "sms") {
		t.Error("AllowedForGroups")
	}
	bad := [][]GroupMethodRule{
		{{Group: "", Forbidden: []string{"sms"}}},
		{{Group: strings.Repeat("g", 256), Forbidden: []string{"sms"}}},
		{{Group: "a", Forbidden: []string{"fax"}}},
		{{Group: "a"}},
		{{Group: "a", Forbidden: []string{"sms"}}, {Group: "a", Forbidden: []string{"email"}}},
		make([]GroupMethodRule, MaxGroupRules+1),
	}
	for _, b := range bad {
		err := ValidateGroupMethodRules(b, known)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "group_rules:") {
			t.Errorf("rules %.60v: %v", b, err)
		}
	}
}
