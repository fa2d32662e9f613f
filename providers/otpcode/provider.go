package otpcode

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/twofactor/twofactor/storage"
)

// Defaults and bounds of Config.
const (
	DefaultCodeTTL        = 5 * time.Minute
	MaxCodeTTL            = 10 * time.Minute
	DefaultMaxAttempts    = 5
	DefaultResendCooldown = 30 * time.Second
	DefaultMaxResends     = 4
	// DefaultMaxFactorsPerChannel is Config.MaxFactorsPerChannel's default.
	DefaultMaxFactorsPerChannel = 8
	DefaultUserDailyCap         = 20
	DefaultDestDailyCap         = 10
	MaxLinkTTL                  = 10 * time.Minute
	maxDailyCap                 = 10000
)

// Send counter scopes.
const (
	ScopeUser        = "user"
	ScopeDestination = "dest"
)

// Config holds the settings. The zero value of a field means its default.
type Config struct {
	// ServiceName is named in every message; default "twofactor".
	ServiceName string
	// Domain is the origin an SMS code is bound to ("@<Domain> #<code>", for
	// WebOTP and Apple's autofill); "" leaves the line out.
	Domain string
	// Digits is the code length, 6 (default) to 10.
	Digits int
	// CodeTTL is how long a code works: default 5 minutes, at most 10.
	CodeTTL time.Duration
	// MaxAttempts answers are evaluated per code: default 5, at most 10.
	MaxAttempts int
	// ResendCooldown is the wait before the first resend, doubled after each
	// one; default 30 s.
	ResendCooldown time.Duration
	// MaxResends bounds the resends of one code; default 4.
	MaxResends int
	// UserDailyCap and DestinationDailyCap bound the sends (first sends and
	// resends, logins and enrollments) per user and per destination per UTC
	// day, against SMS pumping; defaults 20 and 10.
	UserDailyCap        int
	DestinationDailyCap int
	// MaxFactorsPerChannel bounds a user's factors of one channel, active or
	// being enrolled (storage.CapError beyond it); default 8.
	MaxFactorsPerChannel int
	// LinkTTL is how long a Telegram link token works: default and at most 10 min.
	LinkTTL time.Duration
	// TelegramBot is the bot's username for the t.me deep link; "" disables
	// Telegram enrollment.
	TelegramBot string
	// DefaultRegion (ISO 3166-1 alpha-2) lets phone numbers omit the country code.
	DefaultRegion string
	// TemplateDir holds the operator's message templates; "" uses the defaults.
	TemplateDir string
}

