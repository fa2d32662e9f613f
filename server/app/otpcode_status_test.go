package app

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twofactor/twofactor/internal/testfix"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
)

// signalAPI is an httptest server speaking signal-cli-rest-api's POST /v2/send: it
// accepts (201 with a timestamp) until refuse is set, then answers 400 as for an
// unregistered recipient, quoting the number.
type signalAPI struct {
	mu     sync.Mutex
	refuse bool
	texts  []string
}

func (s *signalAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Message    string   `json:"message"`
		Recipients []string `json:"recipients"`
	}
	if r.URL.Path != "/v2/send" || json.NewDecoder(r.Body).Decode(&req) != nil || len(req.Recipients) != 1 {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if s.refuse {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"Failed to send message: ` + req.Recipients[0] + ` is not registered"}`))
		return
	}
	s.texts = append(s.texts, req.Message)
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write([]byte(`{"timestamp":"1772366400000"}`))
}

// nextCode waits for text number n (from 1) and returns its code.
func (s *signalAPI) nextCode(t *testing.T, n int) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s.mu.Lock()
		var text string
		if len(s.texts) >= n {
			text = s.texts[n-1]
		}
		s.mu.Unlock()
		if m := regexp.MustCompile(`\b(\d{6})\b`).FindStringSubmatch(text); m != nil {
			return m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("message %d never reached the Signal API", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The whole way of a refused message, in one embedded authd with a real channel
// (notify-config naming signal-cli's REST API): the provider refuses the login's
// code, notifyd dead-letters it and publishes a failed status, authd records it on
// the challenge, and the backend sees "failed" with a reason in GetChallengeStatus
// and VerifyChallenge, never the number or the code (nor in the logs).
func TestRefusedCodeFailedStatusReachesTheBackend(t *testing.T) {
	api := &signalAPI{}
	srv := httptest.NewServer(api)
	defer srv.Close()
	dir := t.TempDir()
	nc := filepath.Join(t.TempDir(), "notify.yaml")
	if err := os.WriteFile(nc, []byte("signal-provider: signal\nsignal-url: "+srv.URL+"\nsignal-number: \"+15550100\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse("authd", []string{"-data-dir", dir, "-listen", "127.0.0.1:0", "-metrics-listen", "", "-breached-mode", "off",
		"-notify-config", nc}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	var logs testfix.LogBuffer
	conn := serveAppLogging(t, cfg, &logs)
	ctx := context.Background()
	const number = "+4915123456712"
	enr, ch := pb.NewEnrollmentServiceClient(conn), pb.NewChallengeServiceClient(conn)
	b, err := enr.BeginEnrollment(ctx, &pb.BeginEnrollmentRequest{UserId: "alice", Method: pb.Method_METHOD_SIGNAL,
		Options: &pb.BeginEnrollmentRequest_OutOfBand{OutOfBand: &pb.OutOfBandEnrollmentOptions{Destination: number}}})
	if err != nil {
		t.Fatal(err)
	}
	code := api.nextCode(t, 1)
	if _, err := enr.FinishEnrollment(ctx, &pb.FinishEnrollmentRequest{UserId: "alice", FactorId: b.GetFactorId(),
		Proof: &pb.FinishEnrollmentRequest_Code{Code: code}}); err != nil {
		t.Fatal(err)
	}
	api.mu.Lock()
	api.refuse = true
	api.mu.Unlock()
	bc, err := ch.BeginChallenge(ctx, &pb.BeginChallengeRequest{UserId: "alice", Method: pb.Method_METHOD_SIGNAL})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	var d *pb.DeliveryStatus
	for d.GetState() != pb.DeliveryState_DELIVERY_STATE_FAILED {
		if time.Now().After(deadline) {
			t.Fatalf("delivery %+v, want failed", d)
		}
		time.Sleep(20 * time.Millisecond)
		st, err := ch.GetChallengeStatus(ctx, &pb.GetChallengeStatusRequest{ChallengeId: bc.GetChallengeId()})
		if err != nil {
			t.Fatal(err)
		}
		d = st.GetDelivery()
	}
	if d.GetReason() == "" || strings.Contains(d.GetReason(), strings.TrimPrefix(number, "+")) {
		t.Fatalf("failed delivery's reason %q", d.GetReason())
	}
	v, err := ch.VerifyChallenge(ctx, &pb.VerifyChallengeRequest{ChallengeId: bc.GetChallengeId(), Response: &pb.VerifyChallengeRequest_Code{Code: "000000"}})
	if err != nil || v.GetDelivery().GetState() != pb.DeliveryState_DELIVERY_STATE_FAILED {
		t.Fatalf("verify %+v, %v", v, err)
	}
	for _, secret := range []string{strings.TrimPrefix(number, "+"), code} {
		if regexp.MustCompile(`(^|[^0-9])` + secret + `($|[^0-9])`).MatchString(logs.String()) {
			t.Errorf("a log line holds %q", secret)
		}
	}
}
