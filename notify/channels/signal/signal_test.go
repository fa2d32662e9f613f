package signal_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/channels/channeltest"
	"github.com/twofactor/twofactor/notify/channels/signal"
)

const (
	account = "+4915550199"
	dest    = "+4915550100"
)

// server speaks signal-cli-rest-api's POST /v2/send.
func server(t *testing.T, status int, body string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v2/send" {
			http.NotFound(w, r)
			return
		}
		var req struct {
			Message    string   `json:"message"`
			Number     string   `json:"number"`
			Recipients []string `json:"recipients"`
		}
		w.Header().Set("Content-Type", "application/json")
		if json.NewDecoder(r.Body).Decode(&req) != nil || req.Number != account || len(req.Recipients) != 1 ||
			req.Recipients[0] != dest || req.Message != "Your code is 424242. @example.org #424242" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"Couldn't process request - invalid request"}`))
			return
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestSend(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"accepted", 201, `{"timestamp":"1700812896656"}`, "ok"},
		{"captcha", 429, `{"error":"Failed to send message due to rate limiting. Use the attached challenge tokens to lift the rate limit restrictions via the '/v1/accounts/{number}/rate-limit-challenge' endpoint.","challenge_tokens":["26ccfae6-4fc1-4df0-a27c-084a8191704c"],"account":"+4915550199"}`, "permanent captcha_required"},
		{"unregistered recipient", 400, `{"error":"Failed to send message: +4915550100 is not registered."}`, "permanent rejected"},
		{"signal-cli down", 500, `{"error":"Failed to send message: connection refused"}`, "error"},
		{"success without timestamp", 201, `{}`, "error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := server(t, tc.status, tc.body)
			s, err := signal.New(signal.Config{BaseURL: srv.URL, Number: account})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Send(context.Background(), channeltest.Message(dest))
			if got := channeltest.Kind(err); got != tc.want {
				t.Fatalf("Send: %s (%v), want %s", got, err, tc.want)
			}
			if tc.status == 429 && !errors.Is(err, signal.ErrCaptchaRequired) {
				t.Errorf("captcha error %v does not wrap ErrCaptchaRequired", err)
			}
			channeltest.Clean(t, err, dest, "424242", "26ccfae6")
		})
	}
	var _ notify.Permanent
	if _, err := signal.New(signal.Config{BaseURL: "http://x"}); err == nil {
		t.Error("no number accepted")
	}
}
