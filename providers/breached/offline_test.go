package breached

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

const millionLines = 1_000_000

type listEntry struct {
	sum   [sha1.Size]byte
	count int64
}

var (
	millionOnce   sync.Once
	millionSorted []listEntry // sorted by hash
	millionCounts []int64     // count of "pw-<i>"
)

// million returns SHA-1("pw-<i>") for i < 1,000,000 with seeded random
// counts, sorted by hash, computed once per test binary.
func million() ([]listEntry, []int64) {
	millionOnce.Do(func() {
		r := rand.New(rand.NewPCG(1, 2))
		millionSorted = make([]listEntry, millionLines)
		millionCounts = make([]int64, millionLines)
		buf := make([]byte, 0, 16)
		for i := range millionLines {
			buf = strconv.AppendInt(append(buf[:0], "pw-"...), int64(i), 10)
			c := 1 + r.Int64N(100_000)
			millionSorted[i] = listEntry{sha1.Sum(buf), c}
			millionCounts[i] = c
		}
		slices.SortFunc(millionSorted, func(a, b listEntry) int { return bytes.Compare(a.sum[:], b.sum[:]) })
	})
	return millionSorted, millionCounts
}

// writeList writes entries as the "ordered by hash" file with the given line
// ending and returns its path.
func writeList(tb testing.TB, dir string, entries []listEntry, eol string, finalEOL bool) string {
	tb.Helper()
	path := filepath.Join(dir, fmt.Sprintf("pwned-passwords-sha1-ordered-by-hash-%d.txt", len(eol)))
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	line := make([]byte, 0, maxListLine)
	for i := range entries {
		h := hexUpper(&entries[i].sum)
		line = append(append(line[:0], h[:]...), ':')
		line = strconv.AppendInt(line, entries[i].count, 10)
		if finalEOL || i < len(entries)-1 {
			line = append(line, eol...)
		}
		_, _ = w.Write(line)
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return path
}

func openList(tb testing.TB, path string) *OfflineList {
	tb.Helper()
	l, err := OpenOffline(path)
	if err != nil {
		tb.Fatalf("OpenOffline: %v", err)
	}
	tb.Cleanup(func() { l.Close() })
	return l
}

func TestOfflineMillion(t *testing.T) {
	sorted, counts := million()
	dir := t.TempDir()
	for _, v := range []struct {
		name     string
		eol      string
		finalEOL bool
	}{{"CRLF", "\r\n", true}, {"LF", "\n", true}, {"LF without final line break", "\n", false}} {
		t.Run(v.name, func(t *testing.T) {
			path := writeList(t, dir, sorted, v.eol, v.finalEOL)
			l := openList(t, path)
			ctx := context.Background()
			hexOfSum := func(s [sha1.Size]byte) string { h := hexUpper(&s); return string(h[:]) }

			// Found: a spread of passwords, plus the first and last lines.
			r := rand.New(rand.NewPCG(3, 4))
			for range 2000 {
				i := r.IntN(millionLines)
				got, err := l.Check(ctx, "pw-"+strconv.Itoa(i))
				want := Result{Breached: true, Count: counts[i], Checked: true, Source: SourceOffline}
				if err != nil || got != want {
					t.Fatalf("Check(pw-%d) = %+v, %v; want %+v", i, got, err, want)
				}
			}
			for _, e := range []listEntry{sorted[0], sorted[1], sorted[len(sorted)/2], sorted[len(sorted)-2], sorted[len(sorted)-1]} {
				for _, d := range []string{hexOfSum(e.sum), strings.ToLower(hexOfSum(e.sum))} {
					got, err := l.CheckSHA1(ctx, d)
					if err != nil || !got.Breached || got.Count != e.count {
						t.Fatalf("CheckSHA1(%s) = %+v, %v; want count %d", d, got, err, e.count)
					}
				}
			}

			// Not found: other passwords, digests below the first and above
			// the last line, and neighbours of present digests.
			for i := millionLines; i < millionLines+2000; i++ {
				got, err := l.Check(ctx, "pw-"+strconv.Itoa(i))
				if err != nil || got != (Result{Checked: true, Source: SourceOffline}) {
					t.Fatalf("Check(pw-%d) = %+v, %v; want not breached", i, got, err)
				}
			}
			neighbours := []string{strings.Repeat("0", 40), strings.Repeat("F", 40)}
			for _, e := range []listEntry{sorted[0], sorted[12345], sorted[len(sorted)-1]} {
				up, down := e.sum, e.sum
				up[19]++
				down[19]--
				neighbours = append(neighbours, hexOfSum(up), hexOfSum(down))
			}
			for _, d := range neighbours {
				if _, found := slices.BinarySearchFunc(sorted, d, func(e listEntry, d string) int { return strings.Compare(hexOfSum(e.sum), d) }); found {
					continue
				}
				got, err := l.CheckSHA1(ctx, d)
				if err != nil || got.Breached || !got.Checked {
					t.Fatalf("CheckSHA1(%s) = %+v, %v; want not breached", d, got, err)
				}
			}
		})
	}
}

func TestOfflineSmallFiles(t *testing.T) {
	a := "0000000A1B2C3D4E5F60718293A4B5C6D7E8F900"
	b := hexOf("password")
	c := "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"
	tests := []struct {
		name    string
		content string
		want    map[string]int64 // digest -> count; absent digests checked as not found
	}{
		{"one line LF", b + ":52256179\n", map[string]int64{b: 52256179}},
		{"one line CRLF", b + ":52256179\r\n", map[string]int64{b: 52256179}},
		{"one line no break", b + ":52256179", map[string]int64{b: 52256179}},
		{"three lines", a + ":1\r\n" + b + ":2\r\n" + c + ":3\r\n", map[string]int64{a: 1, b: 2, c: 3}},
		{"three lines no break", a + ":1\n" + b + ":2\n" + c + ":3", map[string]int64{a: 1, b: 2, c: 3}},
		{"final blank line", a + ":1\r\n" + c + ":3\r\n\r\n", map[string]int64{a: 1, c: 3}},
		{"count zero", a + ":0\n" + b + ":5\n", map[string]int64{a: 0, b: 5}},
		{"big count", a + ":9223372036854775807\n", map[string]int64{a: 9223372036854775807}},
	}
	absent := []string{strings.Repeat("0", 40), "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD7", "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD9", "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFE"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "list.txt")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			l := openList(t, path)
			for d, n := range tt.want {
				got, err := l.CheckSHA1(context.Background(), d)
				if err != nil || got.Count != n || got.Breached != (n > 0) || !got.Checked {
					t.Errorf("CheckSHA1(%s) = %+v, %v; want count %d", d, got, err, n)
				}
			}
			for _, d := range absent {
				if _, ok := tt.want[d]; ok {
					continue
				}
				got, err := l.CheckSHA1(context.Background(), d)
				if err != nil || got.Breached || !got.Checked {
					t.Errorf("CheckSHA1(%s) = %+v, %v; want not breached", d, got, err)
				}
			}
		})
	}
}

