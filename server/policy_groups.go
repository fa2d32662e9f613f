package server

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/policy"
)

// requireAllowedFor refuses a method the policy does not allow to userID: not
// allowed at all, or forbidden to one of the user's groups.
func (s *core) requireAllowedFor(ctx context.Context, userID, method string) error {
	ok, err := s.policy.AllowsFor(ctx, userID, method)
	if err != nil {
		return err
	}
	if !ok {
		return status.Errorf(codes.FailedPrecondition, "method: %s is not allowed by policy for this user", method)
	}
	return nil
}

// groupRulesFromPB maps the policy's group rules from the wire.
func groupRulesFromPB(r *Registry, in []*pb.GroupMethodRule) ([]policy.GroupMethodRule, error) {
	if len(in) > policy.MaxGroupRules {
		return nil, invalid("policy.group_rules", "at most %d rules", policy.MaxGroupRules)
	}
	var out []policy.GroupMethodRule
	for i, g := range in {
		field := fmt.Sprintf("policy.group_rules[%d]", i)
		if err := checkGroups(field+".group", []string{g.GetGroup()}); err != nil {
			return nil, err
		}
		if len(g.GetForbiddenMethods()) > policy.MaxForbiddenPerGroup {
			return nil, invalid(field+".forbidden_methods", "at most %d methods", policy.MaxForbiddenPerGroup)
		}
		rule := policy.GroupMethodRule{Group: g.GetGroup()}
		for j, m := range g.GetForbiddenMethods() {
			name := r.name(m)
			if name == "" {
				return nil, invalid(fmt.Sprintf("%s.forbidden_methods[%d]", field, j), "%s is not a method", m)
			}
			rule.Forbidden = append(rule.Forbidden, name)
		}
		out = append(out, rule)
	}
	return out, nil
}

// groupRulesToPB maps the policy's group rules to the wire.
func groupRulesToPB(r *Registry, rules []policy.GroupMethodRule) []*pb.GroupMethodRule {
	var out []*pb.GroupMethodRule
	for _, g := range rules {
		out = append(out, &pb.GroupMethodRule{Group: g.Group, ForbiddenMethods: r.methodsToPB(g.Forbidden)})
	}
	return out
}
