package apppasswords

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/twofactor/twofactor/providers/internal/userid"
	"github.com/twofactor/twofactor/storage"
)

// macPurpose separates app password hashes from every other keyed hash.
const macPurpose = "app-password"

// Defaults of Config.
const (
	DefaultTouchInterval = time.Minute
	DefaultCacheTTL      = 10 * time.Second
	DefaultMaxPerUser    = 100
	maxNameLen           = 128 // characters, as the server checks
)

var (
	// ErrInvalidArgument wraps a message that names the argument that was wrong.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrNotFound: the user has no app password with that id.
	ErrNotFound = storage.ErrNotFound
	// ErrTooMany: the user already has Config.MaxPerUser app passwords.
	ErrTooMany = errors.New("too many app passwords")
	// ErrNotAnnounced: the app password is revoked, and no replica accepts it
	// any more (Config.RevocationCheck), but the announcement to the other
	// replicas failed: their caches forgot it by reading the revocation counter
	// instead of at once.
	ErrNotAnnounced = errors.New("revocation not announced to other replicas")
)

// Scope narrows what an app password may do; the backend enforces it.
type Scope struct {
	ReadOnly bool
	// FilesystemOnly allows only file access (WebDAV), as the backend reads it.
	FilesystemOnly bool
}

// AppPassword describes an issued app password (never the password itself).
type AppPassword struct {
	ID        string
	UserID    string
	Name      string
	Scope     Scope
	CreatedAt time.Time
	// LastUsedAt is zero until first use; it is recorded at most once per
	// Config.TouchInterval, with the client IP of that use.
	LastUsedAt   time.Time
	LastClientIP string
}

// Reason tells why a verification failed, for throttling and the audit trail.
// The caller of the RPC learns only valid or not.
type Reason string

const (
	ReasonNone      Reason = ""           // valid
	ReasonMalformed Reason = "malformed"  // not an app password at all (ErrMalformed from Parse)
	ReasonUnknown   Reason = "unknown"    // well formed, but no such app password (or revoked)
	ReasonOtherUser Reason = "other_user" // a live app password of a different user
)

// Result is the answer to Verify. UserID, ID and Scope are set only when Valid.
type Result struct {
	Valid  bool
	UserID string
	ID     string
	Scope  Scope
	Reason Reason
}

// Store is what the provider needs of storage.Store.
type Store interface {
	CreateAppPasswordWithin(ctx context.Context, p *storage.AppPassword, maxPerUser int) error
	GetAppPasswordByHash(ctx context.Context, hash []byte) (*storage.AppPassword, error)
	GetAppPassword(ctx context.Context, userID, id string) (*storage.AppPassword, error)
	ListAppPasswords(ctx context.Context, userID string) ([]storage.AppPassword, error)
	RenameAppPassword(ctx context.Context, userID, id, name string) error
	DeleteAppPassword(ctx context.Context, userID, id string) error
	DeleteAppPasswordsOfUser(ctx context.Context, userID string) ([]string, error)
	TouchAppPassword(ctx context.Context, id string, now time.Time, clientIP string, minInterval time.Duration) (bool, error)
	IncrementCounter(ctx context.Context, name string) error
	GetCounter(ctx context.Context, name string) (int64, error)
}

// Hasher computes keyed hashes (storage.KeyRing).
type Hasher interface {
	MAC(purpose string, data ...[]byte) []byte
}

// Announcer tells the other replicas that an app password was revoked; each of
// them then calls Invalidate(id). The server implements it on NATS.
type Announcer interface {
	AnnounceRevoked(ctx context.Context, id string) error
}

// Config wires a Service. Store and Hasher are required.
type Config struct {
	Store  Store
	Hasher Hasher
	// Announcer is nil for a single replica.
	Announcer Announcer
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Rand is the source of passwords (default crypto/rand).
	Rand io.Reader
	// CacheSize bounds the verification cache in entries; 0 disables it.
	CacheSize int
	// CacheTTL is how long a cached verification lasts (default DefaultCacheTTL).
	// Revocation does not depend on it (see RevocationCheck).
	CacheTTL time.Duration
	// RevocationCheck (default DefaultRevocationCheck) is how old a replica's last
	// read of the shared revocation counter may be for its cache to be trusted;
	// Revoke and RevokeAll return twice this after the revocation committed, when
	// no replica accepts the password any more (see epoch.go).
	RevocationCheck time.Duration
	// TouchInterval is the least time between two recorded uses of one password
	// (default DefaultTouchInterval).
	TouchInterval time.Duration
	// MaxPerUser bounds a user's app passwords (default DefaultMaxPerUser). The
	// bound is checked before the insert, so concurrent issues may pass it by one
	// or two; it exists to bound List and RevokeAll, not as an exact quota.
	MaxPerUser int
	// OnTouchError, if set, receives errors of recording a use; such an error does
	// not fail the verification.
	OnTouchError func(error)
}

