package bench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// ProcessPeakRSS returns a function reading a local process's peak resident set
// in bytes, VmHWM of /proc/PID/status (Linux): the most memory it has held at
// once since it started. It fails at once if the file cannot be read or parsed.
func ProcessPeakRSS(pid int) (func() int64, error) {
	path := fmt.Sprintf("/proc/%d/status", pid)
	if _, err := PeakRSS(path); err != nil {
		return nil, err
	}
	return func() int64 { n, _ := PeakRSS(path); return n }, nil
}

// PeakRSS reads the VmHWM line ("VmHWM:\t  123456 kB") of a /proc/PID/status
// file, in bytes.
func PeakRSS(path string) (int64, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for line := range bytes.SplitSeq(raw, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, []byte("VmHWM:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			break
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil || kb < 0 {
			break
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("%s: no VmHWM line in kB", path)
}
