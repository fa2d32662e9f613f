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

func stamp(path string) (fileStamp, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, false
	}
	return fileStamp{fi.ModTime(), fi.Size()}, true
}

// watchFile calls changed each time path's modification time or size differs
// from the last look, checking every tick, until ctx ends. It lets `go run
// ./cmd/authd` pick up `authd apikey add` without a signal (under go run, SIGHUP
// reaches the go command, not authd). A missing file is not a change.
func watchFile(ctx context.Context, path string, tick <-chan time.Time, changed func()) {
	last, _ := stamp(path)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
		now, ok := stamp(path)
		if ok && now != last {
			last = now
			changed()
		}
	}
}
