package breached

import (
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"os"
)

// maxListLine bounds a line of the offline list: 40 hex digits, a colon, at
// most 19 count digits and CRLF.
const maxListLine = digestLen + 1 + 19 + 2

// lineBufLen holds the end of one line and the whole next one.
const lineBufLen = 2*maxListLine + 2

// OfflineList answers from a local copy of the Pwned Passwords list "ordered
// by hash": lines "SHA1:COUNT" with 40 upper-case hex digits, sorted, ending
// in CRLF or LF. Lookups binary-search the file through ReadAt and never load
// it into memory: about log2(size/45) reads of a few hundred bytes each. It is
// safe for concurrent use.
type OfflineList struct {
	r    io.ReaderAt
	c    io.Closer
	size int64
}

var _ Checker = (*OfflineList)(nil)

// OpenOffline opens the list at path and checks that it looks right: its
// first and last lines parse and are in order.
func OpenOffline(path string) (*OfflineList, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("breached: opening offline list: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("breached: offline list %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("breached: offline list %s: not a regular file", path)
	}
	l := &OfflineList{r: f, c: f, size: st.Size()}
	if err := l.validate(); err != nil {
		f.Close()
		return nil, fmt.Errorf("breached: offline list %s: %w", path, err)
	}
	return l, nil
}

// Close closes the file.
func (l *OfflineList) Close() error { return l.c.Close() }

// validate checks the first and the last line.
func (l *OfflineList) validate() error {
	first, err := l.lineAtOrAfter(0, make([]byte, lineBufLen))
	if err != nil {
		return err
	}
	if first.start >= l.size {
		return fmt.Errorf("%w: empty file", ErrMalformedList)
	}
	// The last line starts after the last line break that is not the final
	// byte(s) of the file.
	tail := max(0, l.size-2*maxListLine)
	buf := make([]byte, l.size-tail)
	if _, err := l.r.ReadAt(buf, tail); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("reading the last line: %w", err)
	}
	trimmed := bytes.TrimSuffix(bytes.TrimSuffix(buf, []byte("\n")), []byte("\r"))
	start := int64(0)
	if i := bytes.LastIndexByte(trimmed, '\n'); i >= 0 {
		start = tail + int64(i) + 1
	} else if tail > 0 {
		return fmt.Errorf("%w: last line longer than %d bytes", ErrMalformedList, maxListLine)
	}
	last, err := l.lineAtOrAfter(start, make([]byte, lineBufLen))
	if err != nil {
		return err
	}
	if last.start < l.size && bytes.Compare(first.hash[:], last.hash[:]) > 0 {
		return fmt.Errorf("%w: first and last lines are not in ascending order", ErrMalformedList)
	}
	return nil
}

// Check hashes password with SHA-1 and looks it up.
func (l *OfflineList) Check(ctx context.Context, password string) (Result, error) {
	sum := sha1.Sum([]byte(password))
	return l.check(ctx, &sum)
}

// CheckSHA1 looks up a password given as its 40-digit hex SHA-1 digest
// (upper or lower case).
func (l *OfflineList) CheckSHA1(ctx context.Context, hexDigest string) (Result, error) {
	sum, err := parseDigest(hexDigest)
	if err != nil {
		return Result{Source: SourceOffline}, err
	}
	return l.check(ctx, &sum)
}

func (l *OfflineList) check(ctx context.Context, sum *[sha1.Size]byte) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{Source: SourceOffline}, err
	}
	target := hexUpper(sum)
	count, err := l.search(&target)
	if err != nil {
		return Result{Source: SourceOffline}, err
	}
	return Result{Breached: count > 0, Count: count, Checked: true, Source: SourceOffline}, nil
}

// search binary-searches byte offsets. Invariants: lo is the start of a line
// and every line starting before lo sorts below target; no line starting at
// or after hi equals target.
func (l *OfflineList) search(target *[digestLen]byte) (int64, error) {
	buf := make([]byte, lineBufLen)
	lo, hi := int64(0), l.size
	for lo < hi {
		mid := lo + (hi-lo)/2
		ln, err := l.lineAtOrAfter(mid, buf)
		if err != nil {
			return 0, err
		}
		if ln.start >= hi {
			hi = mid // no line starts in [mid, hi)
			continue
		}
		switch bytes.Compare(ln.hash[:], target[:]) {
		case 0:
			return ln.count, nil
		case -1:
			lo = ln.next
		default:
			hi = mid // the first line at or after mid is already above target
		}
	}
	return 0, nil
}

// listLine is one parsed line of the list.
type listLine struct {
	start, next int64 // offsets of this line and of the next one
	hash        [digestLen]byte
	count       int64
}

// lineAtOrAfter parses the first line that starts at or after off; its start
// is l.size when there is none. One ReadAt into buf (lineBufLen bytes)
// serves both finding the line break and reading the line.
func (l *OfflineList) lineAtOrAfter(off int64, buf []byte) (listLine, error) {
	readFrom := off
	if off > 0 {
		readFrom = off - 1 // off starts a line iff the byte before it is '\n'
	}
	n, err := l.r.ReadAt(buf[:], readFrom)
	if err != nil && !errors.Is(err, io.EOF) {
		return listLine{}, fmt.Errorf("breached: reading offline list at offset %d: %w", readFrom, err)
	}
	b := buf[:n]
	i := 0
	if off > 0 {
		nl := bytes.IndexByte(b, '\n')
		if nl < 0 {
			if readFrom+int64(n) >= l.size {
				return listLine{start: l.size, next: l.size}, nil
			}
			return listLine{}, fmt.Errorf("%w: no line break within %d bytes of offset %d", ErrMalformedList, n, readFrom)
		}
		i = nl + 1
	}
	ln := listLine{start: readFrom + int64(i)}
	if ln.start >= l.size {
		ln.start, ln.next = l.size, l.size
		return ln, nil
	}
	rest := b[i:]
	end := bytes.IndexByte(rest, '\n')
	line := rest
	switch {
	case end >= 0:
		line = rest[:end]
		ln.next = ln.start + int64(end) + 1
	case ln.start+int64(len(rest)) >= l.size:
		ln.next = l.size // last line, no final line break
	default:
		return listLine{}, fmt.Errorf("%w: line at offset %d longer than %d bytes", ErrMalformedList, ln.start, maxListLine)
	}
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) == 0 && ln.next >= l.size {
		// A blank line at the very end: treat as the end of the file.
		ln.start, ln.next = l.size, l.size
		return ln, nil
	}
	if err := parseListLine(line, &ln); err != nil {
		return listLine{}, fmt.Errorf("%w: line at offset %d: %s", ErrMalformedList, ln.start, err)
	}
	return ln, nil
}

// parseListLine parses "SHA1:COUNT" with upper-case hex, the order the file
// is sorted in.
func parseListLine(line []byte, ln *listLine) error {
	if len(line) < digestLen+2 || line[digestLen] != ':' {
		return fmt.Errorf("want %d hex digits, a colon and a count", digestLen)
	}
	for i := 0; i < digestLen; i++ {
		if _, ok := nibble(line[i], false); !ok {
			return fmt.Errorf("character %d is not an upper-case hex digit", i+1)
		}
	}
	count, ok := parseCount(line[digestLen+1:])
	if !ok {
		return fmt.Errorf("count is not a canonical decimal number of at most 19 digits")
	}
	copy(ln.hash[:], line[:digestLen])
	ln.count = count
	return nil
}
