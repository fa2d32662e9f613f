package breached

import (
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twofactor/twofactor/internal/testfix"
)

// clockStart is where the tests' injected clocks start.
var clockStart = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// rangeServer is a TLS test server speaking the range API's wire format:
// GET /range/{5 upper-case hex}, "Add-Padding: true" required, answer
// CRLF-separated SUFFIX:COUNT lines with padding entries of count 0, sorted,
// no final line break.
type rangeServer struct {
	t        *testing.T
	srv      *httptest.Server
	requests atomic.Int64

	mu      sync.Mutex
	counts  map[string]int64 // full upper-case hex SHA-1 -> count (0 = padding)
	respond func(w http.ResponseWriter, r *http.Request) bool
	paths   []string
}

func newRangeServer(t *testing.T, breached map[string]int64, paddingOnly ...string) *rangeServer {
	t.Helper()
	s := &rangeServer{t: t, counts: map[string]int64{}}
	for pw, n := range breached {
		s.counts[hexOf(pw)] = n
	}
	for _, pw := range paddingOnly {
		s.counts[hexOf(pw)] = 0
	}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func hexOf(password string) string {
	sum := sha1.Sum([]byte(password))
	h := hexUpper(&sum)
	return string(h[:])
}

// setRespond installs a handler that runs after validation; it returns true
// when it has answered.
func (s *rangeServer) setRespond(f func(w http.ResponseWriter, r *http.Request) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.respond = f
}

func (s *rangeServer) serve(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	prefix, ok := strings.CutPrefix(r.URL.Path, "/range/")
	valid := ok && r.Method == http.MethodGet && len(prefix) == prefixLen && r.URL.RawQuery == ""
	for i := 0; valid && i < len(prefix); i++ {
		_, valid = nibble(prefix[i], false)
	}
	if !valid {
		s.t.Errorf("server: bad request %s %s", r.Method, r.URL)
		http.Error(w, "The hash prefix was not in a valid format", http.StatusBadRequest)
		return
	}
	if got := r.Header.Get("Add-Padding"); got != "true" {
		s.t.Errorf("server: Add-Padding header = %q, want \"true\"", got)
	}
	if r.Header.Get("User-Agent") == "" {
		s.t.Errorf("server: no User-Agent")
	}
	s.mu.Lock()
	s.paths = append(s.paths, r.URL.Path)
	respond := s.respond
	s.mu.Unlock()
	if respond != nil && respond(w, r) {
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write(s.body(prefix))
}

// body builds the padded answer for prefix: its corpus entries plus
// deterministic random suffixes of count 0 up to 800 lines.
func (s *rangeServer) body(prefix string) []byte {
	s.mu.Lock()
	seen := map[string]bool{}
	var lines []string
	for h, n := range s.counts {
		if strings.HasPrefix(h, prefix) {
			seen[h[prefixLen:]] = true
			lines = append(lines, fmt.Sprintf("%s:%d", h[prefixLen:], n))
		}
	}
	s.mu.Unlock()
	for i := 0; len(lines) < 800; i++ {
		filler := sha1.Sum(fmt.Appendf(nil, "padding-%s-%d", prefix, i))
		h := hexUpper(&filler)
		suffix := string(h[prefixLen:])
		if !seen[suffix] {
			seen[suffix] = true
			count := 0
			if i%3 == 0 {
				count = i + 1 // real-looking entries too
			}
			lines = append(lines, fmt.Sprintf("%s:%d", suffix, count))
		}
	}
	slices.Sort(lines)
	return []byte(strings.Join(lines, "\r\n"))
}

func (s *rangeServer) lastPath() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.paths) == 0 {
		return ""
	}
	return s.paths[len(s.paths)-1]
}

func (s *rangeServer) client(t *testing.T, cfg RangeConfig) *RangeClient {
	t.Helper()
	cfg.BaseURL = s.srv.URL
	cfg.HTTPClient = s.srv.Client()
	c, err := NewRangeClient(cfg)
	if err != nil {
		t.Fatalf("NewRangeClient: %v", err)
	}
	return c
}

var testCorpus = map[string]int64{
	"password":                     52256179,
	"123456":                       1000,
	"correct horse battery staple": 3,
}

