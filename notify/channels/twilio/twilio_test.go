package twilio_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/twofactor/twofactor/notify/channels/channeltest"
	"github.com/twofactor/twofactor/notify/channels/twilio"
)

const (
	sid   = "AC0123456789abcdef0123456789abcdef"
	token = "auth-token-secret-0123456789"
	dest  = "+15550100"
)

// server speaks Twilio's Messages API: answer picks the reply for each request.
func server(t *testing.T, status int, body string, header map[string]string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if r.Method != http.MethodPost || r.URL.Path != "/2010-04-01/Accounts/"+sid+"/Messages.json" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if !ok || u != sid || p != token {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"code":20003,"message":"Authenticate","more_info":"https://www.twilio.com/docs/errors/20003","status":401}`))
			return
		}
		if err := r.ParseForm(); err != nil || r.PostForm.Get("To") != dest || r.PostForm.Get("From") != "+15005550006" ||
			r.PostForm.Get("Body") != "Your code is 424242. @example.org #424242" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"code":21604,"message":"A 'To' phone number is required.","status":400}`))
			return
		}
		for k, v := range header {
			w.Header().Set(k, v)
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
		header map[string]string
		token  string
		want   string
	}{
		{"accepted", 201, `{"sid":"SM0123456789abcdef0123456789abcdef","status":"queued","to":"+15550100","body":"Your code is 424242."}`, nil, token, "ok"},
		{"invalid number", 400, `{"code":21211,"message":"The 'To' number +15550100 is not a valid phone number.","more_info":"https://www.twilio.com/docs/errors/21211","status":400}`, nil, token, "permanent rejected"},
		{"wrong token", 0, "", nil, "wrong", "permanent provider_auth"},
		{"rate limited", 429, `{"code":20429,"message":"Too Many Requests","more_info":"https://www.twilio.com/docs/errors/20429","status":429}`, map[string]string{"Retry-After": "7"}, token, "retry 7s"},
		{"rate limited without hint", 429, `{"code":20429,"message":"Too Many Requests","status":429}`, nil, token, "retry 5s"},
		{"unavailable", 503, `{"code":20503,"message":"Service Unavailable","status":503}`, nil, token, "retry 5s"},
		{"server error", 500, `{"code":20500,"message":"Internal Server Error","status":500}`, nil, token, "error"},
		{"success without sid", 201, `{}`, nil, token, "error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := server(t, tc.status, tc.body, tc.header)
			s, err := twilio.New(twilio.Config{BaseURL: srv.URL, AccountSID: sid, Password: tc.token, From: "+15005550006"})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Send(context.Background(), channeltest.Message(dest))
			if got := channeltest.Kind(err); got != tc.want {
				t.Fatalf("Send: %s (%v), want %s", got, err, tc.want)
			}
			channeltest.Clean(t, err, dest, "424242", token, "wrong")
		})
	}
}

func TestSendProviderDown(t *testing.T) {
	srv := server(t, 201, `{}`, nil)
	srv.Close()
	s, _ := twilio.New(twilio.Config{BaseURL: srv.URL, AccountSID: sid, Password: token, From: "+15005550006"})
	err := s.Send(context.Background(), channeltest.Message(dest))
	if channeltest.Kind(err) != "error" {
		t.Fatalf("Send to a closed server: %v", err)
	}
	channeltest.Clean(t, err, dest, "424242", token, sid)
}

func TestNewRejects(t *testing.T) {
	for name, cfg := range map[string]twilio.Config{
		"no sid":    {Password: token, From: "+1"},
		"no token":  {AccountSID: sid, From: "+1"},
		"no sender": {AccountSID: sid, Password: token},
		"bad sid":   {AccountSID: "AC/../x", Password: token, From: "+1"},
	} {
		if _, err := twilio.New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
