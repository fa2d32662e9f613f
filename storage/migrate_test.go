package storage_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/twofactor/twofactor/storage"
)

// TestMigrateKeepsPopulatedTables starts twice on a SQLite file that holds rows:
// the second Migrate must change no table. (A rebuilt table, copied and renamed,
// gets a new root page; with a million users that rebuild took minutes on every
// start.)
func TestMigrateKeepsPopulatedTables(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "twofactor.db")
	s, err := storage.Open(ctx, path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	step := int64(7)
	if err := s.CreateFactor(ctx, &storage.Factor{ID: "f1", UserID: "alice", Method: "totp", Name: "phone",
		State: storage.FactorActive, SealedSecret: []byte("sealed"), SecretKeyID: "k1", LastStep: &step, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateChallenge(ctx, &storage.Challenge{ID: "c1", UserID: "alice", FactorID: "f1", Method: "totp",
		State: storage.ChallengeOpen, MaxAttempts: 5, ExpiresAt: now.Add(time.Minute), ClientIP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAppPassword(ctx, &storage.AppPassword{ID: "a1", UserID: "alice", Name: "dav", LookupHash: make([]byte, 32), CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	before := rootPages(t, path)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = storage.Open(ctx, path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if after := rootPages(t, path); !reflect.DeepEqual(before, after) {
		t.Errorf("a second Migrate rebuilt tables: root pages %v, then %v", before, after)
	}
	if f, err := s.GetFactor(ctx, "alice", "f1"); err != nil || f.Name != "phone" || f.LastStep == nil || *f.LastStep != step {
		t.Errorf("factor after the second start: %+v, %v", f, err)
	}
}

// rootPages maps each table to its first B-tree page, read through a
// connection of its own.
func rootPages(t *testing.T, path string) map[string]int64 {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT name, rootpage FROM sqlite_master WHERE type = 'table' ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	pages := map[string]int64{}
	for rows.Next() {
		var name string
		var page int64
		if err := rows.Scan(&name, &page); err != nil {
			t.Fatal(err)
		}
		pages[name] = page
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return pages
}
