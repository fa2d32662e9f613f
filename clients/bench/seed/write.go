package seed

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/twofactor/twofactor/storage"
)

// columns are the factor columns a seeded row sets; the others keep their
// defaults (NULL, 0).
var columns = []string{"id", "user_id", "method", "name", "state", "sealed_secret", "secret_key_id", "data", "attempts", "created_at", "updated_at"}

// maxBatch keeps a multi-row INSERT under SQLite's 32 766 parameters.
const maxBatch = 2000

func values(f *storage.Factor) []any {
	return []any{f.ID, f.UserID, f.Method, f.Name, f.State, f.SealedSecret, f.SecretKeyID, f.Data, f.Attempts, f.CreatedAt, f.UpdatedAt}
}

// writer stores one chunk per transaction on a connection of its own; rows that
// exist already (same id) are kept, so seeding twice inserts nothing new.
type writer interface {
	write(ctx context.Context, rows []storage.Factor) error
	close()
}

func newWriter(ctx context.Context, store *storage.Store, batch int) (writer, error) {
	db, err := store.DB(ctx).DB()
	if err != nil {
		return nil, err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	if store.Dialect() == storage.Postgres {
		return copyWriter{conn}, nil
	}
	// A page cache large enough for the indexes (the ids are random, so without
	// it every insert reads its index page back from the file), and the statement
	// journal of each multi-row INSERT in memory instead of a temporary file.
	for _, p := range []string{"cache_size = -" + strconv.Itoa(sqliteCacheKiB), "temp_store = MEMORY"} {
		if _, err := conn.ExecContext(ctx, "PRAGMA "+p); err != nil {
			_ = conn.Close()
			return nil, err
		}
	}
	return &insertWriter{conn: conn, batch: batch}, nil
}

// sqliteCacheKiB is the seeding connection's page cache (2 GiB: the indexes of
// 10 million users).
const sqliteCacheKiB = 2 << 20

// insertWriter writes batch rows per prepared INSERT (SQLite).
type insertWriter struct {
	conn  *sql.Conn
	batch int
	stmts map[int]*sql.Stmt // by rows per statement
	args  []any
}

func insertSQL(n int) string {
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", len(columns)), ",") + ")"
	return "INSERT INTO factors (" + strings.Join(columns, ", ") + ") VALUES " +
		strings.TrimSuffix(strings.Repeat(row+",", n), ",") + " ON CONFLICT DO NOTHING"
}

func (w *insertWriter) stmt(ctx context.Context, n int) (*sql.Stmt, error) {
	if st, ok := w.stmts[n]; ok {
		return st, nil
	}
	st, err := w.conn.PrepareContext(ctx, insertSQL(n))
	if err != nil {
		return nil, err
	}
	if w.stmts == nil {
		w.stmts = map[int]*sql.Stmt{}
	}
	w.stmts[n] = st
	return st, nil
}

// write runs BEGIN and COMMIT itself: a statement prepared on a sql.Conn would be
// prepared (parsed) again on every use inside a sql.Tx.
func (w *insertWriter) write(ctx context.Context, rows []storage.Factor) (err error) {
	if _, err := w.conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_, _ = w.conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	for lo := 0; lo < len(rows); lo += w.batch {
		part := rows[lo:min(lo+w.batch, len(rows))]
		st, err := w.stmt(ctx, len(part))
		if err != nil {
			return err
		}
		w.args = w.args[:0]
		for i := range part {
			w.args = append(w.args, values(&part[i])...)
		}
		if _, err := st.ExecContext(ctx, w.args...); err != nil {
			return err
		}
	}
	_, err = w.conn.ExecContext(ctx, "COMMIT")
	return err
}

func (w *insertWriter) close() {
	for _, st := range w.stmts {
		_ = st.Close()
	}
	_ = w.conn.Close()
}

// copyWriter copies each chunk into factors with COPY (pgx CopyFrom), in a
// savepoint; when some of its rows exist already (a unique violation: seeding
// again), it copies the chunk into a temporary table instead and moves it with
// one INSERT … SELECT … ON CONFLICT DO NOTHING (COPY itself cannot skip rows).
type copyWriter struct{ conn *sql.Conn }

const seedTable = "authbench_seed"

func (w copyWriter) write(ctx context.Context, rows []storage.Factor) error {
	return w.conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("seed: PostgreSQL driver connection is %T, want pgx", dc)
		}
		return copyRows(ctx, sc.Conn(), rows)
	})
}

func copyRows(ctx context.Context, c *pgx.Conn, rows []storage.Factor) error {
	tx, err := c.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit, a no-op
	sp, err := tx.Begin(ctx)
	if err != nil {
		return err
	}
	err = copyInto(ctx, sp, "factors", rows)
	var pe *pgconn.PgError
	switch {
	case err == nil:
		err = sp.Commit(ctx)
	case errors.As(err, &pe) && pe.Code == "23505": // unique_violation
		if err = sp.Rollback(ctx); err == nil {
			err = copyMerge(ctx, tx, rows)
		}
	}
	if err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func copyInto(ctx context.Context, tx pgx.Tx, table string, rows []storage.Factor) error {
	n, err := tx.CopyFrom(ctx, pgx.Identifier{table}, columns, pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
		return values(&rows[i]), nil
	}))
	if err == nil && n != int64(len(rows)) {
		err = errors.New("seed: COPY wrote fewer rows than given")
	}
	return err
}

func copyMerge(ctx context.Context, tx pgx.Tx, rows []storage.Factor) error {
	if _, err := tx.Exec(ctx, "CREATE TEMP TABLE IF NOT EXISTS "+seedTable+" (LIKE factors INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"); err != nil {
		return err
	}
	if err := copyInto(ctx, tx, seedTable, rows); err != nil {
		return err
	}
	cols := strings.Join(columns, ", ")
	_, err := tx.Exec(ctx, "INSERT INTO factors ("+cols+") SELECT "+cols+" FROM "+seedTable+" ON CONFLICT DO NOTHING")
	return err
}

func (w copyWriter) close() { _ = w.conn.Close() }