// Service issues and verifies app passwords. It is safe for concurrent use.
type Service struct {
	cfg   Config
	cache *cache
	epoch epoch
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Hasher == nil {
		return nil, errors.New("apppasswords: Config.Store and Config.Hasher are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = DefaultCacheTTL
	}
	if cfg.TouchInterval <= 0 {
		cfg.TouchInterval = DefaultTouchInterval
	}
	if cfg.MaxPerUser <= 0 {
		cfg.MaxPerUser = DefaultMaxPerUser
	}
	if cfg.RevocationCheck <= 0 {
		cfg.RevocationCheck = DefaultRevocationCheck
	}
	return &Service{cfg: cfg, cache: newCache(cfg.CacheSize, cfg.CacheTTL), epoch: epoch{every: cfg.RevocationCheck}}, nil
}

// now is the clock at the database's precision (microseconds), in UTC, so what
// Issue returns equals what List reads back.
func (s *Service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Microsecond) }

// Issue creates an app password for userID and returns it with its description.
// The password is shown this once; only its keyed hash is kept.
func (s *Service) Issue(ctx context.Context, userID, name string, scope Scope) (AppPassword, string, error) {
	if err := checkUserID("user_id", userID); err != nil {
		return AppPassword{}, "", err
	}
	name, err := checkName(name)
	if err != nil {
		return AppPassword{}, "", err
	}
	password, err := generate(s.cfg.Rand)
	if err != nil {
		return AppPassword{}, "", err
	}
	row := &storage.AppPassword{
		ID:             uuid.NewString(),
		UserID:         userID,
		Name:           name,
		LookupHash:     s.cfg.Hasher.MAC(macPurpose, []byte(password)),
		ReadOnly:       scope.ReadOnly,
		FilesystemOnly: scope.FilesystemOnly,
		CreatedAt:      s.now(),
	}
	var full *storage.CapError
	if err := s.cfg.Store.CreateAppPasswordWithin(ctx, row, s.cfg.MaxPerUser); errors.As(err, &full) {
		return AppPassword{}, "", fmt.Errorf("%w: %s", ErrTooMany, full.Error())
	} else if err != nil {
		return AppPassword{}, "", fmt.Errorf("store app password: %w", err)
	}
	return fromRow(row), password, nil
}

// Verify tells whether password is a live app password of login, as a DAV server
// asks on each request. clientIP (optional) is recorded as the last client's.
// Wrong, malformed, revoked passwords and passwords of another user are an
// invalid Result with a Reason, not an error; errors are for bad arguments
// (ErrInvalidArgument) and a failing database.
func (s *Service) Verify(ctx context.Context, login, password, clientIP string) (Result, error) {
	if err := checkUserID("login", login); err != nil {
		return Result{}, err
	}
	if clientIP != "" {
		if _, err := netip.ParseAddr(clientIP); err != nil {
			return Result{}, fmt.Errorf("%w: client_ip: not an IP address", ErrInvalidArgument)
		}
	}
	canonical, err := Parse(password)
	if err != nil {
		return Result{Reason: ReasonMalformed}, nil
	}
	hash := s.cfg.Hasher.MAC(macPurpose, []byte(canonical))
	now := s.now()

	// The cache is used only while this replica is known to have seen every
	// revocation (fresh); otherwise every verification reads the database.
	var e cacheEntry
	cached, trusted := false, s.cache != nil && s.fresh(ctx)
	if trusted {
		e, cached = s.cache.get(hash, now)
	}
	if !cached {
		gen := s.cache.generation()
		row, err := s.cfg.Store.GetAppPasswordByHash(ctx, hash)
		if errors.Is(err, storage.ErrNotFound) {
			return Result{Reason: ReasonUnknown}, nil
		}
		if err != nil {
			return Result{}, fmt.Errorf("look up app password: %w", err)
		}
		if !storage.EqualMAC(row.LookupHash, hash) { // the index matched: belt and braces
			return Result{Reason: ReasonUnknown}, nil
		}
		e = cacheEntry{id: row.ID, userID: row.UserID, scope: Scope{ReadOnly: row.ReadOnly, FilesystemOnly: row.FilesystemOnly}}
		if row.LastUsedAt != nil {
			e.lastUsed = *row.LastUsedAt
		}
		cached = trusted && s.cache.put(hash, e, gen, now)
	}
	if subtle.ConstantTimeCompare([]byte(e.userID), []byte(login)) != 1 {
		return Result{Reason: ReasonOtherUser}, nil
	}
	// Record the use if the last one known is older than the interval; with a
	// cache, only the request that claims it (under the write lock) does.
	touch := e.lastUsed.IsZero() || now.Sub(e.lastUsed) > s.cfg.TouchInterval
	if touch && cached {
		touch = s.cache.claimTouch(hash, now, s.cfg.TouchInterval)
	}
	if touch {
		if _, err := s.cfg.Store.TouchAppPassword(ctx, e.id, now, clientIP, s.cfg.TouchInterval); err != nil && s.cfg.OnTouchError != nil {
			s.cfg.OnTouchError(fmt.Errorf("record use of app password %s: %w", e.id, err))
		}
	}
	return Result{Valid: true, UserID: e.userID, ID: e.id, Scope: e.scope}, nil
}

