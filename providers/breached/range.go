package breached

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults of RangeConfig.
const (
	DefaultBaseURL         = "https://api.pwnedpasswords.com"
	DefaultUserAgent       = "twofactor-breached/1"
	DefaultTimeout         = 5 * time.Second
	DefaultCacheTTL        = 5 * time.Minute
	DefaultCacheMaxEntries = 256
	// DefaultMaxBodyBytes bounds a range response. A padded response holds
	// roughly 800 to 2,000 lines of about 40 bytes.
	DefaultMaxBodyBytes = 1 << 20
	// MaxRetryAfter caps how long a Retry-After header may stop requests, so
	// that a hostile or broken answer cannot disable the check for long.
	MaxRetryAfter = 15 * time.Minute
)

// FailMode says what a RangeClient answers when the service cannot.
type FailMode int

const (
	// FailOpen answers Result{Breached: false, Checked: false} and no error:
	// the password is let through and the caller can record that it was not
	// checked. This is what Nextcloud's password policy does, and the zero
	// value.
	FailOpen FailMode = iota
	// FailClosed returns an error wrapping ErrUnavailable, so that the caller
	// refuses the password until the service answers again.
	FailClosed
)

func (m FailMode) String() string {
	switch m {
	case FailOpen:
		return "fail-open"
	case FailClosed:
		return "fail-closed"
	}
	return "FailMode(" + strconv.Itoa(int(m)) + ")"
}

// HTTPDoer sends an HTTP request; *http.Client is one.
type HTTPDoer interface {
	Do(*http.Request) (*http.Response, error)
}

// RangeConfig configures a RangeClient. Zero fields take the defaults above.
type RangeConfig struct {
	// BaseURL of the range API, without the "/range/" path; http or https.
	BaseURL string
	// Timeout of one request, including reading the body.
	Timeout time.Duration
	// UserAgent sent with each request; the public API refuses requests
	// without one.
	UserAgent string
	// HTTPClient sends the requests; nil means a plain *http.Client.
	HTTPClient HTTPDoer
	// CacheTTL is how long a range response is reused; negative disables the
	// cache.
	CacheTTL time.Duration
	// CacheMaxEntries bounds the number of cached prefixes (least recently
	// used ones go first); negative disables the cache.
	CacheMaxEntries int
	// FailMode chooses between failing open (zero value) and closed.
	FailMode FailMode
	// MaxBodyBytes bounds the size of a response body.
	MaxBodyBytes int64
	// Now is the clock used for the cache and Retry-After; nil means
	// time.Now.
	Now func() time.Time
}

// RangeClient checks passwords against the Pwned Passwords range API. It is
// safe for concurrent use.
type RangeClient struct {
	endpoint  string // BaseURL + "/range/"
	userAgent string
	timeout   time.Duration
	client    HTTPDoer
	failMode  FailMode
	maxBody   int64
	now       func() time.Time
	cache     *rangeCache // nil when disabled

	mu           sync.Mutex
	blockedUntil time.Time // set by Retry-After
}

var _ Checker = (*RangeClient)(nil)

