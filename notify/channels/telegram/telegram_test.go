package telegram_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twofactor/twofactor/notify/channels/channeltest"
	"github.com/twofactor/twofactor/notify/channels/telegram"
)

const botToken = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11"

// fakeAPI speaks the Bot API's sendMessage and getUpdates.
type fakeAPI struct {
	mu      sync.Mutex
	send    func(chatID, text string) (int, string) // status, body
	updates [][]string                              // answers to successive getUpdates
	offsets []int64                                 // offsets getUpdates was called with
	polls   int
}

func (f *fakeAPI) serve(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		method, ok := strings.CutPrefix(r.URL.Path, "/bot"+botToken+"/")
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"ok":false,"error_code":401,"description":"Unauthorized"}`))
			return
		}
		var req map[string]any
		_ = json.NewDecoder(r.Body).Decode(&req)
		f.mu.Lock()
		defer f.mu.Unlock()
		switch method {
		case "sendMessage":
			st, body := f.send(fmt.Sprint(req["chat_id"]), fmt.Sprint(req["text"]))
			w.WriteHeader(st)
			_, _ = w.Write([]byte(body))
		case "getUpdates":
			off, _ := req["offset"].(float64)
			f.offsets = append(f.offsets, int64(off))
			if f.polls >= len(f.updates) {
				f.polls++
				_, _ = w.Write([]byte(`{"ok":true,"result":[]}`))
				return
			}
			ans := f.updates[f.polls]
			f.polls++
			st := http.StatusOK
			if strings.Contains(ans[0], `"error_code":409`) {
				st = http.StatusConflict
			} else if strings.Contains(ans[0], `"error_code":429`) {
				st = http.StatusTooManyRequests
			}
			w.WriteHeader(st)
			_, _ = w.Write([]byte(ans[0]))
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"ok":false,"error_code":404,"description":"Not Found"}`))
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestSend(t *testing.T) {
	const chat = "987654321"
	for _, tc := range []struct {
		name, token, body string
		status            int
		want              string
	}{
		{"accepted", botToken, `{"ok":true,"result":{"message_id":7,"chat":{"id":987654321,"type":"private"},"date":1772366400,"text":"…"}}`, 200, "ok"},
		{"flood", botToken, `{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 17","parameters":{"retry_after":17}}`, 429, "retry 17s"},
		{"blocked", botToken, `{"ok":false,"error_code":403,"description":"Forbidden: bot was blocked by the user"}`, 403, "permanent rejected"},
		{"chat not found", botToken, `{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}`, 400, "permanent rejected"},
		{"wrong token", "1:wrong", "", 0, "permanent provider_auth"},
		{"bad gateway", botToken, `<html>502</html>`, 502, "error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeAPI{send: func(chatID, text string) (int, string) {
				if chatID != chat || text != "Your code is 424242. @example.org #424242" {
					return 400, `{"ok":false,"error_code":400,"description":"Bad Request: message text is empty"}`
				}
				return tc.status, tc.body
			}}
			srv := f.serve(t)
			b, err := telegram.New(telegram.Config{BaseURL: srv.URL, Token: tc.token})
			if err != nil {
				t.Fatal(err)
			}
			err = b.Send(context.Background(), channeltest.Message(chat))
			if got := channeltest.Kind(err); got != tc.want {
				t.Fatalf("Send: %s (%v), want %s", got, err, tc.want)
			}
			channeltest.Clean(t, err, chat, "424242", botToken, "wrong")
		})
	}
}

func TestSendProviderDownHidesToken(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	b, _ := telegram.New(telegram.Config{BaseURL: srv.URL, Token: botToken})
	err := b.Send(context.Background(), channeltest.Message("1"))
	if channeltest.Kind(err) != "error" {
		t.Fatalf("Send: %v", err)
	}
	channeltest.Clean(t, err, botToken, "ABC-DEF")
}

func update(id int64, chat int64, text string) string {
	return fmt.Sprintf(`{"update_id":%d,"message":{"message_id":1,"from":{"id":%d,"is_bot":false,"first_name":"A"},"chat":{"id":%d,"type":"private"},"date":1772366400,"text":%q}}`, id, chat, chat, text)
}

