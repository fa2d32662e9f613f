package e2e

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
)

// rawCodec passes messages through as the bytes they arrived as.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// call is one RPC the proxy forwarded.
type call struct {
	Method  string
	Backend int
}

// proxy is a gRPC load balancer for the tests: every RPC goes to the next
// backend in turn, except that a VerifyChallenge goes to a different backend
// than the one that began its challenge, so every login crosses replicas.
type proxy struct {
	addr     string
	backends []*grpc.ClientConn
	mu       sync.Mutex
	next     int
	began    map[string]int // challenge id → backend of its BeginChallenge
	calls    []call
	crossed  int // VerifyChallenges answered by another replica than their Begin
}

func startProxy(t *testing.T, backends ...string) *proxy {
	t.Helper()
	p := &proxy{began: map[string]int{}}
	for _, b := range backends {
		cc, err := grpc.NewClient(b, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		p.backends = append(p.backends, cc)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	srv := grpc.NewServer(grpc.ForceServerCodec(rawCodec{}), grpc.UnknownServiceHandler(p.handle))
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return p
}

// pick chooses the backend for one RPC whose first request message is first.
func (p *proxy) pick(method string, first []byte) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.next % len(p.backends)
	p.next++
	if strings.HasSuffix(method, "/VerifyChallenge") {
		var req pb.VerifyChallengeRequest
		if proto.Unmarshal(first, &req) == nil {
			if began, ok := p.began[req.GetChallengeId()]; ok {
				b = (began + 1) % len(p.backends)
				p.crossed++
			}
		}
	}
	p.calls = append(p.calls, call{Method: method, Backend: b})
	return b
}

func (p *proxy) noteBegin(method string, backend int, reply []byte) {
	if !strings.HasSuffix(method, "/BeginChallenge") {
		return
	}
	var resp pb.BeginChallengeResponse
	if proto.Unmarshal(reply, &resp) == nil && resp.GetChallengeId() != "" {
		p.mu.Lock()
		p.began[resp.GetChallengeId()] = backend
		p.mu.Unlock()
	}
}

// snapshot returns the calls so far and how many verifications crossed replicas.
func (p *proxy) snapshot() ([]call, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]call(nil), p.calls...), p.crossed
}

func (p *proxy) handle(_ any, in grpc.ServerStream) error {
	method, _ := grpc.MethodFromServerStream(in)
	var first []byte
	if err := in.RecvMsg(&first); err != nil {
		return err
	}
	b := p.pick(method, first)
	md, _ := metadata.FromIncomingContext(in.Context())
	out := metadata.MD{}
	for k, v := range md {
		if !strings.HasPrefix(k, ":") && k != "content-type" && k != "user-agent" {
			out[k] = v
		}
	}
	ctx, cancel := context.WithCancel(metadata.NewOutgoingContext(in.Context(), out))
	defer cancel()
	up, err := p.backends[b].NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, method)
	if err != nil {
		return err
	}
	if err := up.SendMsg(&first); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	go func() { // the rest of the client's messages (streaming RPCs)
		for {
			var m []byte
			if in.RecvMsg(&m) != nil {
				up.CloseSend()
				return
			}
			if up.SendMsg(&m) != nil {
				return
			}
		}
	}()
	if hdr, err := up.Header(); err == nil {
		in.SendHeader(hdr)
	}
	for n := 0; ; n++ {
		var m []byte
		if err := up.RecvMsg(&m); err != nil {
			in.SetTrailer(up.Trailer())
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if n == 0 {
			p.noteBegin(method, b, m)
		}
		if err := in.SendMsg(&m); err != nil {
			return err
		}
	}
}
