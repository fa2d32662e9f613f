package storage

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/gorm"
)

// AttemptFunc is an attempt's work inside InAttempt: the states and the
// familiar mark GetAttemptStates read under the hold, and the transaction's ctx.
type AttemptFunc func(ctx context.Context, states []ThrottleState, familiarSeen time.Time) error

// InAttempt runs one attempt (see the top of attempts.go) as one transaction:
// LockAttempt(keys), then GetAttemptStates(subjects, user, network, now), then
// fn with their result, committed when fn returns nil and rolled back otherwise.
//
// On PostgreSQL, outside another transaction, BEGIN, the lock and the read go
// to the server as one pipeline (a pgx batch: three statements, one round trip
// instead of three). They stay three statements: the server runs a pipeline's
// statements one after the other, and under READ COMMITTED each takes its
// snapshot when it starts (the read's when its Bind is processed, after the
// lock's Execute has returned), so the read sees every count the previous
// holders committed while this attempt waited for the lock, as it does when
// sent on its own. (One statement that took the lock and read would not: its
// snapshot predates the wait.) The rest of the transaction runs on the same
// connection, with fn's Store calls joining it as they join InTx. A ctx from
// WithSealedRead adds the sealed challenge's state read to that pipeline, as a
// fourth statement after the lock (its snapshot too is taken after the wait).
func (s *Store) InAttempt(ctx context.Context, keys []string, subjects []ThrottleSubject, user, network string, now time.Time, fn AttemptFunc) error {
	if len(keys) > maxAttemptKeys {
		return errors.New("storage: too many attempt keys")
	}
	if r, ok := ctx.Value(sealedReadKey{}).(*sealedRead); ok {
		// Only what this attempt reads ahead counts, and only inside it.
		r.done = false
		defer func() { r.done = false }()
	}
	if _, nested := ctx.Value(txKey{}).(*gorm.DB); nested || s.dialect != Postgres {
		return s.InTx(ctx, func(ctx context.Context) error {
			if err := s.LockAttempt(ctx, keys); err != nil {
				return err
			}
			states, seen, err := s.GetAttemptStates(ctx, subjects, user, network, now)
			if err != nil {
				return err
			}
			return fn(ctx, states, seen)
		})
	}
	pool, err := s.hotPool()
	if err != nil {
		return err
	}
	conn, err := pool.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return s.pipelinedAttempt(ctx, conn, keys, subjects, user, network, now, fn)
}

// pipelinedAttempt is InAttempt's PostgreSQL transaction on conn.
func (s *Store) pipelinedAttempt(ctx context.Context, conn *sql.Conn, keys []string, subjects []ThrottleSubject, user, network string, now time.Time, fn AttemptFunc) (err error) {
	p := &pipeTx{conn: conn}
	sealed, _ := ctx.Value(sealedReadKey{}).(*sealedRead)
	var states []ThrottleState
	var seen time.Time
	err = p.raw(func(c *pgx.Conn) error {
		states, seen, err = beginAttempt(ctx, c, keys, subjects, user, network, now, sealed)
		return err
	})
	committed := false
	defer func() {
		if !committed {
			// Also after a failed BEGIN pipeline (which may have left the
			// transaction open, aborted) and on a panic in fn.
			if rerr := p.Rollback(); rerr != nil && err == nil {
				err = rerr
			}
		}
	}()
	if err != nil {
		return err
	}
	tx := s.db.Session(&gorm.Session{Context: ctx, NewDB: true})
	tx.Statement.ConnPool = p
	if err = fn(context.WithValue(ctx, txKey{}, tx), states, seen); err != nil {
		return err
	}
	committed = true
	return p.Commit()
}

// beginAttempt sends BEGIN, the advisory locks of keys, the states' read and,
// when sealed is set (WithSealedRead), the sealed challenge's state as one batch
// on c and returns what the read found; sealed gets its state. Each read is its
// own statement after the lock's, so each takes its snapshot once the lock is
// granted.
func beginAttempt(ctx context.Context, c *pgx.Conn, keys []string, subjects []ThrottleSubject, user, network string, now time.Time, sealed *sealedRead) ([]ThrottleState, time.Time, error) {
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	locks := len(keys) > 0
	if locks {
		q, args := lockAttemptSQL(keys)
		b.Queue(numberPlaceholders(q), args...)
	}
	read, args := attemptStatesSQL(subjects, user, network, now)
	if read != "" {
		b.Queue(numberPlaceholders(read), args...)
	}
	if sealed != nil {
		sealed.done = false
		b.Queue(sealedStatePGSQL, sealed.factorID, sealed.userID, sealed.id)
	}
	br := c.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return nil, time.Time{}, err
	}
	if locks {
		if _, err := br.Exec(); err != nil {
			return nil, time.Time{}, err
		}
	}
	var states []ThrottleState
	var seen time.Time
	if read != "" {
		rows, err := br.Query()
		if err != nil {
			return nil, time.Time{}, err
		}
		states, seen, err = scanAttemptStates(rows)
		rows.Close()
		if err != nil {
			return nil, time.Time{}, err
		}
	}
	if sealed != nil {
		rows, err := br.Query()
		if err != nil {
			return nil, time.Time{}, err
		}
		err = scanSealedState(rows, sealed)
		rows.Close()
		if err != nil {
			return nil, time.Time{}, err
		}
		sealed.done = true
	}
	return states, seen, br.Close()
}

// pipeTx is an InAttempt transaction on PostgreSQL as gorm's ConnPool: the
// connection it began on. It is a TxCommitter, so that gorm nests a transaction
// in it as a savepoint, and deliberately not a TxBeginner.
type pipeTx struct {
	conn *sql.Conn
}

func (p *pipeTx) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return p.conn.PrepareContext(ctx, query)
}

func (p *pipeTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return p.conn.ExecContext(ctx, query, args...)
}

func (p *pipeTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return p.conn.QueryContext(ctx, query, args...)
}

func (p *pipeTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return p.conn.QueryRowContext(ctx, query, args...)
}

// endTxTimeout bounds a COMMIT or ROLLBACK, which do not depend on the
// caller's ctx (a caller that hung up still ends its transaction).
const endTxTimeout = 30 * time.Second

// Commit ends the transaction; an aborted one (a statement failed and the
// failure was ignored) is rolled back by the server and reported, as pgx's own
// Tx.Commit does.
func (p *pipeTx) Commit() error {
	ctx, cancel := context.WithTimeout(context.Background(), endTxTimeout)
	defer cancel()
	return p.raw(func(c *pgx.Conn) error {
		tag, err := c.Exec(ctx, "COMMIT")
		if err == nil && tag.String() == "ROLLBACK" {
			err = pgx.ErrTxCommitRollback
		}
		return err
	})
}

// Rollback ends the transaction without keeping anything, also when the
// caller's ctx is done.
func (p *pipeTx) Rollback() error {
	ctx, cancel := context.WithTimeout(context.Background(), endTxTimeout)
	defer cancel()
	return p.raw(func(c *pgx.Conn) error {
		_, err := c.Exec(ctx, "ROLLBACK")
		return err
	})
}

// raw runs f on the pgx connection under p. A connection that failed is not
// given back to the pool (database/sql closes it on driver.ErrBadConn; pgx's
// ResetSession would also refuse one left inside a transaction).
func (p *pipeTx) raw(f func(c *pgx.Conn) error) error {
	return p.conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("storage: PostgreSQL connection is %T, not pgx", dc)
		}
		if err := f(sc.Conn()); err != nil {
			if sc.Conn().IsClosed() {
				return errors.Join(err, driver.ErrBadConn)
			}
			return err
		}
		return nil
	})
}
