package main

import (
	"bytes"
	"context"
	"encoding/base32"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/twofactor/twofactor/clients/client"
	"github.com/twofactor/twofactor/providers/totp"
)

func runOut(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	if err := run(args, strings.NewReader(""), &out); err != nil {
		t.Fatalf("authctl %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// throttle status/clear, audit list and audit tail against a whole authd whose
// embedded NATS accepts TCP clients; /metrics on its own port.
func TestObserveCommands(t *testing.T) {
	// Ports the listeners pick themselves: a port found free and released for
	// authd to bind could be taken meanwhile by anything else on the machine.
	a, dataDir := startApp(t, "-metrics-listen", "127.0.0.1:0", "-nats-listen", "127.0.0.1:0")
	addr, metricsAddr := a.Addr(), a.MetricsAddr()
	natsAddr := strings.TrimPrefix(a.NATSClientURL(), "nats://")
	if natsAddr == "" || strings.HasSuffix(natsAddr, ":0") || metricsAddr == "" || strings.HasSuffix(metricsAddr, ":0") {
		t.Fatalf("listening on NATS %q, metrics %q", a.NATSClientURL(), metricsAddr)
	}
	g := []string{"-addr", addr, "-data-dir", dataDir}

	key, err := client.FindAPIKey("", dataDir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := client.Dial(client.Options{Addr: addr, APIKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	en, err := c.EnrollTOTP(ctx, "alice", "alice", "Phone")
	if err != nil {
		t.Fatal(err)
	}
	seed, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(en.GetTotp().GetSecret())
	if err != nil {
		t.Fatal(err)
	}
	wrong := wrongCode(seed, time.Now())
	for i := 0; i < 2; i++ {
		if _, err := c.FinishWithCode(ctx, "alice", en.GetFactorId(), wrong); err == nil {
			t.Fatal("a wrong code finished the enrollment")
		}
	}
	if out := runOut(t, append(g, "throttle", "status", "alice")...); !strings.HasPrefix(out, "alice: 2 failures") {
		t.Fatalf("throttle status: %q", out)
	}
	if out := runOut(t, append(g, "throttle", "status", "2001:db8:1:2::3")...); !strings.HasPrefix(out, "2001:db8:1::/56: 0 failures, not blocked") {
		t.Fatalf("throttle status of an IPv6 address: %q", out)
	}
	runOut(t, append(g, "throttle", "clear", "alice")...)
	if out := runOut(t, append(g, "throttle", "status", "alice")...); !strings.HasPrefix(out, "alice: 0 failures, not blocked") {
		t.Fatalf("after clear: %q", out)
	}
	if out := runOut(t, append(g, "audit", "list", "alice")...); !strings.Contains(out, "throttle.cleared") || !strings.Contains(out, `caller="admin(`) {
		t.Fatalf("audit list: %q", out)
	}
	// The tail replays the stream from the start and stops at the deadline.
	out := runOut(t, append(g, "-timeout", "3s", "audit", "tail", "-from-start", "-json", "-nats-url", "nats://"+natsAddr)...)
	if !strings.Contains(out, `"event":"throttle.cleared"`) || !strings.Contains(out, `"v":1`) {
		t.Fatalf("audit tail: %q", out)
	}
	// It found the token in the data folder; an anonymous client is refused.
	if nc, err := nats.Connect("nats://" + natsAddr); err == nil {
		nc.Close()
		t.Fatal("an anonymous client connected to the embedded NATS listener")
	}
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `twofactor_verifications_total{factor="totp_enrollment",result="rejected"} 2`) {
		t.Fatalf("metrics lack the rejected enrolment codes")
	}
}

// wrongCode is a six-digit code that no step of the accepted window (±1 step, and
// one more for a step boundary crossed while the test runs) produces for seed.
func wrongCode(seed []byte, now time.Time) string {
	params := totp.Params{Algorithm: "SHA1", Digits: 6, Period: 30}
	taken := map[string]bool{}
	for d := -2; d <= 2; d++ {
		c, _ := totp.CodeAt(seed, params, now.Add(time.Duration(d)*30*time.Second))
		taken[c] = true
	}
	for i := 0; ; i++ {
		if c := fmt.Sprintf("%06d", i); !taken[c] {
			return c
		}
	}
}
