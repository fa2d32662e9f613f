package storage

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"gorm.io/plugin/dbresolver"
)

// ErrNotFound is returned when a row asked for by id does not exist (or is not the
// caller's).
var ErrNotFound = errors.New("not found")

// Dialect names the database behind a Store.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Store is the handle providers and the server use. It is safe for concurrent use.
type Store struct {
	db      *gorm.DB
	dialect Dialect
	readers *dbresolver.DBResolver // SQLite's read pool; nil on PostgreSQL
	// hotStmts are the login path's prepared statements (hot.go).
	hotStmts hotStmts
}

// sqliteReaders is the size of SQLite's read pool.
const sqliteReaders = 4

// closeAll closes db's pool and, if any, the resolver's.
func closeAll(db *gorm.DB, readers *dbresolver.DBResolver) error {
	var errs []error
	if readers != nil {
		readers.Call(func(p gorm.ConnPool) error {
			if c, ok := p.(interface{ Close() error }); ok {
				errs = append(errs, c.Close())
			}
			return nil
		})
	}
	if sqlDB, err := db.DB(); err == nil {
		errs = append(errs, sqlDB.Close())
	}
	return errors.Join(errs...)
}

// Options tune the connection pool.
type Options struct {
	// MaxOpenConns bounds connections (PostgreSQL; SQLite uses its own bound).
	MaxOpenConns int
}

// Open opens the database a URL names and returns a Store. It accepts
// postgres://… (or postgresql://…), sqlite://path/file.db, or a plain file path
// for SQLite. It does not migrate; call Migrate.
func Open(ctx context.Context, databaseURL string, opts Options) (*Store, error) {
	cfg := &gorm.Config{
		Logger:                 logger.Discard,
		SkipDefaultTransaction: true,
		// Prepared statements: pgx keeps them server-side on PostgreSQL, and
		// modernc.org/sqlite (v1.62) keeps each compiled across executions, which
		// saves SQLite's parse and plan of every statement (a sixth of authd's CPU
		// under a login load). gorm prepares a statement first seen inside a
		// transaction on that transaction's own connection, so a writer never waits
		// for a second pooled connection; such a statement stays bound to
		// transactions and is prepared again in each later one (the two updates of
		// VerifyChallenge's transaction), a known cost left as it is.
		PrepareStmt: true,
		NowFunc:     func() time.Time { return time.Now().UTC() },
	}
	var (
		db      *gorm.DB
		err     error
		dialect = SQLite
		readers *dbresolver.DBResolver
	)
	if strings.HasPrefix(databaseURL, "postgres://") || strings.HasPrefix(databaseURL, "postgresql://") {
		dialect = Postgres
		db, err = openPostgres(databaseURL, cfg, opts)
	} else {
		db, readers, err = openSQLite(strings.TrimPrefix(databaseURL, "sqlite://"), cfg)
	}
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, dialect: dialect, readers: readers}
	if err := s.Ping(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	if dialect == SQLite {
		if err := restrictSQLiteFiles(strings.TrimPrefix(databaseURL, "sqlite://")); err != nil {
			_ = s.Close()
			return nil, err
		}
	}
	return s, nil
}

// openPostgres opens PostgreSQL with a pool of opts.MaxOpenConns (default 32).
func openPostgres(databaseURL string, cfg *gorm.Config, opts Options) (*gorm.DB, error) {
	db, err := gorm.Open(postgres.Open(databaseURL), cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	sqlDB, _ := db.DB()
	n := opts.MaxOpenConns
	if n <= 0 {
		n = 32
	}
	sqlDB.SetMaxOpenConns(n)
	sqlDB.SetMaxIdleConns(n)
	sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	return db, nil
}

// openSQLite creates path 0600 if it is missing and opens it: one writer
// connection and a pool of readers.
func openSQLite(path string, cfg *gorm.Config) (*gorm.DB, *dbresolver.DBResolver, error) {
	if path == "" {
		return nil, nil, errors.New("database url: empty SQLite path")
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, nil, fmt.Errorf("create database folder: %w", err)
		}
	}
	if err := createPrivate(path); err != nil {
		return nil, nil, fmt.Errorf("create sqlite %s: %w", path, err)
	}
	db, err := gorm.Open(newSQLiteDialector(sqliteDSN(path)), cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	// SQLite has one writer. Every write (each transaction, and each write
	// statement outside one) goes to a pool of one connection, where
	// database/sql queues writers in Go; reads go to a pool of readers that
	// run beside it in WAL mode. With writers on several connections, SQLite
	// itself made them wait: its busy handler sleeps and retries, which cost
	// 15 % of authd's CPU per login (docs/PERFORMANCE.md).
	readers := dbresolver.Register(dbresolver.Config{Replicas: []gorm.Dialector{newSQLiteDialector(sqliteDSN(path))}}).
		SetMaxOpenConns(sqliteReaders).SetMaxIdleConns(sqliteReaders).SetConnMaxLifetime(0)
	if err := db.Use(readers); err != nil {
		closeAll(db, readers)
		return nil, nil, fmt.Errorf("open sqlite %s readers: %w", path, err)
	}
	writer, _ := db.DB()
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	return db, readers, nil
}

// createPrivate creates path empty (an empty file is an empty SQLite database) with
// mode 0600 when it does not exist, so the database is never readable by others,
// whatever the umask (issue 16, finding 9).
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return f.Close()
}

// restrictSQLiteFiles makes the database file and its -wal and -shm companions mode
// 0600 (SQLite creates the companions with the database's mode; a database made
// by an older version may be 0644).
func restrictSQLiteFiles(path string) error {
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("restrict sqlite file: %w", err)
		}
	}
	return nil
}

func sqliteDSN(path string) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	return "file:" + path + "?" + q.Encode()
}

// Dialect tells which database the Store talks to.
func (s *Store) Dialect() Dialect { return s.dialect }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := sqlDB.PingContext(ctx); err != nil {
		return fmt.Errorf("database unreachable: %w", err)
	}
	return nil
}

// Close releases the connections.
func (s *Store) Close() error {
	s.closeHotStmts()
	return closeAll(s.db, s.readers)
}

type txKey struct{}

// DB returns the GORM handle for ctx: the open transaction when InTx runs, the pool
// otherwise. Providers use the Store's methods; DB is for the few that need more.
func (s *Store) DB(ctx context.Context) *gorm.DB {
	if tx, ok := ctx.Value(txKey{}).(*gorm.DB); ok {
		return tx
	}
	return s.db.WithContext(ctx)
}

// InTx runs fn in one transaction: every Store call made with the ctx fn receives
// joins it. A nested InTx joins the outer transaction.
func (s *Store) InTx(ctx context.Context, fn func(ctx context.Context) error) error {
	if _, ok := ctx.Value(txKey{}).(*gorm.DB); ok {
		return fn(ctx)
	}
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		return fn(context.WithValue(ctx, txKey{}, tx))
	})
}

func notFound(err error) error {
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return ErrNotFound
	}
	return err
}
