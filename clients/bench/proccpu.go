package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// ProcessCPU returns a function reading the CPU time (user + system) a local
// process has used so far, from /proc/PID/stat (Linux), so that a run can report
// the server's CPU per request: a figure other load on a shared machine disturbs
// far less than requests per second.
func ProcessCPU(pid int) (func() time.Duration, error) {
	path := fmt.Sprintf("/proc/%d/stat", pid)
	read := func() (time.Duration, error) {
		raw, err := os.ReadFile(path)
		if err != nil {
			return 0, err
		}
		// Fields after the command name, which is in parentheses and may hold spaces.
		s := string(raw)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			return 0, fmt.Errorf("%s: unexpected format", path)
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 13 {
			return 0, fmt.Errorf("%s: unexpected format", path)
		}
		// utime and stime are fields 14 and 15 of the line, in clock ticks (100 Hz
		// on Linux for every architecture Go supports).
		u, err1 := strconv.ParseInt(f[11], 10, 64)
		st, err2 := strconv.ParseInt(f[12], 10, 64)
		if err1 != nil || err2 != nil {
			return 0, fmt.Errorf("%s: unexpected format", path)
		}
		return time.Duration(u+st) * 10 * time.Millisecond, nil
	}
	if _, err := read(); err != nil {
		return nil, err
	}
	return func() time.Duration { d, _ := read(); return d }, nil
}
