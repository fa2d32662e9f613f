package storagetest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/twofactor/twofactor/storage"
)

// AssertNotStored fails the test when any column of any table of s holds one of
// secrets in clear (as text or bytes, ignoring case). It reads the raw tables, not
// the models, so a column no model maps is read too. It returns how many rows it
// read, so a caller can check the secrets' rows were there to be read.
func AssertNotStored(t testing.TB, s *storage.Store, secrets ...string) int {
	t.Helper()
	db := s.DB(context.Background())
	tables, err := db.Migrator().GetTables()
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	if len(tables) == 0 {
		t.Fatal("no tables to read")
	}
	read := 0
	for _, table := range tables {
		rows, err := db.Table(table).Rows()
		if err != nil {
			t.Fatalf("read %s: %v", table, err)
		}
		cols, _ := rows.Columns()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			read++
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				t.Fatalf("scan %s: %v", table, err)
			}
			for i, v := range vals {
				var text string
				switch v := v.(type) {
				case []byte:
					text = string(v)
				case string:
					text = v
				default:
					text = fmt.Sprint(v)
				}
				for _, secret := range secrets {
					if secret != "" && strings.Contains(strings.ToUpper(text), strings.ToUpper(secret)) {
						t.Errorf("table %s column %s holds a secret in clear", table, cols[i])
					}
				}
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("read %s: %v", table, err)
		}
		rows.Close()
	}
	return read
}