var (
	botName    = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{4,31}$`)
	regionCode = regexp.MustCompile(`^[A-Za-z]{2}$`)
)

func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Digits, DefaultDigits)
	def(&c.MaxAttempts, DefaultMaxAttempts)
	def(&c.MaxResends, DefaultMaxResends)
	def(&c.UserDailyCap, DefaultUserDailyCap)
	def(&c.DestinationDailyCap, DefaultDestDailyCap)
	def(&c.MaxFactorsPerChannel, DefaultMaxFactorsPerChannel)
	if c.ServiceName == "" {
		c.ServiceName = "twofactor"
	}
	if c.CodeTTL == 0 {
		c.CodeTTL = DefaultCodeTTL
	}
	if c.ResendCooldown == 0 {
		c.ResendCooldown = DefaultResendCooldown
	}
	if c.LinkTTL == 0 {
		c.LinkTTL = MaxLinkTTL
	}
	return c
}

// Validate reports a setting that cannot work, naming it.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Digits < MinDigits || c.Digits > MaxDigits:
		return fmt.Errorf("otpcode digits %d: want %d to %d", c.Digits, MinDigits, MaxDigits)
	case c.CodeTTL < 30*time.Second || c.CodeTTL > MaxCodeTTL:
		return fmt.Errorf("otpcode code ttl %v: want 30s to %v", c.CodeTTL, MaxCodeTTL)
	case c.MaxAttempts < 1 || c.MaxAttempts > 10:
		return fmt.Errorf("otpcode max attempts %d: want 1 to 10", c.MaxAttempts)
	case c.ResendCooldown < time.Second || c.ResendCooldown > c.CodeTTL:
		return fmt.Errorf("otpcode resend cooldown %v: want 1s to the code ttl", c.ResendCooldown)
	case c.MaxResends < 0 || c.MaxResends > 10:
		return fmt.Errorf("otpcode max resends %d: want 0 to 10", c.MaxResends)
	case c.UserDailyCap < 1 || c.UserDailyCap > maxDailyCap, c.DestinationDailyCap < 1 || c.DestinationDailyCap > maxDailyCap:
		return fmt.Errorf("otpcode daily caps %d/%d: want 1 to %d", c.UserDailyCap, c.DestinationDailyCap, maxDailyCap)
	case c.LinkTTL < time.Minute || c.LinkTTL > MaxLinkTTL:
		return fmt.Errorf("otpcode link ttl %v: want 1m to %v", c.LinkTTL, MaxLinkTTL)
	case c.TelegramBot != "" && !botName.MatchString(c.TelegramBot):
		return fmt.Errorf("otpcode telegram bot %q: want a bot username (5 to 32 letters, digits, _)", c.TelegramBot)
	case c.DefaultRegion != "" && !regionCode.MatchString(c.DefaultRegion):
		return fmt.Errorf("otpcode default region %q: want an ISO 3166-1 alpha-2 code", c.DefaultRegion)
	case c.Domain != "" && checkDomain(strings.ToLower(c.Domain)) != nil:
		return fmt.Errorf("otpcode domain %q: want a DNS name", c.Domain)
	case len(c.ServiceName) > 64:
		return fmt.Errorf("otpcode service name: at most 64 bytes")
	}
	return nil
}

// Store is what the provider needs of storage (storage.Store).
type Store interface {
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
	CreateFactorWithin(ctx context.Context, f *storage.Factor, limit int, now time.Time) error
	GetFactor(ctx context.Context, userID, id string) (*storage.Factor, error)
	ListFactors(ctx context.Context, userID, method, state string) ([]storage.Factor, error)
	ActivateFactor(ctx context.Context, userID, id string, now time.Time, lastStep *int64) (bool, error)
	DeleteFactor(ctx context.Context, userID, id string) error
	DeletePendingFactor(ctx context.Context, userID, id string) (bool, error)
	BindPendingFactor(ctx context.Context, userID, id, method, keyID string, sealed, data []byte, now time.Time) (bool, error)
	CreateOTPCode(ctx context.Context, c *storage.OTPCode, caps []storage.OTPSendCap, now time.Time) error
	GetOTPCode(ctx context.Context, userID, id string) (*storage.OTPCode, error)
	AttemptOTPCode(ctx context.Context, userID, id string, now time.Time) (*storage.OTPCode, error)
	ConsumeOTPCode(ctx context.Context, id string, now time.Time) (bool, error)
	FailOTPCodeIfSpent(ctx context.Context, id string, now time.Time) error
	ResendOTPCode(ctx context.Context, userID, id string, seen int, next time.Time, caps []storage.OTPSendCap, now time.Time) error
	UnsendOTPCode(ctx context.Context, userID, id string, seq int, reason string, caps []storage.OTPSendCap, day string, now time.Time) (bool, error)
	RecordOTPDelivery(ctx context.Context, id, state, reason string, at time.Time) (bool, error)
	CreateOTPLinkToken(ctx context.Context, t *storage.OTPLinkToken) error
	UseOTPLinkToken(ctx context.Context, hash string, now time.Time) (*storage.OTPLinkToken, error)
	DeleteOTPCodesBefore(ctx context.Context, t time.Time) (int64, error)
	DeleteOTPSendCountersBefore(ctx context.Context, t time.Time) (int64, error)
	DeleteOTPLinkTokensBefore(ctx context.Context, t time.Time) (int64, error)
}

// Keys seals destinations and codes and keys the hashes (storage.KeyRing).
type Keys interface {
	Seal(plaintext, aad []byte) (keyID string, sealed []byte, err error)
	Open(keyID string, sealed, aad []byte) ([]byte, error)
	Hasher
}

// Options tune a Provider beyond its Config.
type Options struct {
	Clock func() time.Time // time.Now
	Rand  io.Reader        // crypto/rand.Reader
}

// Provider enrolls destinations and sends and verifies their codes. It keeps
// no state of its own: every replica sharing the store sees the same codes,
// counts and caps.
type Provider struct {
	store Store
	keys  Keys
	cfg   Config
	tpl   *Templates
	now   func() time.Time
	rand  io.Reader
}

// New returns a Provider; it loads and checks the templates.
func New(store Store, keys Keys, cfg Config, opts Options) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	cfg.Domain = strings.ToLower(cfg.Domain)
	tpl, err := LoadTemplates(cfg.TemplateDir)
	if err != nil {
		return nil, err
	}
	p := &Provider{store: store, keys: keys, cfg: cfg, tpl: tpl, now: opts.Clock, rand: opts.Rand}
	if p.now == nil {
		p.now = time.Now
	}
	if p.rand == nil {
		p.rand = rand.Reader
	}
	return p, nil
}

// Config returns the settings in force (defaults filled in).
func (p *Provider) Config() Config { return p.cfg }

// FactorData is a factor's non-secret data (storage.Factor.Data).
type FactorData struct {
	Channel string `json:"channel"`
	Masked  string `json:"masked,omitempty"`
	// Replaces names the factor this enrollment replaces once it is proved.
	Replaces string `json:"replaces,omitempty"`
	// Locale is the user's locale at enrollment, for the notice to the old
	// destination.
	Locale string `json:"locale,omitempty"`
}

// ParseFactorData reads a factor's data.
func ParseFactorData(raw []byte) (FactorData, error) {
	var d FactorData
	if err := json.Unmarshal(raw, &d); err != nil {
		return d, fmt.Errorf("otpcode factor data: %w", err)
	}
	return d, nil
}

// MaskedDestination returns a factor's destination as it may be shown.
func MaskedDestination(f *storage.Factor) string {
	d, _ := ParseFactorData(f.Data)
	return d.Masked
}

// Errors of the provider. Wrong answers are verdicts the server maps to a
// normal answer, not RPC errors.
var (
	ErrNoFactor          = errors.New("the user has no active factor of this channel")
	ErrChooseFactor      = errors.New("the user has several factors of this channel: name one")
	ErrWrongCode         = errors.New("wrong code")
	ErrNoAttemptsLeft    = errors.New("the code has no attempts left")
	ErrExpired           = errors.New("the code has expired")
	ErrUsed              = errors.New("the code was already used")
	ErrNotPending        = errors.New("enrollment is not pending")
	ErrEnrollmentExpired = errors.New("enrollment expired; begin again")
	ErrResendLimit       = errors.New("the code was resent as often as allowed; begin again")
	ErrTelegramDisabled  = errors.New("telegram enrollment is not configured (no bot)")
)

// CooldownError refuses a resend before its cooldown is over.
type CooldownError struct{ RetryAfter time.Duration }

func (e *CooldownError) Error() string {
	return fmt.Sprintf("a resend is allowed in %v", e.RetryAfter.Round(time.Second))
}

// ErrSendCap is wrapped by a send refused by a daily cap; errors.As finds the
// *storage.SendCapError naming the cap.
var ErrSendCap = errors.New("daily send limit reached")

func capError(err error) error {
	var ce *storage.SendCapError
	if errors.As(err, &ce) {
		return fmt.Errorf("%w (%s): %w", ErrSendCap, ce.Scope, ce)
	}
	return err
}

// MaxUserIDLen and MaxIDLen bound a user id and a challenge or factor id (the
// columns' sizes).
const (
	MaxUserIDLen = 255
	MaxIDLen     = 36
)

// checkIDs bounds the ids a call names; the messages start with the field.
func checkIDs(userID, id string) error {
	if userID == "" || len(userID) > MaxUserIDLen {
		return fmt.Errorf("user_id: must be 1 to %d bytes", MaxUserIDLen)
	}
	if len(id) > MaxIDLen {
		return fmt.Errorf("id: at most %d bytes", MaxIDLen)
	}
	return nil
}

// caps are the daily caps a send to d counts toward.
func (p *Provider) caps(userID string, d Destination) []storage.OTPSendCap {
	return []storage.OTPSendCap{
		{Scope: ScopeUser, Key: userID, Limit: p.cfg.UserDailyCap},
		{Scope: ScopeDestination, Key: destinationKey(p.keys, d), Limit: p.cfg.DestinationDailyCap},
	}
}

// openDestination opens a factor's sealed destination.
func (p *Provider) openDestination(f *storage.Factor) (Destination, error) {
	if len(f.SealedSecret) == 0 {
		return Destination{}, fmt.Errorf("factor %s: no destination bound", f.ID)
	}
	addr, err := p.keys.Open(f.SecretKeyID, f.SealedSecret, f.AAD())
	if err != nil {
		return Destination{}, fmt.Errorf("factor %s: %w", f.ID, err)
	}
	return Destination{Channel: f.Method, Address: string(addr)}, nil
}

// Cleanup removes expired codes and link tokens and the send counters of days
// before yesterday. Run it now and then (the server's janitor).
func (p *Provider) Cleanup(ctx context.Context) error {
	now := p.now().UTC()
	_, err1 := p.store.DeleteOTPCodesBefore(ctx, now.Add(-time.Hour))
	_, err2 := p.store.DeleteOTPLinkTokensBefore(ctx, now.Add(-time.Hour))
	_, err3 := p.store.DeleteOTPSendCountersBefore(ctx, now.Add(-24*time.Hour))
	return errors.Join(err1, err2, err3)
}