// Poll advances the offset past handled updates only, rides out 409 and 429, and
// fetches an update again after the handler failed on it.
func TestPoll(t *testing.T) {
	f := &fakeAPI{updates: [][]string{
		{`{"ok":false,"error_code":409,"description":"Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"}`},
		{`{"ok":true,"result":[` + update(100, 11, "/start tok-A") + `,` + update(101, 12, "hello") + `]}`},
		{`{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 1","parameters":{"retry_after":1}}`},
		{`{"ok":true,"result":[` + update(102, 13, "/start tok-B") + `]}`},
		{`{"ok":true,"result":[` + update(102, 13, "/start tok-B") + `,{"update_id":103,"edited_message":{}}]}`},
	}}
	srv := f.serve(t)
	b, err := telegram.New(telegram.Config{BaseURL: srv.URL, Token: botToken, PollTimeout: time.Second, ConflictWait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var seen []string
	failB := true
	done := make(chan error, 1)
	go func() {
		done <- b.Poll(ctx, nil, func(ctx context.Context, u telegram.Update) error {
			mu.Lock()
			defer mu.Unlock()
			if u.Text == "/start tok-B" && failB {
				failB = false
				return errors.New("NATS unavailable")
			}
			seen = append(seen, fmt.Sprintf("%d:%s:%s", u.UpdateID, u.ChatID, u.Text))
			return nil
		})
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.mu.Lock()
		n := len(f.offsets)
		f.mu.Unlock()
		if n >= 6 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(seen, " "); got != "100:11:/start tok-A 101:12:hello 102:13:/start tok-B" {
		t.Fatalf("handled %q", got)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if got := fmt.Sprint(f.offsets[:6]); got != "[0 0 102 102 102 104]" {
		t.Fatalf("offsets %s", got)
	}
}

func TestPollStopsOnWrongToken(t *testing.T) {
	f := &fakeAPI{}
	srv := f.serve(t)
	b, _ := telegram.New(telegram.Config{BaseURL: srv.URL, Token: "1:wrong", PollTimeout: time.Second, ConflictWait: time.Millisecond})
	err := b.Poll(context.Background(), nil, func(context.Context, telegram.Update) error { return nil })
	if channeltest.Kind(err) != "permanent provider_auth" {
		t.Fatalf("Poll with a wrong token: %v", err)
	}
	channeltest.Clean(t, err, "wrong")
}

func TestWebhookHandler(t *testing.T) {
	var got []telegram.Update
	h := telegram.WebhookHandler("s3cret-token", nil, func(ctx context.Context, u telegram.Update) error {
		if u.Text == "fail" {
			return errors.New("try later")
		}
		got = append(got, u)
		return nil
	})
	post := func(secret, body string) int {
		r := httptest.NewRequest(http.MethodPost, "/telegram", strings.NewReader(body))
		if secret != "" {
			r.Header.Set(telegram.SecretHeader, secret)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	if c := post("", update(1, 5, "/start x")); c != 401 {
		t.Errorf("no secret: %d", c)
	}
	if c := post("wrong", update(1, 5, "/start x")); c != 401 {
		t.Errorf("wrong secret: %d", c)
	}
	if c := post("s3cret-token", "{"); c != 400 {
		t.Errorf("bad JSON: %d", c)
	}
	if c := post("s3cret-token", update(2, 5, "fail")); c != 500 {
		t.Errorf("handler failure: %d", c)
	}
	if c := post("s3cret-token", update(3, -1001, "/start x")); c != 200 {
		t.Errorf("good update: %d", c)
	}
	if len(got) != 1 || got[0].ChatID != "-1001" || got[0].UpdateID != 3 {
		t.Fatalf("updates %+v", got)
	}
}

func FuzzWebhookHandler(f *testing.F) {
	f.Add([]byte(update(1, 5, "/start x")))
	f.Add([]byte(`{"update_id":2,"message":{"chat":{"id":0}}}`))
	f.Add([]byte(`[]`))
	h := telegram.WebhookHandler("s3cret-token", nil, func(ctx context.Context, u telegram.Update) error {
		if u.ChatID == "" || u.ChatID == "0" {
			return fmt.Errorf("update without a chat reached the handler: %+v", u)
		}
		return nil
	})
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/telegram", strings.NewReader(string(body)))
		r.Header.Set(telegram.SecretHeader, "s3cret-token")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 && w.Code != 400 {
			t.Fatalf("answer %d for %q", w.Code, body)
		}
	})
}
