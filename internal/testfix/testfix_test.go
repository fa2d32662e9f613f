package testfix

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
)

// Concurrent writers each land whole, and the logger writes JSON at debug level.
func TestLogBuffer(t *testing.T) {
	var l LogBuffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.Logger().Debug("line", "n", i)
			_ = l.String()
		}()
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSpace(l.String()), "\n")
	if len(lines) != 8 {
		t.Fatalf("%d lines, want 8:\n%s", len(lines), l.String())
	}
	for _, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil || m["level"] != "DEBUG" || m["msg"] != "line" {
			t.Errorf("line %q: %v, want a JSON debug record", line, err)
		}
	}
}
