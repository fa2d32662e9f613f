package app

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/twofactor/twofactor/clients/pushdevice"
	"github.com/twofactor/twofactor/internal/testfix"
	"github.com/twofactor/twofactor/notify/channels/ntfy/ntfytest"
	"github.com/twofactor/twofactor/notify/channels/webpush"
	"github.com/twofactor/twofactor/notify/channels/webpush/webpushtest"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/push"
)

// A push login in embedded mode, delivered by the in-process push worker: `authd
// init` writes the VAPID key pair (0600); a Web Push device (an httptest push service
// that checks the VAPID JWT and decrypts the RFC 8291 payload) and an ntfy device
// (ntfytest) are each woken with the opaque wake-up (challenge and device id, no
// number, no context); the woken device approves with the number and the waiting
// VerifyChallenge is accepted.
func TestEmbeddedPushDelivery(t *testing.T) {
	dir := t.TempDir()
	cfg, err := Parse("authd", []string{"-data-dir", dir, "-listen", "127.0.0.1:0", "-metrics-listen", "", "-breached-mode", "off",
		"-vapid-subscriber", "mailto:ops@auth.example", "-push-allow-internal", "127.0.0.1"}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if err := Init(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(dir, webpush.DefaultVAPIDKeyFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("vapid key file: %v", err)
	}
	_, vapidPub, err := webpush.LoadVAPIDKeyFile(cfg.VAPIDKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	wps := webpushtest.New(t, vapidPub, "mailto:ops@auth.example")
	nt := ntfytest.New(t)
	// The test's push services listen on 127.0.0.1: allowed explicitly.
	cfg.pushTLS, cfg.pushAllowHTTP = wps.Client().Transport.(*http.Transport).TLSClientConfig, true
	conn := serveApp(t, cfg)
	// A browser device learns the key its subscription must name from the enrollment.
	en, err := pb.NewEnrollmentServiceClient(conn).BeginEnrollment(context.Background(), &pb.BeginEnrollmentRequest{UserId: "alice", Method: pb.Method_METHOD_PUSH})
	if err != nil || en.GetPush().GetVapidPublicKey() != vapidPub || !strings.Contains(en.GetPush().GetUri(), "vapid="+vapidPub) {
		t.Fatalf("enrollment %v, %v: want the VAPID public key %s", en.GetPush(), err, vapidPub)
	}

	sub := wps.Subscription()
	webDev := enrollPushDevice(t, conn, &pb.PushEndpoint{Kind: &pb.PushEndpoint_WebPush{WebPush: &pb.WebPushSubscription{
		Endpoint: sub.Endpoint, P256Dh: sub.P256dh, Auth: sub.Auth}}})
	ntfyDev := enrollPushDevice(t, conn, &pb.PushEndpoint{Kind: &pb.PushEndpoint_Ntfy{Ntfy: &pb.NtfyTopic{Url: nt.URL() + "/upAlice1"}}})

	ctx := context.Background()
	begun, err := pb.NewChallengeServiceClient(conn).BeginChallenge(ctx, &pb.BeginChallengeRequest{UserId: "alice", Method: pb.Method_METHOD_PUSH,
		Context: &pb.ClientContext{Ip: "198.51.100.7", UserAgent: "Firefox", Client: "web"}})
	if err != nil {
		t.Fatal(err)
	}
	id, number := begun.GetChallengeId(), begun.GetPush().GetNumber()
	deadline := time.Now().Add(10 * time.Second)
	for len(wps.Received()) == 0 || len(nt.Poll(t, "upAlice1")) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("web push %d, ntfy %d, push service errors %v", len(wps.Received()), len(nt.Poll(t, "upAlice1")), wps.Errors())
		}
		time.Sleep(20 * time.Millisecond)
	}
	pending, err := webDev.Pending(ctx, pb.NewDeviceServiceClient(conn))
	if err != nil || len(pending) != 1 {
		t.Fatalf("pending %v, %v", pending, err)
	}
	pushID := pending[0].GetChallengeId()
	checkWake(t, wps.Received()[0], pushID, webDev.ID, number)
	checkWake(t, []byte(nt.Poll(t, "upAlice1")[0].Message), pushID, ntfyDev.ID, number)

	// The ntfy device, woken, answers the push its wake-up names.
	if _, err := ntfyDev.Respond(ctx, pb.NewDeviceServiceClient(conn), pushID, pb.PushDecision_PUSH_DECISION_APPROVE, number); err != nil {
		t.Fatal(err)
	}
	v, err := pb.NewChallengeServiceClient(conn).VerifyChallenge(ctx, &pb.VerifyChallengeRequest{ChallengeId: id,
		Response: &pb.VerifyChallengeRequest_Push{Push: &pb.PushWait{Wait: durationpb.New(5 * time.Second)}}})
	if err != nil || v.GetResult() != pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
		t.Fatalf("verify = %v, %v", v, err)
	}
}

