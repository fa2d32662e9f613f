package main

import (
	"context"
	"os"
	"time"
)

// fileStamp is what tells a rewritten file from the one read before.
type fileStamp struct {
	mod  time.Time
	size int64
}

// fileWatch remembers the stamp of a file at its last look.
type fileWatch struct {
	path string
	last fileStamp
}

func newFileWatch(path string) *fileWatch {
	w := &fileWatch{path: path}
	w.changed()
	return w
}

// changed looks at the file once and tells whether its modification time or
// size differs from the last look. A missing file is not a change.
func (w *fileWatch) changed() bool {
	fi, err := os.Stat(w.path)
	if err != nil {
		return false
	}
	now := fileStamp{fi.ModTime(), fi.Size()}
	if now == w.last {
		return false
	}
	w.last = now
	return true
}

// watchFile calls reload each time path changes, looking on every tick, until
// ctx ends. It lets `go run ./cmd/authd` pick up `authd apikey add` without a
// signal (under go run, a SIGHUP reaches the go command, not authd).
func watchFile(ctx context.Context, path string, tick <-chan time.Time, reload func()) {
	w := newFileWatch(path)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			if w.changed() {
				reload()
			}
		}
	}
}