// NewRangeClient validates cfg and returns a client.
func NewRangeClient(cfg RangeConfig) (*RangeClient, error) {
	base := cfg.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("breached: RangeConfig.BaseURL %q: %w", base, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("breached: RangeConfig.BaseURL %q: want an http or https URL with a host and no query", base)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("breached: RangeConfig.Timeout %v is negative", cfg.Timeout)
	}
	if cfg.MaxBodyBytes < 0 {
		return nil, fmt.Errorf("breached: RangeConfig.MaxBodyBytes %d is negative", cfg.MaxBodyBytes)
	}
	if cfg.FailMode != FailOpen && cfg.FailMode != FailClosed {
		return nil, fmt.Errorf("breached: RangeConfig.FailMode %v is unknown", cfg.FailMode)
	}
	if strings.ContainsAny(cfg.UserAgent, "\r\n") {
		return nil, fmt.Errorf("breached: RangeConfig.UserAgent contains a line break")
	}
	c := &RangeClient{
		endpoint:  strings.TrimRight(base, "/") + "/range/",
		userAgent: cfg.UserAgent,
		timeout:   cfg.Timeout,
		client:    cfg.HTTPClient,
		failMode:  cfg.FailMode,
		maxBody:   cfg.MaxBodyBytes,
		now:       cfg.Now,
	}
	if c.userAgent == "" {
		c.userAgent = DefaultUserAgent
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.client == nil {
		c.client = &http.Client{}
	}
	if c.maxBody == 0 {
		c.maxBody = DefaultMaxBodyBytes
	}
	if c.now == nil {
		c.now = time.Now
	}
	ttl, maxEntries := cfg.CacheTTL, cfg.CacheMaxEntries
	if ttl == 0 {
		ttl = DefaultCacheTTL
	}
	if maxEntries == 0 {
		maxEntries = DefaultCacheMaxEntries
	}
	if ttl > 0 && maxEntries > 0 {
		c.cache = newRangeCache(ttl, maxEntries)
	}
	return c, nil
}

// UnavailableError says why the range API could not answer. It matches
// ErrUnavailable with errors.Is, and ErrMalformedResponse too when the body
// was malformed.
type UnavailableError struct {
	// Reason is a short description: "status 503", "request failed", ...
	Reason string
	// RetryAfter is how long the service asked to wait (0 when it did not).
	RetryAfter time.Duration
	// Err is the underlying error, if any.
	Err error
}

func (e *UnavailableError) Error() string {
	msg := ErrUnavailable.Error() + ": " + e.Reason
	if e.RetryAfter > 0 {
		msg += fmt.Sprintf(" (retry after %v)", e.RetryAfter)
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap lets errors.Is find ErrUnavailable and the underlying error.
func (e *UnavailableError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrUnavailable}
	}
	return []error{ErrUnavailable, e.Err}
}

// Check hashes password with SHA-1 and looks it up.
func (c *RangeClient) Check(ctx context.Context, password string) (Result, error) {
	sum := sha1.Sum([]byte(password))
	return c.check(ctx, &sum)
}

// CheckSHA1 looks up a password given as its 40-digit hex SHA-1 digest (upper
// or lower case), for callers that would rather not handle the password.
func (c *RangeClient) CheckSHA1(ctx context.Context, hexDigest string) (Result, error) {
	sum, err := parseDigest(hexDigest)
	if err != nil {
		return Result{Source: SourceRange}, err
	}
	return c.check(ctx, &sum)
}

func (c *RangeClient) check(ctx context.Context, sum *[sha1.Size]byte) (Result, error) {
	hexSum := hexUpper(sum)
	prefix := string(hexSum[:prefixLen])
	entries, err := c.rangeEntries(ctx, prefix)
	if err != nil {
		// A caller that gave up gets its own context error, whatever the failed
		// request looked like when it noticed (a cut body, a reset): that is not
		// an outage, and not "checked: false".
		if cerr := ctx.Err(); cerr != nil {
			return Result{Source: SourceRange}, cerr
		}
		var unavailable *UnavailableError
		if c.failMode == FailOpen && errors.As(err, &unavailable) {
			return Result{Source: SourceRange}, nil
		}
		return Result{Source: SourceRange}, err
	}
	key := keyOf(sum)
	count := lookup(entries, &key)
	return Result{Breached: count > 0, Count: count, Checked: true, Source: SourceRange}, nil
}

// rangeEntries returns the parsed response for prefix, from the cache or the
// service. Its errors are *UnavailableError, or the caller's context error.
func (c *RangeClient) rangeEntries(ctx context.Context, prefix string) ([]rangeEntry, error) {
	now := c.now()
	if c.cache != nil {
		if entries, ok := c.cache.get(prefix, now); ok {
			return entries, nil
		}
	}
	c.mu.Lock()
	blockedUntil := c.blockedUntil
	c.mu.Unlock()
	if now.Before(blockedUntil) {
		return nil, &UnavailableError{Reason: "Retry-After in force", RetryAfter: blockedUntil.Sub(now)}
	}
	entries, err := c.fetch(ctx, prefix)
	if err != nil {
		return nil, err
	}
	if c.cache != nil {
		c.cache.put(prefix, entries, c.now())
	}
	return entries, nil
}

func (c *RangeClient) fetch(ctx context.Context, prefix string) ([]rangeEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("breached: range request not sent: %w", err)
	}
	reqCtx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, c.endpoint+prefix, nil)
	if err != nil {
		return nil, &UnavailableError{Reason: "building request", Err: err}
	}
	req.Header.Set("Add-Padding", "true")
	req.Header.Set("User-Agent", c.userAgent)
	req.Header.Set("Accept", "text/plain")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, c.transportError(ctx, "request failed", err)
	}
	defer func() {
		// Drain a little so the connection can be reused, then close.
		_, _ = io.CopyN(io.Discard, resp.Body, 4096)
		_ = resp.Body.Close()
	}()
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
		wait := c.retryAfter(resp.Header.Get("Retry-After"))
		if wait > 0 {
			c.mu.Lock()
			if until := c.now().Add(wait); until.After(c.blockedUntil) {
				c.blockedUntil = until
			}
			c.mu.Unlock()
		}
		return nil, &UnavailableError{Reason: "status " + strconv.Itoa(resp.StatusCode), RetryAfter: wait}
	default:
		return nil, &UnavailableError{Reason: "status " + strconv.Itoa(resp.StatusCode)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		return nil, c.transportError(ctx, "reading body", err)
	}
	if int64(len(body)) > c.maxBody {
		return nil, &UnavailableError{Reason: "reading body", Err: fmt.Errorf("%w: body exceeds %d bytes", ErrMalformedResponse, c.maxBody)}
	}
	entries, err := parseRange(body)
	if err != nil {
		return nil, &UnavailableError{Reason: "parsing body", Err: err}
	}
	return entries, nil
}

// transportError classifies a failure to talk to the service: if the
// caller's own context ended, that is the caller's business and not an
// outage, so it is returned as is; anything else (including our timeout) is
// unavailability.
func (c *RangeClient) transportError(ctx context.Context, reason string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("breached: range request abandoned: %w", ctxErr)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		reason = "timed out after " + c.timeout.String()
	}
	return &UnavailableError{Reason: reason, Err: err}
}

// retryAfter parses a Retry-After value (delay in seconds or an HTTP date,
// RFC 9110 §10.2.3) into a duration capped at MaxRetryAfter; 0 when absent
// or invalid.
func (c *RangeClient) retryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseUint(v, 10, 32); err == nil {
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(c.now())
	}
	if d < 0 {
		return 0
	}
	return min(d, MaxRetryAfter)
}
