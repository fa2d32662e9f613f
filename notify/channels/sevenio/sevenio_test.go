package sevenio_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/twofactor/twofactor/notify/channels/channeltest"
	"github.com/twofactor/twofactor/notify/channels/sevenio"
)

const (
	apiKey = "seven-api-key-0123456789"
	dest   = "+4915550100"
)

// server speaks seven's POST /api/sms: 200 with the return code in "success", or the
// code alone for a failed authentication, as the gateway answers.
func server(t *testing.T, status int, body string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/api/sms" {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("X-Api-Key") != apiKey {
			_, _ = w.Write([]byte("900"))
			return
		}
		if r.ParseForm() != nil || r.PostForm.Get("to") != dest || r.PostForm.Get("from") != "Twofactor" ||
			r.PostForm.Get("text") != "Your code is 424242. @example.org #424242" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"success":"301","messages":[]}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if status == 429 {
			w.Header().Set("Retry-After", "2")
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestSend(t *testing.T) {
	for _, tc := range []struct {
		name, key string
		status    int
		body      string
		want      string
	}{
		{"accepted", apiKey, 200, `{"success":"100","total_price":0.075,"balance":9.925,"debug":"false","sms_type":"direct","messages":[{"id":"77229318","sender":"Twofactor","recipient":"4915550100","text":"…","encoding":"gsm","parts":1,"price":0.075,"success":true,"error":null,"error_text":null}]}`, "ok"},
		{"invalid recipient", apiKey, 200, `{"success":"202","messages":[{"recipient":"4915550100","success":false,"error":"202","error_text":"recipient 4915550100 invalid"}]}`, "permanent rejected"},
		{"wrong key", "wrong", 200, "", "permanent provider_auth"},
		{"no credit", apiKey, 200, `{"success":"500"}`, "error"},
		{"duplicate within 180 s", apiKey, 200, `{"success":"402"}`, "retry 3m0s"},
		{"rate limited", apiKey, 429, `{"success":"429"}`, "retry 2s"},
		{"carrier failure", apiKey, 200, `{"success":"600"}`, "error"},
		{"server error", apiKey, 502, `bad gateway`, "error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := server(t, tc.status, tc.body)
			s, err := sevenio.New(sevenio.Config{BaseURL: srv.URL, APIKey: tc.key, From: "Twofactor"})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Send(context.Background(), channeltest.Message(dest))
			if got := channeltest.Kind(err); got != tc.want {
				t.Fatalf("Send: %s (%v), want %s", got, err, tc.want)
			}
			channeltest.Clean(t, err, dest, "4915550100", "424242", apiKey)
		})
	}
	if _, err := sevenio.New(sevenio.Config{}); err == nil {
		t.Error("no API key accepted")
	}
}