func TestRangeCheck(t *testing.T) {
	s := newRangeServer(t, testCorpus, "only-in-the-padding")
	c := s.client(t, RangeConfig{CacheTTL: -1})
	ctx := context.Background()
	tests := []struct {
		name     string
		password string
		want     Result
	}{
		{"breached", "password", Result{Breached: true, Count: 52256179, Checked: true, Source: SourceRange}},
		{"breached small count", "correct horse battery staple", Result{Breached: true, Count: 3, Checked: true, Source: SourceRange}},
		{"not breached", "a password nobody has used, 4f1d", Result{Checked: true, Source: SourceRange}},
		{"padding entry only", "only-in-the-padding", Result{Checked: true, Source: SourceRange}},
		{"empty password", "", Result{Checked: true, Source: SourceRange}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Check(ctx, tt.password)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if got != tt.want {
				t.Errorf("Check = %+v, want %+v", got, tt.want)
			}
			if want := "/range/" + hexOf(tt.password)[:prefixLen]; s.lastPath() != want {
				t.Errorf("request path = %q, want %q", s.lastPath(), want)
			}
			// The digest variant answers the same, in either case.
			for _, d := range []string{hexOf(tt.password), strings.ToLower(hexOf(tt.password))} {
				got, err := c.CheckSHA1(ctx, d)
				if err != nil || got != tt.want {
					t.Errorf("CheckSHA1 = %+v, %v; want %+v", got, err, tt.want)
				}
			}
		})
	}
}

func TestRangeOnlyPrefixLeaves(t *testing.T) {
	// The request must carry the 5-digit prefix and nothing else derived from
	// the password: no query, no other header value containing the hash.
	var seen *http.Request
	s := newRangeServer(t, testCorpus)
	s.setRespond(func(w http.ResponseWriter, r *http.Request) bool { seen = r.Clone(context.Background()); return false })
	c := s.client(t, RangeConfig{})
	if _, err := c.Check(context.Background(), "password"); err != nil {
		t.Fatal(err)
	}
	full := hexOf("password")
	if seen.URL.Path != "/range/"+full[:5] {
		t.Errorf("path = %q", seen.URL.Path)
	}
	for k, vs := range seen.Header {
		for _, v := range vs {
			if strings.Contains(strings.ToUpper(v), full[5:12]) || strings.Contains(v, "password") {
				t.Errorf("header %s leaks the digest or password", k)
			}
		}
	}
}

func TestRangeCache(t *testing.T) {
	s := newRangeServer(t, testCorpus)
	clock := testfix.NewClock(clockStart)
	c := s.client(t, RangeConfig{CacheTTL: time.Minute, CacheMaxEntries: 2, Now: clock.Now})
	ctx := context.Background()
	check := func(pw string, wantBreached bool, wantRequests int64) {
		t.Helper()
		got, err := c.Check(ctx, pw)
		if err != nil || got.Breached != wantBreached || !got.Checked {
			t.Fatalf("Check(%q) = %+v, %v", pw, got, err)
		}
		if n := s.requests.Load(); n != wantRequests {
			t.Fatalf("after Check(%q): %d requests, want %d", pw, n, wantRequests)
		}
	}
	check("password", true, 1)
	check("password", true, 1) // cache hit
	// Another password with the same prefix is answered from the cache.
	sameprefix := findSamePrefix(t, "password")
	if _, err := c.CheckSHA1(ctx, sameprefix); err != nil || s.requests.Load() != 1 {
		t.Fatalf("same prefix: err %v, %d requests", err, s.requests.Load())
	}
	clock.Advance(59 * time.Second)
	check("password", true, 1)
	clock.Advance(time.Second) // TTL reached: expired
	check("password", true, 2)
	check("password", true, 2)

	// Max entries: a third prefix evicts the least recently used one.
	check("123456", true, 3)                       // cache: 123456, password
	check("password", true, 3)                     // cache: password, 123456
	check("correct horse battery staple", true, 4) // evicts 123456
	if c.cache.len() != 2 {
		t.Fatalf("cache holds %d prefixes, want 2", c.cache.len())
	}
	check("password", true, 4)
	check("123456", true, 5)
}

// findSamePrefix returns a digest (not of any password) sharing password's
// prefix, differing in the suffix.
func findSamePrefix(t *testing.T, password string) string {
	t.Helper()
	h := []byte(hexOf(password))
	if h[39] == '0' {
		h[39] = '1'
	} else {
		h[39] = '0'
	}
	return string(h)
}

