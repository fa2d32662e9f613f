package storage

import (
	"github.com/libtnb/sqlite"
	"gorm.io/gorm"
)

// sqliteDialector is github.com/libtnb/sqlite's GORM dialector (modernc.org/sqlite,
// pure Go) with one correction to its migrator, below.
type sqliteDialector struct{ *sqlite.Dialector }

func newSQLiteDialector(dsn string) gorm.Dialector {
	return sqliteDialector{&sqlite.Dialector{DSN: dsn}}
}

// Migrator returns libtnb's migrator with column lengths taken from the table's
// DDL only.
func (d sqliteDialector) Migrator(db *gorm.DB) gorm.Migrator {
	return sqliteMigrator{d.Dialector.Migrator(db)}
}

// sqliteMigrator fixes AutoMigrate on tables that hold rows. SQLite declares no
// length for a TEXT or BLOB column, so the migrator falls back to what the driver
// reports for the first row, which modernc.org/sqlite gives as MaxInt64; GORM then
// sees a length unlike the model's `size:` and rebuilds the table (copy, drop,
// rename) on every start — minutes for a million users, and a write lock
// meanwhile. SQLite ignores lengths anyway, so only a length written in the DDL
// counts.
type sqliteMigrator struct{ gorm.Migrator }

func (m sqliteMigrator) ColumnTypes(value any) ([]gorm.ColumnType, error) {
	cts, err := m.Migrator.ColumnTypes(value)
	for i, c := range cts {
		cts[i] = declaredLength{c}
	}
	return cts, err
}

// declaredLength embeds the column through an alias: a field named ColumnType
// would hide the interface's ColumnType method.
type declaredLength struct{ gormColumnType }

type gormColumnType = gorm.ColumnType

// Length reports no length: the driver's per-row figure is not the column's.
func (declaredLength) Length() (int64, bool) { return 0, false }
