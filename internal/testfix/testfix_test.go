package testfix

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
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

func TestClock(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	c := NewClock(t0)
	if got := c.Now(); !got.Equal(t0) {
		t.Fatalf("Now = %v, want %v", got, t0)
	}
	c.Advance(90 * time.Second)
	if got := c.Now(); !got.Equal(t0.Add(90 * time.Second)) {
		t.Fatalf("after Advance: %v", got)
	}
	c.Set(t0)
	if got := c.Now(); !got.Equal(t0) {
		t.Fatalf("after Set: %v", got)
	}
}

func TestAtOnce(t *testing.T) {
	// Each call waits until all four have started: AtOnce runs them together
	// (run one after the other, the first would wait forever).
	var started sync.WaitGroup
	started.Add(4)
	errs := AtOnce(4, func(i int) error {
		started.Done()
		started.Wait()
		if i == 2 {
			return errors.New("two")
		}
		return nil
	})
	if len(errs) != 4 || errs[2] == nil || errs[2].Error() != "two" || errs[0] != nil || errs[1] != nil || errs[3] != nil {
		t.Fatalf("errors %v, want only the third", errs)
	}
}
