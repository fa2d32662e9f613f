// Package storagetest starts the stores tests run against: a fresh SQLite file by
// default, or a fresh schema in the PostgreSQL server that
// TWOFACTOR_TEST_DATABASE_URL names (CI sets it; the test fails loudly when that
// server cannot be reached).
package storagetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twofactor/twofactor/storage"
)

// EnvDatabaseURL names the PostgreSQL server tests use instead of SQLite.
const EnvDatabaseURL = "TWOFACTOR_TEST_DATABASE_URL"

// URL returns the URL of a fresh, empty database for one test: a SQLite file in
// t.TempDir(), or a new schema on the PostgreSQL server of EnvDatabaseURL, dropped
// when the test ends. Several Stores opened on it share it, as replicas do.
func URL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvDatabaseURL)
	if base == "" {
		return "sqlite://" + filepath.Join(t.TempDir(), "twofactor.db")
	}
	schema := "t_" + randomHex(6)
	admin, err := storage.Open(context.Background(), base, storage.Options{MaxOpenConns: 2})
	if err != nil {
		t.Fatalf("%s=%s: PostgreSQL unreachable: %v", EnvDatabaseURL, base, err)
	}
	if err := admin.DB(context.Background()).Exec(`CREATE SCHEMA "` + schema + `"`).Error; err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		admin.DB(context.Background()).Exec(`DROP SCHEMA "` + schema + `" CASCADE`)
		admin.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", EnvDatabaseURL, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Open returns a migrated Store on a fresh database (see URL), closed at the end
// of the test.
func Open(t testing.TB) *storage.Store {
	t.Helper()
	return OpenURL(t, URL(t))
}

// OpenURL opens and migrates a Store on databaseURL, closed at the end of the test.
func OpenURL(t testing.TB, databaseURL string) *storage.Store {
	t.Helper()
	s, err := storage.Open(context.Background(), databaseURL, storage.Options{MaxOpenConns: 8})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return s
}

// KeyRing returns a key ring with fresh random keys.
func KeyRing(t testing.TB) *storage.KeyRing {
	t.Helper()
	k := make([]byte, 32)
	m := make([]byte, 32)
	rand.Read(k)
	rand.Read(m)
	ring, err := storage.NewKeyRing("k1", map[string][]byte{"k1": k}, m)
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

// IsPostgres tells whether tests run on PostgreSQL.
func IsPostgres() bool {
	return strings.HasPrefix(os.Getenv(EnvDatabaseURL), "postgres")
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// FindInTables scans every column of every row of every table, as the database
// returns it, for each needle (compared as bytes, and in upper and lower case). It
// returns "table.column" of the first hit, or "" — for tests that show no secret is
// stored in clear.
func FindInTables(t testing.TB, s *storage.Store, needles ...[]byte) string {
	t.Helper()
	ctx := context.Background()
	tables, err := s.DB(ctx).Migrator().GetTables()
	if err != nil {
		t.Fatal(err)
	}
	for _, table := range tables {
		rows, err := s.DB(ctx).Table(table).Rows()
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				t.Fatal(err)
			}
			for i, v := range vals {
				var b []byte
				switch v := v.(type) {
				case []byte:
					b = v
				case string:
					b = []byte(v)
				default:
					continue
				}
				for _, n := range needles {
					if len(n) == 0 {
						continue
					}
					if bytes.Contains(b, n) || bytes.Contains(b, bytes.ToUpper(n)) || bytes.Contains(b, bytes.ToLower(n)) {
						rows.Close()
						return table + "." + cols[i]
					}
				}
			}
		}
		rows.Close()
	}
	return ""
}
