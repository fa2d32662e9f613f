// Package testfix holds the test fixtures several packages' tests share. It is
// imported only by _test.go files.
package testfix

import (
	"bytes"
	"log/slog"
	"sync"
)

// LogBuffer collects log output written from concurrent goroutines, so that a test
// can read what was logged (String) while servers still write. The zero value is
// ready.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Logger is a JSON logger at debug level writing to l: every line a secret could
// hide in reaches the buffer.
func (l *LogBuffer) Logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
