package server_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/server"
)

func TestCheckBounds(t *testing.T) {
	long := strings.Repeat("x", server.MaxStringLen+1)
	for _, tc := range []struct {
		name string
		msg  proto.Message
		want string // "" = accepted
	}{
		{"plain", &pb.BeginChallengeRequest{UserId: "alice", Context: &pb.ClientContext{Ip: "192.0.2.1", UserAgent: "Mozilla"}}, ""},
		{"zone ok", &pb.BeginChallengeRequest{Context: &pb.ClientContext{Ip: "fe80::1%eth0"}}, ""},
		{"zone of 100", &pb.BeginChallengeRequest{Context: &pb.ClientContext{Ip: "fe80::1%" + strings.Repeat("z", 100)}}, "context.ip: is longer than 64 bytes"},
		{"zone of 20", &pb.BeginChallengeRequest{Context: &pb.ClientContext{Ip: "fe80::1%" + strings.Repeat("z", 20)}}, "context.ip: has a zone longer than 16 bytes"},
		{"not an ip", &pb.VerifyChallengeRequest{Context: &pb.ClientContext{Ip: "localhost"}}, "context.ip: is not an IP address"},
		{"throttle subject ip", &pb.GetThrottleStatusRequest{Subject: &pb.ThrottleSubject{Subject: &pb.ThrottleSubject_Ip{Ip: "fe80::1%" + strings.Repeat("z", 30)}}}, "subject.ip: has a zone longer than 16 bytes"},
		{"NUL in user agent", &pb.VerifyChallengeRequest{Context: &pb.ClientContext{UserAgent: "Mozilla\x00"}}, "context.user_agent: contains a NUL byte"},
		{"NUL top level", &pb.GetLoginRequirementsRequest{UserId: "al\x00ice"}, "user_id: contains a NUL byte"},
		{"long string", &pb.GetLoginRequirementsRequest{UserId: long}, "user_id: is longer than 1024 bytes"},
		{"long client", &pb.BeginChallengeRequest{Context: &pb.ClientContext{Client: strings.Repeat("c", 256)}}, "context.client: is longer than 255 bytes"},
		{"long JSON allowed", &pb.VerifyChallengeRequest{Response: &pb.VerifyChallengeRequest_WebauthnAssertionJson{WebauthnAssertionJson: long}}, ""},
		{"JSON too long", &pb.VerifyChallengeRequest{Response: &pb.VerifyChallengeRequest_WebauthnAssertionJson{WebauthnAssertionJson: strings.Repeat("j", server.MaxJSONLen+1)}}, "webauthn_assertion_json: is longer than 65536 bytes"},
		{"long list", &pb.SetUserGroupsRequest{Groups: make([]string, server.MaxListLen+1)}, "groups: has more than 1000 entries"},
		{"NUL in a list", &pb.SetUserGroupsRequest{Groups: []string{"a", "b\x00"}}, "groups[1]: contains a NUL byte"},
		{"nested list", &pb.SetPolicyRequest{Policy: &pb.Policy{EnforcedGroups: []string{strings.Repeat("g", 2000)}}}, "policy.enforced_groups[0]: is longer than 1024 bytes"},
	} {
		err := server.CheckBounds(tc.msg)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != tc.want):
			t.Errorf("%s: %v, want InvalidArgument %q", tc.name, err, tc.want)
		}
	}
}

// A user agent over the limit is cut at a character boundary, not refused.
func TestCheckBoundsTruncatesTheUserAgent(t *testing.T) {
	ua := strings.Repeat("a", server.MaxUserAgentLen-1) + "é" + strings.Repeat("b", 1000)
	req := &pb.VerifyChallengeRequest{Context: &pb.ClientContext{UserAgent: ua}}
	if err := server.CheckBounds(req); err != nil {
		t.Fatal(err)
	}
	if got := req.GetContext().GetUserAgent(); got != strings.Repeat("a", server.MaxUserAgentLen-1) {
		t.Fatalf("user agent cut to %d bytes: %q…", len(got), got[len(got)-4:])
	}
}

// What the walk adds to a login's VerifyChallenge.
func BenchmarkCheckBounds(b *testing.B) {
	req := &pb.VerifyChallengeRequest{ChallengeId: strings.Repeat("c", 200), Response: &pb.VerifyChallengeRequest_Code{Code: "123456"},
		Context: &pb.ClientContext{Ip: "2001:db8::1", UserAgent: strings.Repeat("Mozilla ", 20), Client: "web"}}
	b.ReportAllocs()
	for b.Loop() {
		if err := server.CheckBounds(req); err != nil {
			b.Fatal(err)
		}
	}
}