func TestRangeCacheDisabled(t *testing.T) {
	for _, cfg := range []RangeConfig{{CacheTTL: -1}, {CacheMaxEntries: -1}} {
		s := newRangeServer(t, testCorpus)
		c := s.client(t, cfg)
		for range 3 {
			if _, err := c.Check(context.Background(), "password"); err != nil {
				t.Fatal(err)
			}
		}
		if n := s.requests.Load(); n != 3 {
			t.Errorf("%+v: %d requests, want 3", cfg, n)
		}
	}
}

// TestRangeUnavailable covers both fail modes for every way the service can
// fail to answer.
func TestRangeUnavailable(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	failures := []struct {
		name      string
		respond   func(w http.ResponseWriter, r *http.Request) bool
		malformed bool
	}{
		{"500", func(w http.ResponseWriter, r *http.Request) bool {
			http.Error(w, "boom", http.StatusInternalServerError)
			return true
		}, false},
		{"502", func(w http.ResponseWriter, r *http.Request) bool {
			w.WriteHeader(http.StatusBadGateway)
			return true
		}, false},
		{"404", func(w http.ResponseWriter, r *http.Request) bool {
			http.NotFound(w, r)
			return true
		}, false},
		{"timeout", func(w http.ResponseWriter, r *http.Request) bool {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return true
		}, false},
		{"timeout mid-body", func(w http.ResponseWriter, r *http.Request) bool {
			// A valid first line, then a stall: what was read must not be
			// taken as the whole answer.
			_, _ = w.Write([]byte("1E4C9B93F3F0682250B6CF8331B7EE68FD8:1\r\n"))
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			}
			// Cut the connection instead of ending the chunked body cleanly, as
			// a stalled server or network would; returning normally would let
			// the client receive a complete (if short) response in a race with
			// its own timeout.
			panic(http.ErrAbortHandler)
		}, false},
		{"malformed body", func(w http.ResponseWriter, r *http.Request) bool {
			_, _ = w.Write([]byte("<html>Cloudflare says hi</html>"))
			return true
		}, true},
		{"LF line endings", func(w http.ResponseWriter, r *http.Request) bool {
			_, _ = w.Write([]byte("1E4C9B93F3F0682250B6CF8331B7EE68FD8:1\n0000000000000000000000000000000000A:0"))
			return true
		}, true},
		{"empty body", func(w http.ResponseWriter, r *http.Request) bool { return true }, true},
		{"body too large", func(w http.ResponseWriter, r *http.Request) bool {
			line := []byte("0000000000000000000000000000000000A:0\r\n")
			for range 2000 {
				_, _ = w.Write(line)
			}
			return true
		}, true},
	}
	for _, f := range failures {
		for _, mode := range []FailMode{FailOpen, FailClosed} {
			t.Run(f.name+"/"+mode.String(), func(t *testing.T) {
				s := newRangeServer(t, testCorpus)
				s.setRespond(f.respond)
				// Only the stalling handlers get a short timeout: on a loaded
				// machine a TLS handshake alone can take longer than that.
				timeout := 30 * time.Second
				if strings.HasPrefix(f.name, "timeout") {
					timeout = 100 * time.Millisecond
				}
				c := s.client(t, RangeConfig{FailMode: mode, Timeout: timeout, MaxBodyBytes: 64 << 10})
				got, err := c.Check(context.Background(), "password")
				switch mode {
				case FailOpen:
					if err != nil {
						t.Fatalf("fail-open Check error: %v", err)
					}
					if got != (Result{Source: SourceRange}) {
						t.Fatalf("fail-open Check = %+v, want unchecked", got)
					}
				case FailClosed:
					if !errors.Is(err, ErrUnavailable) {
						t.Fatalf("fail-closed Check error = %v, want ErrUnavailable", err)
					}
					if errors.Is(err, ErrMalformedResponse) != f.malformed {
						t.Errorf("errors.Is(err, ErrMalformedResponse) = %v, want %v (%v)", !f.malformed, f.malformed, err)
					}
					var ue *UnavailableError
					if strings.HasPrefix(f.name, "timeout") && (!errors.As(err, &ue) || !strings.HasPrefix(ue.Reason, "timed out")) {
						t.Errorf("timeout reported as %v", err)
					}
					if got.Checked || got.Breached {
						t.Errorf("fail-closed Check = %+v", got)
					}
					if strings.Contains(err.Error(), hexOf("password")[5:]) {
						t.Errorf("error leaks the suffix: %v", err)
					}
				}
				// Failures are not cached: the next call asks again. (Not
				// after a timeout: with a 100ms budget the new TLS handshake
				// could itself time out on a loaded machine.)
				if strings.HasPrefix(f.name, "timeout") {
					return
				}
				s.setRespond(nil)
				if got, err := c.Check(context.Background(), "password"); err != nil || !got.Breached {
					t.Errorf("after recovery: %+v, %v", got, err)
				}
				if n := s.requests.Load(); n != 2 {
					t.Errorf("%d requests, want 2", n)
				}
			})
		}
	}
}

