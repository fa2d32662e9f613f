package storage

import (
	"database/sql"

	"github.com/libtnb/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/migrator"
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
		ddl, _ := c.(migrator.ColumnType) // what libtnb parsed from CREATE TABLE
		cts[i] = declaredLength{gormColumnType: c, declared: ddl.LengthValue}
	}
	return cts, err
}

// declaredLength is a column whose length is the one its DDL declares, if any.
// It embeds the column through an alias: a field named ColumnType would hide the
// interface's ColumnType method.
type declaredLength struct {
	gormColumnType
	declared sql.NullInt64
}

type gormColumnType = gorm.ColumnType

// Length reports the DDL's length, never the driver's per-row figure.
func (c declaredLength) Length() (int64, bool) { return c.declared.Int64, c.declared.Valid }
