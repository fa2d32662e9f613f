package app

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

// rawCodec sends and receives message bytes as they are, so a test can put on the
// wire what no generated client would.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }
func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}
func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

// startApp runs a whole embedded authd and returns its address and admin key.
func startApp(t testing.TB, extra ...string) (*App, string) {
	t.Helper()
	dir := t.TempDir()
	args := append([]string{"-data-dir", dir, "-listen", "127.0.0.1:0", "-metrics-listen", "", "-breached-mode", "off"}, extra...)
	cfg, err := Parse("authd", args, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	key, err := readTrimmed(cfg.AdminKeyPath())
	if err != nil {
		t.Fatal(err)
	}
	return a, key
}

func str(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

// Invalid UTF-8 anywhere in a request (here sent as raw bytes) is InvalidArgument
// naming the field, for every kind of call, and only after the caller authenticated.
func TestUndecodableRequestsAreInvalidArgument(t *testing.T) {
	a, key := startApp(t)
	conn, err := grpc.NewClient(a.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	authed := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+key)
	bad := []byte("Mozilla\xff\xfe")
	ctxMsg := str(nil, 2, bad) // ClientContext.user_agent
	for _, tc := range []struct {
		name, method string
		body         []byte
		ctx          context.Context
		code         codes.Code
		want         string
	}{
		{"nested field", "/twofactor.v1.ChallengeService/BeginChallenge", str(str(nil, 1, []byte("alice")), 4, ctxMsg), authed, codes.InvalidArgument, "context.user_agent: invalid UTF-8"},
		{"top-level field", "/twofactor.v1.ChallengeService/GetLoginRequirements", str(nil, 1, bad), authed, codes.InvalidArgument, "user_id: invalid UTF-8"},
		{"malformed wire", "/twofactor.v1.ChallengeService/GetLoginRequirements", []byte{0x0a, 0x7f}, authed, codes.InvalidArgument, "request: malformed protobuf message"},
		{"not authenticated first", "/twofactor.v1.ChallengeService/GetLoginRequirements", str(nil, 1, bad), context.Background(), codes.Unauthenticated, "missing API key"},
		{"exempt health check", "/grpc.health.v1.Health/Check", str(nil, 1, bad), context.Background(), codes.InvalidArgument, "service: invalid UTF-8"},
	} {
		var out []byte
		err := conn.Invoke(tc.ctx, tc.method, &tc.body, &out)
		if st := status.Convert(err); st.Code() != tc.code || !strings.HasPrefix(st.Message(), tc.want) {
			t.Errorf("%s: %v, want %v %q", tc.name, err, tc.code, tc.want)
		}
	}
	// A streaming call (health Watch) is checked too.
	st, err := conn.NewStream(context.Background(), &grpc.StreamDesc{ServerStreams: true}, "/grpc.health.v1.Health/Watch")
	if err != nil {
		t.Fatal(err)
	}
	body := str(nil, 1, bad)
	if err := st.SendMsg(&body); err != nil {
		t.Fatal(err)
	}
	st.CloseSend()
	var out []byte
	if err := st.RecvMsg(&out); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "service: invalid UTF-8") {
		t.Errorf("Watch: %v, want InvalidArgument service: invalid UTF-8", err)
	}
	// A well-formed request still works.
	good := str(nil, 1, []byte("alice"))
	if err := conn.Invoke(authed, "/twofactor.v1.ChallengeService/GetLoginRequirements", &good, &out); err != nil {
		t.Fatalf("a valid request: %v", err)
	}
}

func readTrimmed(path string) (string, error) {
	b, err := os.ReadFile(path)
	return strings.TrimSpace(string(b)), err
}
