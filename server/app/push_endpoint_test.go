package app

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/twofactor/twofactor/clients/pushdevice"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
)

// authd refuses, at EnrollPushDevice and UpdatePushEndpoint, an endpoint notifyd
// would never wake (an IP literal in a range notify/egress refuses, or localhost):
// InvalidArgument naming endpoint.url and the host, not the topic. What
// -push-allow-internal (and -push-http-endpoint-hosts) allows is accepted.
func TestPushEndpointMustBePublic(t *testing.T) {
	for _, allow := range []string{"", "10.0.0.0/8,localhost"} {
		args := []string{"-data-dir", t.TempDir(), "-listen", "127.0.0.1:0", "-metrics-listen", "", "-breached-mode", "off",
			"-push-http-endpoint-hosts", "ntfy"}
		if allow != "" {
			args = append(args, "-push-allow-internal", allow)
		}
		cfg, err := Parse("authd", args, func(string) string { return "" })
		if err != nil {
			t.Fatal(err)
		}
		if err := Init(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
			t.Fatal(err)
		}
		conn := serveApp(t, cfg)
		dev := pb.NewDeviceServiceClient(conn)
		ctx := context.Background()
		ntfy := func(u string) *pb.PushEndpoint {
			return &pb.PushEndpoint{Kind: &pb.PushEndpoint_Ntfy{Ntfy: &pb.NtfyTopic{Url: u}}}
		}
		d := enrollPushDevice(t, conn, ntfy("https://ntfy.example/upOld1"))
		token := ""
		for u, allowed := range map[string]bool{
			"https://10.0.0.5/upSecret1":          allow != "",
			"https://[::ffff:10.0.0.5]/upSecret1": allow != "",
			"https://LOCALHOST./upSecret1":        allow != "",
			"https://127.0.0.1/upSecret1":         false, // localhost allowed by name, not 127.0.0.1
			"https://169.254.169.254/upSecret1":   false,
			"https://[fd00::1]/upSecret1":         false,
			"http://ntfy/upSecret1":               true, // a push-http-endpoint-hosts host, not resolved
			"https://ntfy.example/upNew1":         true,
			"https://93.184.215.14/upNew1":        true,
		} {
			check := func(what string, err error) {
				t.Helper()
				if allowed && err != nil {
					t.Errorf("allow %q, %s %s: %v, want accepted", allow, what, u, err)
				} else if !allowed && (status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "endpoint.url") ||
					!strings.Contains(status.Convert(err).Message(), "not a public address") || strings.Contains(err.Error(), "upSecret1")) {
					t.Errorf("allow %q, %s %s: %v, want InvalidArgument on endpoint.url naming the host only", allow, what, u, err)
				}
			}
			if token == "" { // a refused enrollment leaves its token unused
				begin, err := pb.NewEnrollmentServiceClient(conn).BeginEnrollment(ctx, &pb.BeginEnrollmentRequest{UserId: "alice", Method: pb.Method_METHOD_PUSH})
				if err != nil {
					t.Fatal(err)
				}
				token = begin.GetPush().GetToken()
			}
			nd, err := pushdevice.New()
			if err != nil {
				t.Fatal(err)
			}
			err = nd.Enroll(ctx, dev, token, "Phone", "test", ntfy(u))
			check("enrollment", err)
			if err == nil {
				token = ""
			}
			check("update", d.UpdateEndpoint(ctx, dev, ntfy(u)))
		}
	}
}
