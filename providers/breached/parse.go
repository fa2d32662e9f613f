package breached

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
)

// suffixLen is the number of hex digits of a range API suffix: a SHA-1 digest
// has 40, the prefix sent in the request takes 5.
const (
	prefixLen = 5
	suffixLen = digestLen - prefixLen
)

// suffixKey is a 35-digit suffix in binary: the first byte holds the first
// digit in its low nibble, the other 17 bytes the remaining 34 digits.
type suffixKey [18]byte

// rangeEntry is one line of a range response.
type rangeEntry struct {
	suffix suffixKey
	count  int64
}

// keyOf returns the suffix of a full digest, as the range API spells it.
func keyOf(sum *[20]byte) suffixKey {
	var k suffixKey
	k[0] = sum[2] & 0x0F
	copy(k[1:], sum[3:])
	return k
}

// parseRange parses a range API body: lines "SUFFIX:COUNT" separated by CRLF,
// where SUFFIX is 35 upper-case hex digits and COUNT a decimal number (0 for
// padding entries). A final CRLF is allowed; empty lines, bare LF or CR,
// lower-case hex, signs, spaces and duplicate suffixes are not. The entries
// come back sorted by suffix.
func parseRange(body []byte) ([]rangeEntry, error) {
	if len(body) == 0 {
		return nil, fmt.Errorf("%w: empty body", ErrMalformedResponse)
	}
	body = bytes.TrimSuffix(body, []byte("\r\n"))
	entries := make([]rangeEntry, 0, len(body)/40+1)
	for lineNo := 1; ; lineNo++ {
		line, rest, more := bytes.Cut(body, []byte("\r\n"))
		e, err := parseRangeLine(line)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %s", ErrMalformedResponse, lineNo, err)
		}
		entries = append(entries, e)
		if !more {
			break
		}
		body = rest
	}
	slices.SortFunc(entries, func(a, b rangeEntry) int { return bytes.Compare(a.suffix[:], b.suffix[:]) })
	for i := 1; i < len(entries); i++ {
		if entries[i].suffix == entries[i-1].suffix {
			return nil, fmt.Errorf("%w: duplicate suffix", ErrMalformedResponse)
		}
	}
	return entries, nil
}

// parseRangeLine parses one "SUFFIX:COUNT" line. Its errors describe the
// shape of the line, never its content.
func parseRangeLine(line []byte) (rangeEntry, error) {
	var e rangeEntry
	if len(line) < suffixLen+2 {
		return e, fmt.Errorf("%d bytes, want at least %d", len(line), suffixLen+2)
	}
	if line[suffixLen] != ':' {
		return e, fmt.Errorf("no colon after the %d-digit suffix", suffixLen)
	}
	// Digit i of the suffix goes to byte (i+1)/2: the first digit alone in the
	// low nibble of byte 0, then two digits per byte.
	for i := 0; i < suffixLen; i++ {
		v, ok := nibble(line[i], false)
		if !ok {
			return e, fmt.Errorf("suffix character %d is not an upper-case hex digit", i+1)
		}
		if i%2 == 0 {
			e.suffix[(i+1)/2] |= v
		} else {
			e.suffix[(i+1)/2] = v << 4
		}
	}
	count, ok := parseCount(line[suffixLen+1:])
	if !ok {
		return e, fmt.Errorf("count is not a canonical decimal number of at most 19 digits")
	}
	e.count = count
	return e, nil
}

// lookup returns the count of the entry whose suffix is key, or 0. It visits
// every entry and compares without data-dependent branches (the technique of
// crypto/subtle, on machine words) so that its running time does not depend
// on which entry matches, nor on how much of a suffix matches.
func lookup(entries []rangeEntry, key *suffixKey) int64 {
	k0 := binary.LittleEndian.Uint64(key[0:8])
	k1 := binary.LittleEndian.Uint64(key[8:16])
	k2 := uint64(binary.LittleEndian.Uint16(key[16:18]))
	var count int64
	for i := range entries {
		s := &entries[i].suffix
		// OR of XORs over the whole suffix, then a branch-free "is zero":
		// the same work for every entry, whichever bytes differ.
		diff := (binary.LittleEndian.Uint64(s[0:8]) ^ k0) |
			(binary.LittleEndian.Uint64(s[8:16]) ^ k1) |
			(uint64(binary.LittleEndian.Uint16(s[16:18])) ^ k2)
		notEqual := (diff | -diff) >> 63 // 1 if diff != 0, else 0
		count |= entries[i].count & (int64(notEqual) - 1)
	}
	return count
}

// formatRange writes entries back in the wire format; the fuzz test uses it
// to check that parsing loses nothing.
func formatRange(entries []rangeEntry) []byte {
	var b []byte
	for i, e := range entries {
		if i > 0 {
			b = append(b, '\r', '\n')
		}
		b = append(b, upperHex[e.suffix[0]&0x0F])
		for _, x := range e.suffix[1:] {
			b = append(b, upperHex[x>>4], upperHex[x&0x0F])
		}
		b = append(b, ':')
		b = fmt.Appendf(b, "%d", e.count)
	}
	return b
}