func TestOpenOfflineRejects(t *testing.T) {
	a := "0000000A1B2C3D4E5F60718293A4B5C6D7E8F900"
	c := "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"
	tests := []struct {
		name    string
		content string
	}{
		{"empty", ""},
		{"blank line", "\r\n"},
		{"range response", "1E4C9B93F3F0682250B6CF8331B7EE68FD8:1\r\n"},
		{"lower-case", strings.ToLower(c) + ":1\n"},
		{"NTLM-ish with spaces", a + " : 1\n"},
		{"no count", a + ":\n"},
		{"leading zero count", a + ":01\n"},
		{"bad last line", a + ":1\n" + c + ":x\n"},
		{"descending", c + ":1\n" + a + ":1\n"},
		{"binary", string(bytes.Repeat([]byte{0xFF, 0x00}, 500))},
		{"7z header", "7z\xbc\xaf\x27\x1c\x00\x04" + strings.Repeat("\x00", 200)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "list.txt")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			l, err := OpenOffline(path)
			if err == nil {
				l.Close()
				t.Fatal("OpenOffline succeeded")
			}
			if !errors.Is(err, ErrMalformedList) {
				t.Errorf("err = %v, want ErrMalformedList", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("err %q does not name the file", err)
			}
		})
	}
	if _, err := OpenOffline(filepath.Join(t.TempDir(), "missing.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v", err)
	}
	if _, err := OpenOffline(t.TempDir()); err == nil {
		t.Error("directory accepted")
	}
}

