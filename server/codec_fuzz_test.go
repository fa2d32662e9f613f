package server_test

import (
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/server"
)

// FuzzInvalidUTF8Path: on any bytes the walk terminates without panicking, and when
// protobuf refuses a message only for invalid UTF-8, the walk names a field (and
// names none in a message protobuf accepts).
// CI: go test -run XXX -fuzz FuzzInvalidUTF8Path -fuzztime 20000x ./server/
func FuzzInvalidUTF8Path(f *testing.F) {
	ok, _ := proto.Marshal(&pb.BeginChallengeRequest{UserId: "alice", Context: &pb.ClientContext{UserAgent: "Mozilla"}})
	f.Add(ok)
	f.Add([]byte{0x22, 0x04, 0x12, 0x02, 0xff, 0xfe})
	f.Add([]byte{0x0a, 0x7f})
	md := (&pb.BeginChallengeRequest{}).ProtoReflect().Descriptor()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := server.InvalidUTF8Path(md, b)
		var m pb.BeginChallengeRequest
		err := proto.Unmarshal(b, &m)
		if err == nil && path != "" {
			t.Fatalf("a valid message, but the walk names %q", path)
		}
		if path != "" && !utf8.ValidString(path) {
			t.Fatalf("path %q", path)
		}
		if err != nil && err.Error() == "string field contains invalid UTF-8" && path == "" {
			t.Fatalf("protobuf reports invalid UTF-8 that the walk did not find")
		}
	})
}

func TestInvalidUTF8PathNames(t *testing.T) {
	md := (&pb.BeginChallengeRequest{}).ProtoReflect().Descriptor()
	for b, want := range map[string]string{
		"\x22\x04\x12\x02\xff\xfe": "context.user_agent",
		"\x0a\x02\xc3\x28":         "user_id",
		"\x0a\x05alice":            "",
	} {
		if got := server.InvalidUTF8Path(md, []byte(b)); got != want {
			t.Errorf("%q: %q, want %q", b, got, want)
		}
	}
}
