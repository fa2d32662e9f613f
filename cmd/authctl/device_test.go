package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/twofactor/twofactor/clients/client"
	"github.com/twofactor/twofactor/clients/pushdevice"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
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
	// -timeout ends the listening (an open device stream would hold authd's
	// graceful stop for its grace period).
	s = start(t, addr, dataDir, "-timeout", "4s", "device", "listen", "-file", file)
	s.until(`^Sign-in request: web from 198\.51\.100\.4 \(Safari\)`)
	s.answer(begun.GetPush().GetNumber())
	s.until(`→ approved`)
	v, err := c.Challenges.VerifyChallenge(ctx, &pb.VerifyChallengeRequest{ChallengeId: begun.GetChallengeId(),
		Response: &pb.VerifyChallengeRequest_Push{Push: &pb.PushWait{Wait: durationpb.New(5 * time.Second)}}})
	if err != nil || v.GetResult() != pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
		t.Fatalf("verify = %v, %v", v, err)
	}
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
