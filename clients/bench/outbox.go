package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/fsnotify/fsnotify"
)

// outboxWatcher hands the codes that authd's development outbox receives (one
// file per message, notify/channels/outbox) to the logins waiting for them, by
// destination: the file names the code's own id, not the challenge's, and each
// bench user has an address of its own and one login at a time. It watches the
// folder with inotify (fsnotify), and removes every file it has read: the outbox
// holds codes in clear.
type outboxWatcher struct {
	dir string
	w   *fsnotify.Watcher
	mu  sync.Mutex
	// waiting are the logins waiting, arrived the codes no one waited for yet
	// (notifyd may write a message before BeginChallenge has answered).
	waiting map[string]chan string
	arrived map[string]string
	done    chan struct{}
}

func watchOutbox(dir string) (*outboxWatcher, error) {
	if dir == "" {
		return nil, errors.New("the development outbox folder is not set (-outbox-dir; authd's <data-dir>/outbox)")
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	if err := w.Add(dir); err != nil {
		w.Close()
		return nil, fmt.Errorf("watch outbox: %w", err)
	}
	o := &outboxWatcher{dir: dir, w: w, waiting: map[string]chan string{}, arrived: map[string]string{}, done: make(chan struct{})}
	go o.loop()
	return o, nil
}

func (o *outboxWatcher) loop() {
	defer close(o.done)
	for ev := range o.w.Events {
		// A message appears whole under its name (linked from a temporary
		// file, whose name read ignores); Write is kept for an outbox that
		// creates the file and then writes it.
		if ev.Has(fsnotify.Create) || ev.Has(fsnotify.Write) {
			o.read(ev.Name)
		}
	}
}

// read delivers the code of a complete message file and removes the file.
func (o *outboxWatcher) read(path string) {
	if _, _, ok := parseOutboxName(filepath.Base(path)); !ok {
		return
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return
	}
	id, code, ok := parseOutboxMessage(raw)
	if !ok {
		return // not written yet: its Write event follows
	}
	_ = os.Remove(path)
	o.mu.Lock()
	defer o.mu.Unlock()
	if ch, ok := o.waiting[id]; ok {
		delete(o.waiting, id)
		ch <- code
		return
	}
	o.arrived[id] = code
}

// forget drops a message to id that no one waited for: call it before asking
// for a new code, so that a late message of an earlier login is not taken for it.
func (o *outboxWatcher) forget(id string) {
	o.mu.Lock()
	delete(o.arrived, id)
	o.mu.Unlock()
}

// code waits for the code of the next message to id (a destination).
func (o *outboxWatcher) code(ctx context.Context, id string) (string, error) {
	o.mu.Lock()
	if c, ok := o.arrived[id]; ok {
		delete(o.arrived, id)
		o.mu.Unlock()
		return c, nil
	}
	ch := make(chan string, 1)
	o.waiting[id] = ch
	o.mu.Unlock()
	select {
	case c := <-ch:
		return c, nil
	case <-ctx.Done():
		o.mu.Lock()
		delete(o.waiting, id)
		o.mu.Unlock()
		return "", unexpected("no message in the outbox: " + context.Cause(ctx).Error())
	}
}

func (o *outboxWatcher) close() {
	o.w.Close()
	<-o.done
}

// parseOutboxName splits an outbox file name, <unix nanos>-<channel>-<message id>.txt.
func parseOutboxName(name string) (channel, id string, ok bool) {
	rest, ok := strings.CutSuffix(name, ".txt")
	if !ok {
		return "", "", false
	}
	nanos, rest, ok1 := strings.Cut(rest, "-")
	channel, id, ok2 := strings.Cut(rest, "-")
	if !ok1 || !ok2 || nanos == "" || strings.Trim(nanos, "0123456789") != "" || channel == "" || id == "" {
		return "", "", false
	}
	return channel, id, true
}

var outboxCode = regexp.MustCompile(`\b(\d{6,10})\b`)

// parseOutboxMessage returns the destination and code of a complete outbox
// message: its header names the destination ("To: ") and the message id, a
// blank line ends the header, and the text, which holds the code, ends with a
// newline.
func parseOutboxMessage(raw []byte) (to, code string, ok bool) {
	head, body, ok := strings.Cut(string(raw), "\n\n")
	if !ok || !strings.HasSuffix(body, "\n") || !strings.Contains("\n"+head, "\nChallenge: ") {
		return "", "", false
	}
	for line := range strings.SplitSeq(head, "\n") {
		if v, ok := strings.CutPrefix(line, "To: "); ok {
			to = v
		}
	}
	m := outboxCode.FindStringSubmatch(body)
	if to == "" || m == nil {
		return "", "", false
	}
	return to, m[1], true
}