func TestRangeRetryAfter(t *testing.T) {
	clock := testfix.NewClock(clockStart)
	tests := []struct {
		name       string
		retryAfter string
		status     int
		wantWait   time.Duration
	}{
		{"429 seconds", "120", http.StatusTooManyRequests, 120 * time.Second},
		{"429 http date", clock.Now().Add(30 * time.Second).Format(http.TimeFormat), http.StatusTooManyRequests, 30 * time.Second},
		{"503 seconds", "5", http.StatusServiceUnavailable, 5 * time.Second},
		{"429 capped", "86400", http.StatusTooManyRequests, MaxRetryAfter},
		{"429 without header", "", http.StatusTooManyRequests, 0},
		{"429 garbage", "soon", http.StatusTooManyRequests, 0},
		{"429 date in the past", clock.Now().Add(-time.Hour).Format(http.TimeFormat), http.StatusTooManyRequests, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := testfix.NewClock(clockStart)
			s := newRangeServer(t, testCorpus)
			var limited atomic.Bool
			limited.Store(true)
			s.setRespond(func(w http.ResponseWriter, r *http.Request) bool {
				if !limited.Load() {
					return false
				}
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				http.Error(w, "Rate limit is exceeded.", tt.status)
				return true
			})
			closed := s.client(t, RangeConfig{FailMode: FailClosed, Now: clock.Now})
			_, err := closed.Check(context.Background(), "password")
			var ue *UnavailableError
			if !errors.As(err, &ue) || !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Check error = %v, want *UnavailableError", err)
			}
			if ue.RetryAfter != tt.wantWait {
				t.Fatalf("RetryAfter = %v, want %v", ue.RetryAfter, tt.wantWait)
			}
			limited.Store(false)
			if tt.wantWait > 0 {
				// Until the wait is over no request is sent, and nothing sleeps.
				clock.Advance(tt.wantWait - time.Second)
				_, err = closed.Check(context.Background(), "123456")
				if !errors.As(err, &ue) || ue.RetryAfter != time.Second {
					t.Fatalf("while blocked: err %v, want RetryAfter 1s", err)
				}
				if n := s.requests.Load(); n != 1 {
					t.Fatalf("while blocked: %d requests, want 1", n)
				}
				clock.Advance(time.Second)
			}
			got, err := closed.Check(context.Background(), "password")
			if err != nil || !got.Breached {
				t.Fatalf("after the wait: %+v, %v", got, err)
			}
			if n := s.requests.Load(); n != 2 {
				t.Fatalf("after the wait: %d requests, want 2", n)
			}
		})
	}

	t.Run("fail-open while blocked, cache still served", func(t *testing.T) {
		clock := testfix.NewClock(clockStart)
		s := newRangeServer(t, testCorpus)
		c := s.client(t, RangeConfig{Now: clock.Now})
		if got, err := c.Check(context.Background(), "password"); err != nil || !got.Breached {
			t.Fatalf("warm-up: %+v, %v", got, err)
		}
		s.setRespond(func(w http.ResponseWriter, r *http.Request) bool {
			w.Header().Set("Retry-After", "60")
			w.WriteHeader(http.StatusTooManyRequests)
			return true
		})
		if got, err := c.Check(context.Background(), "123456"); err != nil || got.Checked {
			t.Fatalf("429 fail-open: %+v, %v", got, err)
		}
		if got, err := c.Check(context.Background(), "correct horse battery staple"); err != nil || got.Checked {
			t.Fatalf("blocked fail-open: %+v, %v", got, err)
		}
		if got, err := c.Check(context.Background(), "password"); err != nil || !got.Breached || !got.Checked {
			t.Fatalf("cached while blocked: %+v, %v", got, err)
		}
		if n := s.requests.Load(); n != 2 {
			t.Fatalf("%d requests, want 2", n)
		}
	})
}

