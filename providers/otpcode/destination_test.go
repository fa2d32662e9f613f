package otpcode

import (
	"bufio"
	"errors"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestNormalizeEmail(t *testing.T) {
	long := strings.Repeat("a", 64) + "@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 63) + ".com"
	tests := []struct {
		in, want string
	}{
		{"alice@example.com", "alice@example.com"},
		{"  Alice.Smith@Example.COM ", "Alice.Smith@example.com"},
		{"a+tag@sub.example.co.uk", "a+tag@sub.example.co.uk"},
		{"o'neil@xn--bcher-kva.example", "o'neil@xn--bcher-kva.example"},
		{"", ""},
		{"alice", ""},
		{"alice@", ""},
		{"@example.com", ""},
		{"alice@localhost", ""},
		{"alice@[192.0.2.1]", ""},
		{"alice@192.0.2.1", ""},
		{"Alice <alice@example.com>", ""},
		{"alice@example.com (home)", ""},
		{`"a b"@example.com`, ""},
		{"alice@exa mple.com", ""},
		{"alice@-example.com", ""},
		{"alice@example-.com", ""},
		{"alice@example..com", ""},
		{"alice@bücher.example", ""},
		{"alice@example.com\r\nBcc: x@example.com", ""},
		{"al\x00ice@example.com", ""},
		{"a,b@example.com", ""},
		{strings.Repeat("a", 65) + "@example.com", ""},
		{long, ""},
	}
	for _, tc := range tests {
		got, err := NormalizeEmail(tc.in)
		if tc.want == "" {
			if err == nil || !errors.Is(err, ErrDestination) {
				t.Errorf("NormalizeEmail(%q) = %q, %v; want an ErrDestination", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// TestPhoneVectors reads testdata/phones.tsv.
func TestPhoneVectors(t *testing.T) {
	f, err := os.Open("testdata/phones.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" && !strings.Contains(line, "\t") {
			continue
		}
		cols := strings.Split(line, "\t")
		if len(cols) != 4 {
			t.Fatalf("phones.tsv: %q: want 4 columns", line)
		}
		region := cols[1]
		if region == "-" {
			region = ""
		}
		for i, ch := range []string{SMS, Signal} {
			want := cols[2+i]
			d, err := ParseDestination(ch, cols[0], region)
			switch {
			case want == "error" && err == nil:
				t.Errorf("%s %q (region %q) = %q; want an error", ch, cols[0], region, d.Address)
			case want == "error" && !errors.Is(err, ErrDestination):
				t.Errorf("%s %q: error %v does not wrap ErrDestination", ch, cols[0], err)
			case want != "error" && (err != nil || d.Address != want):
				t.Errorf("%s %q (region %q) = %q, %v; want %q", ch, cols[0], region, d.Address, err, want)
			}
		}
		n++
	}
	if n < 20 {
		t.Fatalf("read %d vectors; want at least 20", n)
	}
}

func TestParseTelegramChat(t *testing.T) {
	for in, ok := range map[string]bool{"123456789": true, " 42 ": true, "0": false, "-1001234567890": false,
		"+12": false, "012": false, "12a": false, "": false, "99999999999999999999": false} {
		_, err := ParseDestination(Telegram, in, "")
		if (err == nil) != ok {
			t.Errorf("telegram chat %q: err %v; want ok=%v", in, err, ok)
		}
	}
}

func TestParseDestinationBounds(t *testing.T) {
	if _, err := ParseDestination(Email, strings.Repeat("a", MaxInputLen+1), ""); !errors.Is(err, ErrDestination) {
		t.Errorf("overlong input: %v", err)
	}
	if _, err := ParseDestination("fax", "+4915123456789", ""); !errors.Is(err, ErrDestination) {
		t.Errorf("unknown channel: %v", err)
	}
}

func TestMask(t *testing.T) {
	tests := []struct{ ch, addr, want string }{
		{Email, "alice@example.com", "a•••@example.com"},
		{Email, "ä@example.com", "ä•••@example.com"},
		{SMS, "+4915123456712", "+49 •••• ••12"},
		{Signal, "+12025550143", "+1 •••• ••43"},
		{SMS, "+447400123456", "+44 •••• ••56"},
		{Telegram, "123456789", "chat ••••89"},
		{Email, "broken", "•••"},
		{SMS, "x", "+••••••"},
	}
	for _, tc := range tests {
		if got := Mask(tc.ch, tc.addr); got != tc.want {
			t.Errorf("Mask(%s, %q) = %q; want %q", tc.ch, tc.addr, got, tc.want)
		}
	}
	d := Destination{Channel: SMS, Address: "+4915123456712"}
	if s := d.String(); strings.Contains(s, "3456") {
		t.Errorf("Destination.String() %q shows the number", s)
	}
}

// FuzzParseDestination: every parser returns either an error or a normal form
// that parses to itself, is bounded, valid UTF-8, and masks without revealing
// more than its shape allows.
func FuzzParseDestination(f *testing.F) {
	for _, s := range []string{"alice@example.com", "+4915123456712", "0151 23456789", "123456789",
		"A@B.CO", "\"x\"@y.z", "+1 (202) 555-0143", "a@[::1]", "\xff@x.y"} {
		f.Add(s, "")
		f.Add(s, "DE")
	}
	f.Fuzz(func(t *testing.T, in, region string) {
		if len(region) != 2 {
			region = ""
		}
		for _, ch := range Channels {
			d, err := ParseDestination(ch, in, region)
			if err != nil {
				if !errors.Is(err, ErrDestination) {
					t.Fatalf("%s %q: error %v does not wrap ErrDestination", ch, in, err)
				}
				continue
			}
			if !utf8.ValidString(d.Address) || len(d.Address) > MaxEmailLen || d.Address == "" {
				t.Fatalf("%s %q: normal form %q", ch, in, d.Address)
			}
			again, err := ParseDestination(ch, d.Address, "")
			if err != nil || again.Address != d.Address {
				t.Fatalf("%s %q: normal form %q parses to %q, %v", ch, in, d.Address, again.Address, err)
			}
			if m := d.Masked(); ch != Email && strings.Contains(m, d.Address) {
				t.Fatalf("%s %q: mask %q shows the address", ch, in, m)
			}
		}
	})
}
