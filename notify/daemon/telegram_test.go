package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/channels"
	"github.com/twofactor/twofactor/notify/channels/outbox"
	"github.com/twofactor/twofactor/notify/channels/telegram"
	"github.com/twofactor/twofactor/notify/tglink"
)

const tgToken = "424242:telegram-token-do-not-log"

// botAPI speaks the Bot API: getUpdates hands out queued updates once (honouring the
// offset), sendMessage records what was sent to which chat.
type botAPI struct {
	mu      sync.Mutex
	pending []string
	sent    []string // "<chat>: <text>"
	srv     *httptest.Server
}

func newBotAPI(t *testing.T) *botAPI {
	b := &botAPI{}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		var req map[string]any
		_ = json.NewDecoder(r.Body).Decode(&req)
		b.mu.Lock()
		defer b.mu.Unlock()
		switch r.URL.Path {
		case "/bot" + tgToken + "/getUpdates":
			ups := b.pending
			b.pending = nil
			if len(ups) == 0 {
				b.mu.Unlock()
				time.Sleep(20 * time.Millisecond) // a short long-poll
				b.mu.Lock()
			}
			_, _ = fmt.Fprintf(w, `{"ok":true,"result":[%s]}`, strings.Join(ups, ","))
		case "/bot" + tgToken + "/sendMessage":
			b.sent = append(b.sent, fmt.Sprint(req["chat_id"])+": "+fmt.Sprint(req["text"]))
			_, _ = w.Write([]byte(`{"ok":true,"result":{"message_id":1}}`))
		default:
			w.WriteHeader(401)
			_, _ = w.Write([]byte(`{"ok":false,"error_code":401,"description":"Unauthorized"}`))
		}
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *botAPI) push(id int64, chat int64, kind, text string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pending = append(b.pending, fmt.Sprintf(`{"update_id":%d,"message":{"message_id":9,"chat":{"id":%d,"type":%q},"date":1772366400,"text":%q}}`, id, chat, kind, text))
}

func (b *botAPI) replies() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.sent...)
}

// A user opens the deep link and presses Start: notifyd publishes the binding sealed,
// authd's durable subscription (started later, as after a restart) receives token and
// chat id, the chat gets an answer; a group chat and a bad token are answered and not
// bound; the code is then sent to the bound chat.
func TestTelegramBinding(t *testing.T) {
	e := newEnv(t)
	api := newBotAPI(t)
	bot, err := telegram.New(telegram.Config{BaseURL: api.srv.URL, Token: tgToken, PollTimeout: time.Second, ConflictWait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e.start(t, map[string]channels.Sender{notify.ChannelTelegram: bot}, func(o *Options) {
		o.Telegram, o.TelegramPoll = bot, true
	})
	token := tglink.NewToken()
	api.push(500, -100777, "group", "/start "+tglink.NewToken())
	api.push(501, 31337, "private", "/start not*valid")
	api.push(502, 31337, "private", "/start "+token)
	waitFor(t, func() bool { return len(api.replies()) == 3 })

	type binding struct{ token, chat string }
	got := make(chan binding, 4)
	stop, err := notify.SubscribeTelegramBindings(context.Background(), e.js, e.names, e.key,
		func(_ context.Context, tok, chat string) error { got <- binding{tok, chat}; return nil }, notify.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	select {
	case b := <-got:
		if b.token != token || b.chat != "31337" {
			t.Fatalf("binding %+v", b)
		}
	case <-time.After(waitLimit):
		t.Fatal("no binding reached authd")
	}
	select {
	case b := <-got:
		t.Fatalf("second binding %+v (group chat or bad token bound)", b)
	case <-time.After(100 * time.Millisecond):
	}
	r := api.replies()
	if r[0] != "-100777: "+replyPrivate || r[1] != "31337: "+replyInvalid || r[2] != "31337: "+replyBound {
		t.Fatalf("replies %q", r)
	}
	e.publish(t, "ch-tg", notify.ChannelTelegram, "31337", "246810")
	e.expect(t, notify.OutcomeDelivered)
	if r := api.replies(); len(r) != 4 || !strings.HasPrefix(r[3], "31337: Your sign-in code is 246810.") {
		t.Fatalf("code message %q", r)
	}
	assertNoSecrets(t, e, token, tgToken, "246810")
}

// Development without a bot: a simulated Start publishes the same sealed binding the
// update receiver does, and the bot's answer is written to the outbox; a daemon
// with a bot refuses to simulate.
func TestSimulateTelegramStart(t *testing.T) {
	e := newEnv(t)
	dir := filepath.Join(t.TempDir(), "outbox")
	ob, err := outbox.New(outbox.Config{Dir: dir, Logger: e.log})
	if err != nil {
		t.Fatal(err)
	}
	d := e.start(t, map[string]channels.Sender{notify.ChannelTelegram: ob}, func(o *Options) { o.TelegramReplies = ob })
	token := tglink.NewToken()
	if err := d.SimulateTelegramStart(context.Background(), token, "100000001"); err != nil {
		t.Fatal(err)
	}
	got := make(chan [2]string, 1)
	stop, err := notify.SubscribeTelegramBindings(context.Background(), e.js, e.names, e.key,
		func(_ context.Context, tok, chat string) error { got <- [2]string{tok, chat}; return nil }, notify.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	select {
	case b := <-got:
		if b != [2]string{token, "100000001"} {
			t.Fatalf("binding %q", b)
		}
	case <-time.After(waitLimit):
		t.Fatal("no binding reached authd")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*-telegram-tgreply-*.txt"))
	if len(files) != 1 {
		t.Fatalf("outbox replies %v", files)
	}
	if b, _ := os.ReadFile(files[0]); !strings.Contains(string(b), "To: 100000001\n") || !strings.Contains(string(b), replyBound) {
		t.Fatalf("reply file:\n%s", b)
	}
	api := newBotAPI(t)
	bot, err := telegram.New(telegram.Config{BaseURL: api.srv.URL, Token: tgToken})
	if err != nil {
		t.Fatal(err)
	}
	withBot := e.start(t, nil, func(o *Options) { o.Telegram = bot })
	if err := withBot.SimulateTelegramStart(context.Background(), token, "100000001"); err == nil {
		t.Fatal("a daemon with a bot simulated a Start")
	}
}

// The binding event carries token and chat id only sealed.
func TestTelegramBindingSealed(t *testing.T) {
	e := newEnv(t)
	token := tglink.NewToken()
	b := notify.TelegramBinding{UpdateID: 9, Time: t0, Token: token, ChatID: "55501"}
	if err := notify.PublishTelegramBinding(context.Background(), e.js, e.names, e.key, b); err != nil {
		t.Fatal(err)
	}
	s, err := e.js.Stream(context.Background(), e.names.BindingStream())
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(context.Background(), e.names.TelegramBound())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(m.Data), token) || strings.Contains(string(m.Data), "55501") {
		t.Fatalf("binding in clear: %s", m.Data)
	}
	got, err := notify.OpenTelegramBinding(e.key, m.Data)
	if err != nil || got.Token != token || got.ChatID != "55501" || got.UpdateID != 9 {
		t.Fatalf("opened %+v, %v", got, err)
	}
	other, _ := notify.GenerateDeliveryKey()
	if _, err := notify.OpenTelegramBinding(other, m.Data); err == nil {
		t.Fatal("opened with another key")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met before the deadline")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
