package storage

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"sync"

	"gorm.io/gorm"
)

// The statements every login runs (the throttle read, the factor heads, a sealed
// challenge's state, the TOTP step's conditional update) skip gorm's statement
// builder and its callbacks: they are written as SQL, prepared once on the writer's
// pool and run through database/sql. That builder was a third of the update's cost
// (docs/PERFORMANCE.md). Inside InTx they join the transaction, bound to it as
// the statement prepared on the hot pool (txStmt), as every other Store call
// joins it.

// maxHotStmts bounds the prepared statements kept; the login paths have a few
// dozen (the throttle read has one per number of subjects, the audit relay's
// mark one per width, a push login a dozen).
const maxHotStmts = 96

type hotStmts struct {
	mu sync.Mutex
	m  map[string]*sql.Stmt
	// preparing holds the queries being prepared for later transactions.
	preparing sync.Map
}

// hotPool is the pool the login path runs on: on SQLite the writer's single
// connection, whose page cache its own commits keep warm (a reader connection
// drops its whole cache whenever another connection has committed, which under a
// login load is before every read); long reads (listings, the audit trail) stay
// on the read pool, where they do not hold up logins.
func (s *Store) hotPool() (*sql.DB, error) { return s.db.DB() }

// prepared returns query prepared on the hot pool, preparing it the first time.
// kept is false for a statement beyond maxHotStmts: the caller closes it after
// its one use. The lock is not held while preparing, which on SQLite waits for
// the writer's connection.
func (s *Store) prepared(ctx context.Context, query string) (st *sql.Stmt, kept bool, err error) {
	s.hotStmts.mu.Lock()
	st, kept = s.hotStmts.m[query]
	s.hotStmts.mu.Unlock()
	if kept {
		return st, true, nil
	}
	pool, err := s.hotPool()
	if err != nil {
		return nil, false, err
	}
	q := query
	if s.dialect == Postgres {
		q = numberPlaceholders(query)
	}
	if st, err = pool.PrepareContext(ctx, q); err != nil {
		return nil, false, err
	}
	won, kept := s.keepStmt(query, st)
	if won != st {
		// Another caller prepared it meanwhile. Closed outside the lock: closing
		// waits for every connection the statement was prepared on, and one of
		// them may be busy in a transaction (say, waiting for throttle.Guard's
		// advisory lock) whose holder needs hotStmts.mu in txStmt: closing under
		// the lock deadlocked a burst of logins on PostgreSQL.
		_ = st.Close()
	}
	return won, kept, nil
}

// keepStmt keeps st as query's statement unless one is kept already (returned
// instead) or the cache is full (kept false). It calls nothing of database/sql
// while it holds the lock.
func (s *Store) keepStmt(query string, st *sql.Stmt) (*sql.Stmt, bool) {
	s.hotStmts.mu.Lock()
	defer s.hotStmts.mu.Unlock()
	if won, ok := s.hotStmts.m[query]; ok {
		return won, true
	}
	if s.hotStmts.m == nil {
		s.hotStmts.m = make(map[string]*sql.Stmt)
	}
	if len(s.hotStmts.m) >= maxHotStmts {
		return st, false
	}
	s.hotStmts.m[query] = st
	return st, true
}

// sqlTxOf is the database/sql transaction under a gorm transaction.
func sqlTxOf(tx *gorm.DB) (*sql.Tx, bool) {
	switch p := tx.Statement.ConnPool.(type) {
	case *sql.Tx:
		return p, true
	case *gorm.PreparedStmtTX:
		t, ok := p.Tx.(*sql.Tx)
		return t, ok
	}
	return nil, false
}

// txStmt is query's statement, prepared once on the hot pool, bound to the
// transaction tx (database/sql reuses the connection's prepared statement: on
// SQLite the one writer is the transaction's). gorm would prepare it again in
// every transaction (a sixth of a sealed login's CPU). It is nil while query is
// not prepared yet: preparing needs a pooled connection, which on SQLite is
// this transaction's, so it is prepared once the transaction has let it go, for
// the next one, and this one runs it through gorm.
func (s *Store) txStmt(ctx context.Context, tx *gorm.DB, query string) *sql.Stmt {
	stx, ok := sqlTxOf(tx)
	if !ok {
		return nil
	}
	s.hotStmts.mu.Lock()
	st := s.hotStmts.m[query]
	s.hotStmts.mu.Unlock()
	if st == nil {
		if _, busy := s.hotStmts.preparing.LoadOrStore(query, true); !busy {
			go func() {
				defer s.hotStmts.preparing.Delete(query)
				if st, kept, err := s.prepared(context.Background(), query); err == nil && !kept {
					_ = st.Close()
				}
			}()
		}
		return nil
	}
	return stx.StmtContext(ctx, st)
}

// hotQuery runs a login-path query (placeholders written "?").
func (s *Store) hotQuery(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if tx, ok := ctx.Value(txKey{}).(*gorm.DB); ok {
		if p, ok := tx.Statement.ConnPool.(*pipeTx); ok {
			return p.conn.QueryContext(ctx, numberPlaceholders(query), args...) // pgx keeps it prepared
		}
		if st := s.txStmt(ctx, tx, query); st != nil {
			return st.QueryContext(ctx, args...)
		}
		return tx.Raw(query, args...).Rows()
	}
	st, kept, err := s.prepared(ctx, query)
	if err != nil {
		return nil, err
	}
	if !kept {
		defer st.Close()
	}
	return st.QueryContext(ctx, args...)
}

// hotExec runs a login-path statement and returns the rows it changed.
func (s *Store) hotExec(ctx context.Context, query string, args ...any) (int64, error) {
	if tx, ok := ctx.Value(txKey{}).(*gorm.DB); ok {
		if p, ok := tx.Statement.ConnPool.(*pipeTx); ok {
			res, err := p.conn.ExecContext(ctx, numberPlaceholders(query), args...) // pgx keeps it prepared
			if err != nil {
				return 0, err
			}
			return res.RowsAffected()
		}
		st := s.txStmt(ctx, tx, query)
		if st == nil {
			res := tx.Exec(query, args...)
			return res.RowsAffected, res.Error
		}
		res, err := st.ExecContext(ctx, args...)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	}
	st, kept, err := s.prepared(ctx, query)
	if err != nil {
		return 0, err
	}
	if !kept {
		defer st.Close()
	}
	res, err := st.ExecContext(ctx, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (s *Store) closeHotStmts() {
	s.hotStmts.mu.Lock()
	m := s.hotStmts.m
	s.hotStmts.m = nil
	s.hotStmts.mu.Unlock()
	for _, st := range m { // outside the lock, as in prepared
		_ = st.Close()
	}
}

// numberPlaceholders turns each "?" of query into PostgreSQL's $1, $2, …; the
// login path's SQL has no "?" inside a literal.
func numberPlaceholders(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 8)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

// hotRow is one row of a hot query being scanned (database/sql's or pgx's).
type hotRow interface{ Scan(dest ...any) error }

// queryOne runs a hot query expected to return at most one row and scans it;
// ErrNotFound without a row.
func queryOne[T any](ctx context.Context, s *Store, scan func(hotRow) (T, error), query string, args ...any) (*T, error) {
	rows, err := s.hotQuery(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, err
		}
		return nil, ErrNotFound
	}
	v, err := scan(rows)
	if err != nil {
		return nil, err
	}
	return &v, rows.Close()
}