// Embedded mode without an allowance does not reach a device endpoint on 127.0.0.1
// (an internal service a device key holder points it at): the dial is refused and
// logged by host, the server sees no request. A host of push-http-endpoint-hosts
// (localhost here, the deployment's own ntfy in production) is reached, though it
// resolves to the same loopback address.
func TestEmbeddedPushRefusesInternalEndpoint(t *testing.T) {
	cfg, err := Parse("authd", []string{"-data-dir", t.TempDir(), "-listen", "127.0.0.1:0", "-metrics-listen", "", "-breached-mode", "off",
		"-push-http-endpoint-hosts", "localhost"}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	// Enrolls http://127.0.0.1:… (as a device enrolled before authd checked the address):
	// delivery is egress's to decide.
	cfg.pushAllowHTTP, cfg.pushEnrollAnyAddress = true, true
	nt := ntfytest.New(t)
	u, _ := url.Parse(nt.URL())
	var logs testfix.LogBuffer
	conn := serveAppLogging(t, cfg, &logs)
	enrollPushDevice(t, conn, &pb.PushEndpoint{Kind: &pb.PushEndpoint_Ntfy{Ntfy: &pb.NtfyTopic{Url: nt.URL() + "/upInternal1"}}})
	enrollPushDevice(t, conn, &pb.PushEndpoint{Kind: &pb.PushEndpoint_Ntfy{Ntfy: &pb.NtfyTopic{Url: "http://localhost:" + u.Port() + "/upLocal1"}}})
	if _, err := pb.NewChallengeServiceClient(conn).BeginChallenge(context.Background(), &pb.BeginChallengeRequest{UserId: "alice", Method: pb.Method_METHOD_PUSH,
		Context: &pb.ClientContext{Ip: "198.51.100.7", UserAgent: "Firefox", Client: "web"}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(nt.Poll(t, "upLocal1")) == 0 || !strings.Contains(logs.String(), "endpoint address refused") {
		if time.Now().After(deadline) {
			t.Fatalf("localhost device woken %d times; logs %s", len(nt.Poll(t, "upLocal1")), logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := nt.Poll(t, "upInternal1"); len(got) != 0 {
		t.Fatalf("the internal endpoint got %+v", got)
	}
	if l := logs.String(); !strings.Contains(l, "host=127.0.0.1") || strings.Contains(l, "upInternal1") {
		t.Fatalf("logs %s: want the refused host, not the topic", l)
	}
}

func checkWake(t *testing.T, payload []byte, challengeID, deviceID, number string) {
	t.Helper()
	var w push.Wake
	if err := json.Unmarshal(payload, &w); err != nil {
		t.Fatalf("wake %q: %v", payload, err)
	}
	if w.ChallengeID != challengeID || w.DeviceID != deviceID {
		t.Fatalf("wake %+v, want challenge %s device %s", w, challengeID, deviceID)
	}
	if strings.Contains(string(payload), "198.51.100.7") || strings.Contains(string(payload), `"`+number+`"`) {
		t.Fatalf("wake %q names the login", payload)
	}
}

// serveApp serves cfg until the test ends and returns a connection with the admin key.
func serveApp(t *testing.T, cfg *Config) *grpc.ClientConn {
	t.Helper()
	return serveAppLogging(t, cfg, io.Discard)
}

// serveAppLogging is serveApp with the app's log lines written to logs.
func serveAppLogging(t *testing.T, cfg *Config, logs io.Writer) *grpc.ClientConn {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a, err := New(ctx, cfg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return adminConn(t, a, cfg)
}

// adminConn is a connection to a that sends the admin key Init generated (roles
// admin, login, selfservice); it is closed when the test ends.
func adminConn(t *testing.T, a *App, cfg *Config) *grpc.ClientConn {
	t.Helper()
	key, err := os.ReadFile(cfg.AdminKeyPath())
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(key))
	conn, err := grpc.NewClient(a.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(func(ctx context.Context, m string, req, reply any, cc *grpc.ClientConn, inv grpc.UnaryInvoker, o ...grpc.CallOption) error {
			return inv(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token), m, req, reply, cc, o...)
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// enrollPushDevice enrolls a Go device for alice with endpoint ep.
func enrollPushDevice(t *testing.T, conn *grpc.ClientConn, ep *pb.PushEndpoint) *pushdevice.Device {
	t.Helper()
	ctx := context.Background()
	begin, err := pb.NewEnrollmentServiceClient(conn).BeginEnrollment(ctx, &pb.BeginEnrollmentRequest{UserId: "alice", Method: pb.Method_METHOD_PUSH})
	if err != nil {
		t.Fatal(err)
	}
	d, err := pushdevice.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Enroll(ctx, pb.NewDeviceServiceClient(conn), begin.GetPush().GetToken(), "Phone", "test", ep); err != nil {
		t.Fatal(err)
	}
	return d
}

// authd's graceful stop ends the devices' WatchPushes streams (Server.Drain)
// instead of waiting for them: with a shutdown grace of an hour, Serve returns
// while a device is watching, and the device is told to reconnect (Unavailable).
func TestStopEndsWatchingDevices(t *testing.T) {
	dir := t.TempDir()
	cfg, err := Parse("authd", []string{"-data-dir", dir, "-listen", "127.0.0.1:0", "-metrics-listen", "", "-breached-mode", "off",
		"-shutdown-grace", "1h"}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx) }()
	conn := adminConn(t, a, cfg)
	dev := enrollPushDevice(t, conn, nil)
	if _, err := pb.NewChallengeServiceClient(conn).BeginChallenge(ctx, &pb.BeginChallengeRequest{UserId: "alice", Method: pb.Method_METHOD_PUSH}); err != nil {
		t.Fatal(err)
	}
	stream, err := dev.Watch(context.Background(), pb.NewDeviceServiceClient(conn))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil { // the stream is open and served
		t.Fatal(err)
	}
	cancel()
	if err := <-served; err != nil { // hangs (the test times out) if the stream held the stop
		t.Fatal(err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("the watching device got %v, want Unavailable", err)
	}
}
