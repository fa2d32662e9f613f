package sipgate_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/twofactor/twofactor/notify/channels/channeltest"
	"github.com/twofactor/twofactor/notify/channels/sipgate"
)

const (
	tokenID = "token-0A0AAA"
	token   = "12345678-1234-1234-1234-1234567890ab"
	dest    = "+4915550100"
)

// server speaks sipgate's POST /v2/sessions/sms: 204 on acceptance.
func server(t *testing.T, status int, header map[string]string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v2/sessions/sms" {
			http.NotFound(w, r)
			return
		}
		if u, p, ok := r.BasicAuth(); !ok || u != tokenID || p != token {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var body struct{ SMSID, Recipient, Message string }
		if json.NewDecoder(r.Body).Decode(&body) != nil || body.SMSID != "s0" || body.Recipient != dest ||
			body.Message != "Your code is 424242. @example.org #424242" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if status == http.StatusForbidden {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = w.Write([]byte(`{"message":"Forbidden: smsId s0 does not belong to the user"}`))
			return
		}
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestSend(t *testing.T) {
	for _, tc := range []struct {
		name, token string
		status      int
		header      map[string]string
		want        string
	}{
		{"accepted", token, 204, nil, "ok"},
		{"invalid number", token, 400, nil, "permanent rejected"},
		{"wrong token", "wrong", 0, nil, "permanent provider_auth"},
		{"foreign extension", token, 403, nil, "permanent provider_auth"},
		{"rate limited", token, 429, map[string]string{"Retry-After": "Sun, 01 Mar 2026 12:00:30 GMT"}, "retry 30s"},
		{"server error", token, 500, nil, "error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := server(t, tc.status, tc.header)
			s, err := sipgate.New(sipgate.Config{BaseURL: srv.URL, TokenID: tokenID, Token: tc.token, SMSID: "s0",
				Now: func() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Send(context.Background(), channeltest.Message(dest))
			if got := channeltest.Kind(err); got != tc.want {
				t.Fatalf("Send: %s (%v), want %s", got, err, tc.want)
			}
			channeltest.Clean(t, err, dest, "424242", token, tokenID)
		})
	}
	if _, err := sipgate.New(sipgate.Config{TokenID: tokenID, Token: token}); err == nil {
		t.Error("no smsId accepted")
	}
}
