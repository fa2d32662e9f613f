package server_test

import (
	"crypto/sha1"
	"encoding/hex"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
)

func TestCheckPassword(t *testing.T) {
	c := newCluster(t)
	r := c.start()
	pw := pb.NewPasswordServiceClient(r.conn)
	sum := sha1.Sum([]byte("password"))
	for _, tc := range []struct {
		name     string
		req      *pb.CheckPasswordRequest
		breached bool
	}{
		{"breached password", &pb.CheckPasswordRequest{Input: &pb.CheckPasswordRequest_Password{Password: "password"}}, true},
		{"breached digest", &pb.CheckPasswordRequest{Input: &pb.CheckPasswordRequest_Sha1Hex{Sha1Hex: strings.ToLower(hex.EncodeToString(sum[:]))}}, true},
		{"unknown password", &pb.CheckPasswordRequest{Input: &pb.CheckPasswordRequest_Password{Password: "correct horse battery staple 1932"}}, false},
	} {
		resp, err := pw.CheckPassword(c.as("login"), tc.req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if resp.GetBreached() != tc.breached || !resp.GetChecked() || (tc.breached && resp.GetCount() == 0) {
			t.Errorf("%s: %v", tc.name, resp)
		}
	}
	for field, req := range map[string]*pb.CheckPasswordRequest{
		"input":    {},
		"password": {Input: &pb.CheckPasswordRequest_Password{}},
		"sha1_hex": {Input: &pb.CheckPasswordRequest_Sha1Hex{Sha1Hex: "xyz"}},
	} {
		_, err := pw.CheckPassword(c.as("selfservice"), req)
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), field+":") {
			t.Errorf("bad %s: %v", field, err)
		}
	}
	if _, err := pw.CheckPassword(c.as("admin"), &pb.CheckPasswordRequest{Input: &pb.CheckPasswordRequest_Password{Password: "x"}}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("admin-only key: %v", err)
	}
}