func TestRangeCallerCancel(t *testing.T) {
	// A caller that gives up gets its own context error in both modes: that
	// is not an outage and must not be turned into "not checked".
	for _, mode := range []FailMode{FailOpen, FailClosed} {
		s := newRangeServer(t, testCorpus)
		c := s.client(t, RangeConfig{FailMode: mode})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := c.Check(ctx, "password")
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
			t.Errorf("%v: err = %v, want context.Canceled", mode, err)
		}

		release := make(chan struct{})
		ctx, cancel = context.WithCancel(context.Background())
		s.setRespond(func(w http.ResponseWriter, r *http.Request) bool {
			cancel() // the caller gives up while the request is in flight
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return true
		})
		_, err = c.Check(ctx, "password")
		close(release)
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
			t.Errorf("%v in flight: err = %v, want context.Canceled", mode, err)
		}
	}
}

func TestRangeInvalidDigest(t *testing.T) {
	s := newRangeServer(t, testCorpus)
	c := s.client(t, RangeConfig{})
	for _, d := range []string{"", "5BAA6", hexOf("password") + "0", "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FDG", "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD "} {
		_, err := c.CheckSHA1(context.Background(), d)
		if !errors.Is(err, ErrInvalidDigest) {
			t.Errorf("CheckSHA1(%q) err = %v, want ErrInvalidDigest", d, err)
		}
		if len(d) > 8 && strings.Contains(err.Error(), d[:8]) {
			t.Errorf("error repeats the digest: %v", err)
		}
	}
	if n := s.requests.Load(); n != 0 {
		t.Errorf("%d requests for invalid digests", n)
	}
}

