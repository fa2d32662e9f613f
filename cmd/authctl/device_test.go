package main

import (
	"context"
	"errors"
	"flag"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/twofactor/twofactor/clients/client"
	"github.com/twofactor/twofactor/clients/pushdevice"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/push"
	"github.com/twofactor/twofactor/server"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// A terminal device end to end: enroll, listen, type the number; the login is accepted.
func TestDeviceEnrollListenApprove(t *testing.T) {
	addr, dataDir := startAuthd(t)
	file := filepath.Join(t.TempDir(), "device.json")

	s := start(t, addr, dataDir, "push", "enroll", "alice")
	token := s.until(`^Token: (\S+)`)[1]
	s.wait()
	s = start(t, addr, dataDir, "device", "enroll", token, "-name", "Laptop", "-file", file)
	if out := s.wait(); !strings.Contains(out, "for user alice") {
		t.Fatalf("device enroll:\n%s", out)
	}

	key, err := client.FindAPIKey("", dataDir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(client.Options{Addr: addr, APIKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	begun, err := c.Challenges.BeginChallenge(ctx, &pb.BeginChallengeRequest{UserId: "alice", Method: pb.Method_METHOD_PUSH,
		Context: &pb.ClientContext{Ip: "198.51.100.4", UserAgent: "Safari", Client: "web"}})
	if err != nil {
		t.Fatal(err)
	}
	s = start(t, addr, dataDir, "device", "listen", "-file", file)
	s.until(`^Sign-in request: web from 198\.51\.100\.4 \(Safari\)`)
	s.answer(begun.GetPush().GetNumber())
	s.until(`→ approved`)
	v, err := c.Challenges.VerifyChallenge(ctx, &pb.VerifyChallengeRequest{ChallengeId: begun.GetChallengeId(),
		Response: &pb.VerifyChallengeRequest_Push{Push: &pb.PushWait{Wait: durationpb.New(5 * time.Second)}}})
	if err != nil || v.GetResult() != pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
		t.Fatalf("verify = %v, %v", v, err)
	}
	s.stop() // as Ctrl-C or -timeout: the listening ends without an error
	s.wait()
}

// `login -method push`: the number is shown, the device approves it with
// `device approve`, and the waiting login is accepted.
func TestLoginWithPush(t *testing.T) {
	addr, dataDir := startAuthd(t)
	file := filepath.Join(t.TempDir(), "device.json")
	s := start(t, addr, dataDir, "push", "enroll", "carl")
	token := s.until(`^Token: (\S+)`)[1]
	s.wait()
	start(t, addr, dataDir, "device", "enroll", token, "-file", file).wait()

	login := start(t, addr, dataDir, "login", "carl", "-method", "push")
	number := login.until(`^Number: (\d+)`)[1]
	login.until(`waiting for the answer`)
	key, err := client.FindAPIKey("", dataDir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(client.Options{Addr: addr, APIKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The device learns the push's id as a device does: from its pending list.
	dev, _, err := pushdevice.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	pending, err := dev.Pending(context.Background(), c.Devices)
	if err != nil || len(pending) != 1 {
		t.Fatalf("pending %v, %v", pending, err)
	}
	if out := start(t, addr, dataDir, "device", "approve", pending[0].GetChallengeId(), number, "-file", file).wait(); !strings.Contains(out, "approved") {
		t.Fatalf("device approve:\n%s", out)
	}
	login.until(`^Accepted: carl passed the second factor`)
	login.wait()
}

// deviceAPI serves the device API alone (a push service on a fresh store) with
// the given stream lifetime; every stream opened passes through intercept.
// It enrolls a device for alice and returns the service, the address, the
// folder (with a placeholder admin.key: the device API does not use it) and
// the device's key file.
func deviceAPI(t *testing.T, lifetime time.Duration, intercept grpc.StreamServerInterceptor) (svc *push.Service, addr, dir, file string) {
	t.Helper()
	svc, err := push.New(storagetest.Open(t), storagetest.KeyRing(t), push.Config{})
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.StreamInterceptor(intercept))
	pb.RegisterDeviceServiceServer(g, server.NewDeviceService(svc, server.DeviceOptions{Poll: time.Hour, StreamLifetime: lifetime}))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	en, err := svc.BeginEnrollment(context.Background(), "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	d, err := pushdevice.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Enroll(context.Background(), pb.NewDeviceServiceClient(conn), en.Token, "Laptop", "cli", nil); err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	file = filepath.Join(dir, "device.json")
	if err := d.Save(file, ""); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "admin.key"), []byte("unused by the device API\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return svc, lis.Addr().String(), dir, file
}

// `device listen` outlives a stream: when authd ends one (its lifetime, here
// 50 ms) the listener opens the next and still answers the pushes.
func TestDeviceListenReconnects(t *testing.T) {
	opened := make(chan struct{}, 16)
	svc, addr, dir, file := deviceAPI(t, 50*time.Millisecond, func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		opened <- struct{}{}
		return h(srv, ss)
	})
	s := start(t, addr, dir, "-timeout", "20s", "device", "listen", "-file", file)
	s.until(`^Waiting for push logins`)
	for range 2 { // the first stream ended and the listener opened a second
		select {
		case <-opened:
		case err := <-s.done:
			t.Fatalf("device listen ended with its first stream: %v", err)
		}
	}
	b, err := svc.Begin(context.Background(), push.BeginInput{UserID: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	s.until(`^Sign-in request:`)
	s.answer(b.Number)
	s.until(`→ approved`)
}

// The deadline of -timeout can reach the listener as the server's
// DeadlineExceeded before its own context ends (the server's copy of the
// deadline fired first): that is the end of the listening, not an error.
func TestDeviceListenEndsOnTheServersDeadline(t *testing.T) {
	_, addr, dir, file := deviceAPI(t, time.Hour, func(any, grpc.ServerStream, *grpc.StreamServerInfo, grpc.StreamHandler) error {
		return status.Error(codes.DeadlineExceeded, "context deadline exceeded")
	})
	s := start(t, addr, dir, "-timeout", "20s", "device", "listen", "-file", file)
	if out := s.wait(); !strings.Contains(out, "Waiting for push logins") {
		t.Fatalf("device listen:\n%s", out)
	}
}

// `device listen` says when authd cannot be reached (here nothing listens on
// its address) instead of waiting silently while it retries.
func TestDeviceListenSaysUnavailable(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close() // nothing listens there now
	d, err := pushdevice.New()
	if err != nil {
		t.Fatal(err)
	}
	d.ID, d.UserID = "dev-1", "alice" // as if enrolled: never sent anywhere
	dir := t.TempDir()
	file := filepath.Join(dir, "device.json")
	if err := d.Save(file, ""); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "admin.key"), []byte("unused by the device API\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := start(t, addr, dir, "-timeout", "20s", "device", "listen", "-file", file)
	s.until(`^Waiting for push logins`)
	s.until(`authd unavailable, retrying`)
}

// A token is base64url and may start with "-": it is a positional argument,
// not an unknown flag (CI once drew an enrollment token "-sDky…"), while the
// command's flags still parse before or after it.
func TestParseFlagsTakesATokenThatStartsWithADash(t *testing.T) {
	for _, args := range [][]string{
		{"-sDkyHzf7TRpemQsjM93sx", "-name", "Laptop"},
		{"-name", "Laptop", "-sDkyHzf7TRpemQsjM93sx"},
		{"--name=Laptop", "-sDkyHzf7TRpemQsjM93sx"},
	} {
		fs := flag.NewFlagSet("device enroll", flag.ContinueOnError)
		name := fs.String("name", "", "")
		pos, err := parseFlags(fs, args)
		if err != nil || len(pos) != 1 || pos[0] != "-sDkyHzf7TRpemQsjM93sx" || *name != "Laptop" {
			t.Errorf("%q: positional %q, name %q, %v", args, pos, *name, err)
		}
	}
	fs := flag.NewFlagSet("device enroll", flag.ContinueOnError)
	if _, err := parseFlags(fs, []string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want the help", err)
	}
}