func TestOfflineCorruptMiddle(t *testing.T) {
	// Open checks only the ends; a corrupt line met during a search is an
	// error, never a silent "not breached".
	var lines []string
	for i := range 64 {
		lines = append(lines, fmt.Sprintf("%02X%038d:%d", i*4, 0, i+1))
	}
	lines[32] = "8G" + lines[32][2:] // not hex
	path := filepath.Join(t.TempDir(), "list.txt")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l := openList(t, path)
	_, err := l.CheckSHA1(context.Background(), fmt.Sprintf("%02X%038d", 32*4, 0))
	if !errors.Is(err, ErrMalformedList) {
		t.Fatalf("err = %v, want ErrMalformedList", err)
	}
	if got, err := l.CheckSHA1(context.Background(), fmt.Sprintf("%02X%038d", 0, 0)); err != nil || got.Count != 1 {
		t.Fatalf("first line: %+v, %v", got, err)
	}
	if _, err := l.CheckSHA1(context.Background(), "nope"); !errors.Is(err, ErrInvalidDigest) {
		t.Fatalf("invalid digest: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Check(ctx, "x"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

// FuzzOfflineSearch feeds arbitrary files to the binary search: it must end,
// never panic, and report a count only if the file holds that exact line.
func FuzzOfflineSearch(f *testing.F) {
	a := "0000000A1B2C3D4E5F60718293A4B5C6D7E8F900"
	f.Add([]byte(a+":1\r\n"+hexOf("password")+":2\r\n"), hexOf("password"))
	f.Add([]byte(a+":1\n\n"+a+":2"), a)
	f.Add([]byte(strings.Repeat("\n", 300)), a)
	f.Add([]byte(strings.Repeat("0", 40)+":01"), strings.Repeat("0", 40)) // found by fuzzing
	f.Add([]byte(a+":1\n"+strings.Repeat("A", 200)+"\n"), strings.Repeat("B", 40))
	f.Fuzz(func(t *testing.T, data []byte, digest string) {
		l := &OfflineList{r: bytes.NewReader(data), size: int64(len(data))}
		_ = l.validate()
		sum, err := parseDigest(digest)
		if err != nil {
			return
		}
		target := hexUpper(&sum)
		count, err := l.search(&target)
		if err != nil {
			if !errors.Is(err, ErrMalformedList) {
				t.Fatalf("error %v does not wrap ErrMalformedList", err)
			}
			return
		}
		if count > 0 {
			line := fmt.Sprintf("%s:%d", target[:], count)
			if !bytes.Contains(data, []byte(line)) {
				t.Fatalf("count %d reported but the file has no line %q", count, line)
			}
		}
	})
}

func BenchmarkOfflineCheck(b *testing.B) {
	sorted, _ := million()
	l := openList(b, writeList(b, b.TempDir(), sorted, "\r\n", true))
	ctx := context.Background()
	passwords := make([]string, 1024)
	for i := range passwords {
		passwords[i] = "pw-" + strconv.Itoa(i*977) // found
		if i%2 == 1 {
			passwords[i] = "other-" + strconv.Itoa(i) // not found
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := l.Check(ctx, passwords[i%len(passwords)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