func TestNewRangeClientConfig(t *testing.T) {
	bad := []RangeConfig{
		{BaseURL: "ftp://example.com"},
		{BaseURL: "https://"},
		{BaseURL: "api.pwnedpasswords.com"},
		{BaseURL: "https://example.com/?q=1"},
		{BaseURL: "://"},
		{Timeout: -time.Second},
		{MaxBodyBytes: -1},
		{FailMode: 7},
		{UserAgent: "a\r\nX-Injected: 1"},
	}
	for _, cfg := range bad {
		if _, err := NewRangeClient(cfg); err == nil {
			t.Errorf("NewRangeClient(%+v) succeeded", cfg)
		}
	}
	c, err := NewRangeClient(RangeConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if c.endpoint != DefaultBaseURL+"/range/" || c.timeout != DefaultTimeout || c.userAgent != DefaultUserAgent ||
		c.cache == nil || c.cache.ttl != DefaultCacheTTL || c.cache.max != DefaultCacheMaxEntries || c.failMode != FailOpen {
		t.Errorf("defaults not applied: %+v", c)
	}
	c, err = NewRangeClient(RangeConfig{BaseURL: "http://mirror.internal/pwned/"})
	if err != nil || c.endpoint != "http://mirror.internal/pwned/range/" {
		t.Errorf("base with path: %v, %v", c, err)
	}
}

func TestParseRangeTestdata(t *testing.T) {
	body, err := os.ReadFile("testdata/range-5BAA6.txt")
	if err != nil {
		t.Fatal(err)
	}
	entries, err := parseRange(body)
	if err != nil {
		t.Fatalf("parseRange: %v", err)
	}
	if len(entries) != 900 {
		t.Errorf("%d entries, want 900", len(entries))
	}
	padding := 0
	for _, e := range entries {
		if e.count == 0 {
			padding++
		}
	}
	if padding != 200 {
		t.Errorf("%d padding entries, want 200", padding)
	}
	sum := sha1.Sum([]byte("password"))
	key := keyOf(&sum)
	if n := lookup(entries, &key); n != 52256179 {
		t.Errorf("count of password = %d, want 52256179", n)
	}
	if string(formatRange(entries)) != string(body) {
		t.Error("formatRange(parseRange(body)) differs from the sorted body")
	}
}

func TestParseRange(t *testing.T) {
	const a = "0018A45C4D1DEF81644B54AB7F969B88D65"
	const b = "00D4F6E8FA6EECAD2A3AA415EEC418D38EC"
	tests := []struct {
		name string
		body string
		want []int64 // counts in suffix order; nil means an error
	}{
		{"two lines", a + ":1\r\n" + b + ":2", []int64{1, 2}},
		{"final CRLF", a + ":1\r\n" + b + ":2\r\n", []int64{1, 2}},
		{"unsorted", b + ":2\r\n" + a + ":1", []int64{1, 2}},
		{"padding", a + ":0", []int64{0}},
		{"zero", a + ":0", []int64{0}},
		{"max count", a + ":9223372036854775807", []int64{9223372036854775807}},
		{"empty", "", nil},
		{"only CRLF", "\r\n", nil},
		{"blank line", a + ":1\r\n\r\n" + b + ":2", nil},
		{"two final CRLF", a + ":1\r\n\r\n", nil},
		{"LF", a + ":1\n" + b + ":2", nil},
		{"CR", a + ":1\r" + b + ":2", nil},
		{"lower-case hex", strings.ToLower(a) + ":1", nil},
		{"short suffix", a[1:] + ":1", nil},
		{"long suffix", a + "0:1", nil},
		{"full hash", "5BAA6" + a + ":1", nil},
		{"no colon", a + "1", nil},
		{"no count", a + ":", nil},
		{"negative count", a + ":-1", nil},
		{"plus sign", a + ":+1", nil},
		{"space", a + ": 1", nil},
		{"trailing space", a + ":1 ", nil},
		{"overflow", a + ":9223372036854775808", nil},
		{"20 digits", a + ":00000000000000000001", nil},
		{"leading zero", a + ":01", nil},
		{"zero zero", a + ":00", nil},
		{"duplicate", a + ":1\r\n" + a + ":1", nil},
		{"duplicate padding", a + ":0\r\n" + b + ":3\r\n" + a + ":5", nil},
		{"non-ascii", a[:34] + "É:1", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries, err := parseRange([]byte(tt.body))
			if tt.want == nil {
				if !errors.Is(err, ErrMalformedResponse) {
					t.Fatalf("parseRange err = %v, want ErrMalformedResponse", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseRange: %v", err)
			}
			var counts []int64
			for _, e := range entries {
				counts = append(counts, e.count)
			}
			if !slices.Equal(counts, tt.want) {
				t.Errorf("counts = %v, want %v", counts, tt.want)
			}
		})
	}
}

func TestLookup(t *testing.T) {
	entries, err := parseRange([]byte("0018A45C4D1DEF81644B54AB7F969B88D65:7\r\n00D4F6E8FA6EECAD2A3AA415EEC418D38EC:0\r\nFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF:9"))
	if err != nil {
		t.Fatal(err)
	}
	digest := func(prefix, suffix string) suffixKey {
		sum, err := parseDigest(prefix + suffix)
		if err != nil {
			t.Fatal(err)
		}
		return keyOf(&sum)
	}
	tests := []struct {
		suffix string
		want   int64
	}{
		{"0018A45C4D1DEF81644B54AB7F969B88D65", 7},
		{"00D4F6E8FA6EECAD2A3AA415EEC418D38EC", 0},
		{"FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF", 9},
		{"0018A45C4D1DEF81644B54AB7F969B88D66", 0},
		{"1018A45C4D1DEF81644B54AB7F969B88D65", 0}, // first digit differs
		{"00000000000000000000000000000000000", 0},
	}
	for _, tt := range tests {
		k := digest("ABCDE", tt.suffix)
		if got := lookup(entries, &k); got != tt.want {
			t.Errorf("lookup(%s) = %d, want %d", tt.suffix, got, tt.want)
		}
	}
}

func FuzzParseRange(f *testing.F) {
	body, err := os.ReadFile("testdata/range-5BAA6.txt")
	if err != nil {
		f.Fatal(err)
	}
	// A large seed slows every mutation down; twenty lines of the real
	// format are enough.
	lines := bytes.SplitAfterN(body, []byte("\r\n"), 21)
	f.Add(bytes.Join(lines[:20], nil))
	f.Add([]byte("0018A45C4D1DEF81644B54AB7F969B88D65:1\r\n"))
	f.Add([]byte("0018A45C4D1DEF81644B54AB7F969B88D65:0\r\n0018A45C4D1DEF81644B54AB7F969B88D65:0"))
	f.Add([]byte("0018A45C4D1DEF81644B54AB7F969B88D65:1\n"))
	f.Add([]byte("0018a45c4d1def81644b54ab7f969b88d65:99999999999999999999"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, body []byte) {
		entries, err := parseRange(body)
		if err != nil {
			if !errors.Is(err, ErrMalformedResponse) {
				t.Fatalf("error %v does not wrap ErrMalformedResponse", err)
			}
			return
		}
		if len(entries) == 0 {
			t.Fatal("success with no entries")
		}
		for i, e := range entries {
			if e.count < 0 {
				t.Fatalf("negative count %d", e.count)
			}
			if e.suffix[0] > 0x0F {
				t.Fatalf("suffix high nibble set")
			}
			if i > 0 && string(entries[i-1].suffix[:]) >= string(e.suffix[:]) {
				t.Fatalf("entries not strictly ascending")
			}
		}
		// lookup is O(n) per call: check a few entries, not all of them.
		for _, i := range []int{0, len(entries) / 2, len(entries) - 1} {
			if got := lookup(entries, &entries[i].suffix); got != entries[i].count {
				t.Fatalf("lookup = %d, want %d", got, entries[i].count)
			}
		}
		// Keys one bit away from a present suffix match only if present.
		for j := range len(suffixKey{}) {
			k := entries[0].suffix
			k[j] ^= 1 << (j % 8)
			want := int64(0)
			if i, found := slices.BinarySearchFunc(entries, k, func(e rangeEntry, k suffixKey) int { return bytes.Compare(e.suffix[:], k[:]) }); found {
				want = entries[i].count
			}
			if got := lookup(entries, &k); got != want {
				t.Fatalf("lookup(bit %d flipped) = %d, want %d", j, got, want)
			}
		}
		again, err := parseRange(formatRange(entries))
		if err != nil || !slices.Equal(again, entries) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func BenchmarkRangeCheckCached(b *testing.B) {
	var requests atomic.Int64
	body, err := os.ReadFile("testdata/range-5BAA6.txt")
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	c, err := NewRangeClient(RangeConfig{BaseURL: srv.URL, HTTPClient: srv.Client(), CacheTTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if r, err := c.Check(ctx, "password"); err != nil || !r.Breached {
		b.Fatal(r, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Check(ctx, "password"); err != nil {
			b.Fatal(err)
		}
	}
	if requests.Load() != 1 {
		b.Fatalf("%d requests", requests.Load())
	}
}

func BenchmarkParseRange(b *testing.B) {
	body, err := os.ReadFile("testdata/range-5BAA6.txt")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseRange(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	body, err := os.ReadFile("testdata/range-5BAA6.txt")
	if err != nil {
		b.Fatal(err)
	}
	entries, err := parseRange(body)
	if err != nil {
		b.Fatal(err)
	}
	sum := sha1.Sum([]byte("password"))
	key := keyOf(&sum)
	for b.Loop() {
		if lookup(entries, &key) == 0 {
			b.Fatal("not found")
		}
	}
}

func TestConcurrentChecks(t *testing.T) {
	s := newRangeServer(t, testCorpus)
	clock := testfix.NewClock(clockStart)
	rc := s.client(t, RangeConfig{CacheMaxEntries: 2, Now: clock.Now})
	a := "0000000A1B2C3D4E5F60718293A4B5C6D7E8F900"
	path := t.TempDir() + "/list.txt"
	if err := os.WriteFile(path, []byte(a+":1\r\n"+hexOf("password")+":52256179\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ol := openList(t, path)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				for _, c := range []Checker{rc, ol} {
					pw := []string{"password", "123456", "correct horse battery staple", "nope"}[(g+i)%4]
					got, err := c.Check(context.Background(), pw)
					if err != nil || !got.Checked {
						t.Errorf("%s Check(%q) = %+v, %v", got.Source, pw, got, err)
						return
					}
					if pw == "password" && got.Count != 52256179 {
						t.Errorf("%s Check(password) = %+v", got.Source, got)
					}
				}
				clock.Advance(time.Second)
			}
		})
	}
	wg.Wait()
}
