package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/twofactor/twofactor/notify"
)

// sentCode is a code as the messages write it: 6 to 10 digits on their own.
var sentCode = regexp.MustCompile(`\b(\d{6,10})\b`)

func codeIn(t *testing.T, where, body string) string {
	t.Helper()
	m := sentCode.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no code in %s:\n%s", where, body)
	}
	return m[1]
}

// nextMail waits for mail number seen+1 to `to` in Mailpit (its HTTP API) and
// returns the newest one's text.
func (tp *topology) nextMail(t *testing.T, to string, seen int) string {
	t.Helper()
	var ids []string
	waitFor(t, fmt.Sprintf("mail %d to %s", seen+1, to), 15*time.Second, func() error {
		var list struct {
			Messages []struct {
				ID string `json:"ID"`
				To []struct {
					Address string `json:"Address"`
				} `json:"To"`
			} `json:"messages"`
		}
		if err := getJSON(tp.mailAPI+"/api/v1/messages", &list); err != nil {
			return err
		}
		ids = ids[:0]
		for _, m := range list.Messages { // newest first
			if len(m.To) > 0 && m.To[0].Address == to {
				ids = append(ids, m.ID)
			}
		}
		if len(ids) <= seen {
			return fmt.Errorf("%d mails to %s", len(ids), to)
		}
		return nil
	})
	var m struct {
		Text string `json:"Text"`
	}
	if err := getJSON(tp.mailAPI+"/api/v1/message/"+ids[0], &m); err != nil {
		t.Fatal(err)
	}
	return m.Text
}

// nextOutbox waits for message number seen+1 to `to` in the development
// outboxes of the notifyd workers (whichever delivered it) and returns the
// newest one's text. File names start with the time in nanoseconds.
func (tp *topology) nextOutbox(t *testing.T, to string, seen int) string {
	t.Helper()
	type msg struct{ name, body string }
	var got []msg
	waitFor(t, fmt.Sprintf("outbox message %d to %s", seen+1, to), 15*time.Second, func() error {
		got = got[:0]
		for _, dir := range tp.outboxes {
			files, _ := filepath.Glob(filepath.Join(dir, "*.txt"))
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err == nil && strings.Contains(string(b), "To: "+to+"\n") {
					got = append(got, msg{filepath.Base(f), string(b)})
				}
			}
		}
		if len(got) <= seen {
			return fmt.Errorf("%d messages to %s in %v", len(got), to, tp.outboxes)
		}
		return nil
	})
	slices.SortFunc(got, func(a, b msg) int { return strings.Compare(b.name, a.name) })
	// The text follows the header lines (To, Channel, Challenge id, ...), whose
	// ids may hold digits.
	_, text, _ := strings.Cut(got[0].body, "\n\n")
	return text
}

// codeFactor adds a code destination on the account page, confirmed with the
// code read by read (the enrollment's message is number 0), then signs in with
// a second code sent by the sign-in page.
func (f *flows) codeFactor(t *testing.T, method, dest string, read func(seen int) string) {
	tb := f.tab(t, false)
	u := user(method)
	tb.signIn(u)
	tb.waitBody("Account of " + u)
	tb.do(chromedp.SetValue(chromedp.CSS("#code-method"), method))
	tb.enter("#code-destination", dest, chromedp.Submit(chromedp.CSS("#code-destination")))
	tb.waitBody("code was sent to")
	code := codeIn(t, "the enrollment's message", read(0))
	tb.enter("#enroll-code", code, chromedp.Submit(chromedp.CSS("#enroll-code")))
	tb.waitBody("Added: codes can be sent there")
	tb.signOut()

	tb.signIn(u)
	tb.do(chromedp.WaitVisible(chromedp.CSS("#"+method+"-send")), chromedp.Click(chromedp.CSS("#"+method+"-send")))
	tb.waitBody("code was sent to")
	login := codeIn(t, "the login's message", read(1))
	if login == code {
		t.Fatal("the login's code is the enrollment's")
	}
	tb.enter("#"+method+"-code", login, chromedp.Submit(chromedp.CSS("#"+method+"-code")))
	tb.waitBody("Account of " + u)
}

// An email code: the mails are read from Mailpit, where notifyd's SMTP sent them.
func (f *flows) emailCode(t *testing.T) {
	to := "e2e-" + randomHex(4) + "@example.com"
	f.codeFactor(t, "email", to, func(seen int) string { return f.tp.nextMail(t, to, seen) })
}

// An SMS or Signal code: the messages are read from the development outbox of
// the notifyd that delivered them (no SMS or Signal provider configured).
func (f *flows) phoneCode(method string) func(t *testing.T) {
	return func(t *testing.T) {
		phone := fmt.Sprintf("+4915123%06d", time.Now().UnixNano()%1000000)
		f.codeFactor(t, method, phone, func(seen int) string { return f.tp.nextOutbox(t, phone, seen) })
	}
}

// e2eTelegramBot is the bot the replicas' deep links name; no bot answers it.
const e2eTelegramBot = "TwofactorE2EBot"

// A Telegram chat linked from the account page: the page shows the deep link and
// polls; the test plays Telegram and notifyd's update receiver by publishing the
// sealed binding of a /start from a private chat (notify.PublishTelegramBinding,
// what notifyd publishes), the page moves on once a replica has bound the chat,
// and the login's code reaches that chat (a notifyd's outbox).
func (f *flows) telegramCode(t *testing.T) {
	tb := f.tab(t, false)
	u := user("telegram")
	tb.signIn(u)
	tb.waitBody("Account of " + u)
	tb.do(chromedp.Click(chromedp.CSS("#telegram-add")))
	tb.waitBody("press Start")
	link := tb.text("#telegram-link")
	token, ok := strings.CutPrefix(link, "https://t.me/"+e2eTelegramBot+"?start=")
	if !ok {
		t.Fatalf("link %q", link)
	}
	chat := fmt.Sprintf("77%08d", time.Now().UnixNano()%100000000)
	f.tp.publishStart(t, token, chat)
	tb.waitBody("Added: codes can be sent there")
	tb.signOut()

	tb.signIn(u)
	tb.do(chromedp.WaitVisible(chromedp.CSS("#telegram-send")), chromedp.Click(chromedp.CSS("#telegram-send")))
	tb.waitBody("code was sent to")
	login := codeIn(t, "the login's message", f.tp.nextOutbox(t, chat, 0))
	tb.enter("#telegram-code", login, chromedp.Submit(chromedp.CSS("#telegram-code")))
	tb.waitBody("Account of " + u)
}

// publishStart publishes what notifyd's update receiver publishes for
// "/start <token>" from the private chat chat, sealed under the shared delivery key.
func (tp *topology) publishStart(t *testing.T, token, chat string) {
	t.Helper()
	key, err := notify.LoadDeliveryKey(filepath.Join(tp.dataDir, "delivery.key"))
	if err != nil {
		t.Fatal(err)
	}
	names, err := notify.NewNames(tp.prefix)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(tp.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	b := notify.TelegramBinding{UpdateID: time.Now().UnixNano() >> 8, Time: time.Now(), Token: token, ChatID: chat}
	if err := notify.PublishTelegramBinding(context.Background(), js, names, key, b); err != nil {
		t.Fatal(err)
	}
}