// List returns a user's app passwords, oldest first.
func (s *Service) List(ctx context.Context, userID string) ([]AppPassword, error) {
	if err := checkUserID("user_id", userID); err != nil {
		return nil, err
	}
	rows, err := s.cfg.Store.ListAppPasswords(ctx, userID)
	if err != nil {
		return nil, err
	}
	out := make([]AppPassword, len(rows))
	for i := range rows {
		out[i] = fromRow(&rows[i])
	}
	return out, nil
}

// Rename renames a user's app password and returns it; ErrNotFound when the user
// has no app password with that id.
func (s *Service) Rename(ctx context.Context, userID, id, name string) (AppPassword, error) {
	if err := checkUserID("user_id", userID); err != nil {
		return AppPassword{}, err
	}
	if err := checkID(id); err != nil {
		return AppPassword{}, err
	}
	name, err := checkName(name)
	if err != nil {
		return AppPassword{}, err
	}
	if err := s.cfg.Store.RenameAppPassword(ctx, userID, id, name); err != nil {
		return AppPassword{}, err
	}
	row, err := s.cfg.Store.GetAppPassword(ctx, userID, id)
	if err != nil {
		return AppPassword{}, err
	}
	return fromRow(row), nil
}

// Revoke deletes a user's app password, forgets it in this replica's cache and
// announces it to the others. ErrNotFound when the user has no app password with
// that id; ErrNotAnnounced (wrapping the announcer's error) when it is revoked but
// the announcement failed.
func (s *Service) Revoke(ctx context.Context, userID, id string) error {
	if err := checkUserID("user_id", userID); err != nil {
		return err
	}
	if err := checkID(id); err != nil {
		return err
	}
	if err := s.cfg.Store.DeleteAppPassword(ctx, userID, id); err != nil {
		return err
	}
	return s.Revoked(ctx, id)
}

// RevokeAll deletes every app password of a user, as Revoke does one, and
// returns how many it deleted.
func (s *Service) RevokeAll(ctx context.Context, userID string) (int, error) {
	if err := checkUserID("user_id", userID); err != nil {
		return 0, err
	}
	ids, err := s.cfg.Store.DeleteAppPasswordsOfUser(ctx, userID)
	if err != nil {
		return 0, err
	}
	return len(ids), s.Revoked(ctx, ids...)
}

// Revoked forgets and announces app passwords that were deleted by other means
// (storage.DeleteAppPasswordsOfUser when a user is deleted). It returns when no
// replica accepts them any more (see Config.RevocationCheck), or with the error
// that prevents knowing it (then they are deleted but may be accepted from a
// replica's cache until its entry expires, Config.CacheTTL).
func (s *Service) Revoked(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	for _, id := range ids {
		s.cache.invalidate(id)
	}
	if err := s.countRevocation(ctx); err != nil {
		return err
	}
	counted := mono()
	// Announcements make the other replicas forget at once; the guarantee does
	// not rest on them.
	var errs []error
	for _, id := range ids {
		if err := s.announce(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.waitRevocation(ctx, counted); err != nil {
		return err
	}
	return errors.Join(errs...)
}

// Invalidate forgets a revoked app password in this replica's cache. The server
// calls it for each revocation another replica announces.
func (s *Service) Invalidate(id string) { s.cache.invalidate(id) }

func (s *Service) announce(ctx context.Context, id string) error {
	if s.cfg.Announcer == nil {
		return nil
	}
	if err := s.cfg.Announcer.AnnounceRevoked(ctx, id); err != nil {
		return fmt.Errorf("%w: app password %s: %w", ErrNotAnnounced, id, err)
	}
	return nil
}

func fromRow(r *storage.AppPassword) AppPassword {
	p := AppPassword{
		ID: r.ID, UserID: r.UserID, Name: r.Name,
		Scope:        Scope{ReadOnly: r.ReadOnly, FilesystemOnly: r.FilesystemOnly},
		CreatedAt:    r.CreatedAt.UTC(),
		LastClientIP: r.LastClientIP,
	}
	if r.LastUsedAt != nil {
		p.LastUsedAt = r.LastUsedAt.UTC()
	}
	return p
}

func checkUserID(field, v string) error { return userid.Check(ErrInvalidArgument, field, v) }

func checkID(id string) error {
	if id == "" || len(id) > 36 {
		return fmt.Errorf("%w: app_password_id: empty or longer than 36 characters", ErrInvalidArgument)
	}
	return nil
}

// checkName trims and checks an app password's name ("Phone DAVx⁵").
func checkName(name string) (string, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return "", fmt.Errorf("%w: name: empty", ErrInvalidArgument)
	case !utf8.ValidString(name) || strings.IndexFunc(name, unicode.IsControl) >= 0:
		return "", fmt.Errorf("%w: name: not printable UTF-8", ErrInvalidArgument)
	case utf8.RuneCountInString(name) > maxNameLen:
		return "", fmt.Errorf("%w: name: longer than %d characters", ErrInvalidArgument, maxNameLen)
	}
	return name, nil
}
