package storage_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

var attemptNow = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// failOnce counts one failure of user:alice.
func failOnce(ctx context.Context, st *storage.Store) error {
	_, _, err := st.RecordThrottleFailure(ctx, "user", "alice", attemptNow, time.Hour,
		func(int, time.Time) (time.Time, bool) { return time.Time{}, false })
	return err
}

var alice = []storage.ThrottleSubject{{Kind: "user", Key: "alice"}}

// aliceFailures reads alice's count in an attempt of its own.
func aliceFailures(t *testing.T, st *storage.Store) int {
	t.Helper()
	n, err := readFailures(st)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func readFailures(st *storage.Store) (int, error) {
	n := -1
	err := st.InAttempt(context.Background(), []string{"user:alice"}, alice, "", "", attemptNow,
		func(_ context.Context, rows []storage.ThrottleState, _ time.Time) error {
			n = 0
			for _, r := range rows {
				n += r.Failures
			}
			return nil
		})
	return n, err
}

// An attempt that waited for the hold reads what its holder committed while it
// waited, on another replica: on PostgreSQL BEGIN, the lock and the read go as
// one pipeline, and the read must not take its snapshot before the lock is
// granted (a stale one would let concurrent wrong guesses past the limit).
func TestInAttemptReadsAfterTheHold(t *testing.T) {
	url := storagetest.URL(t)
	a, b := storagetest.OpenURL(t, url), storagetest.OpenURL(t, url)
	holding, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- a.InAttempt(context.Background(), []string{"user:alice"}, alice, "", "", attemptNow,
			func(ctx context.Context, _ []storage.ThrottleState, _ time.Time) error {
				if err := failOnce(ctx, a); err != nil {
					return err
				}
				close(holding)
				<-release
				return nil
			})
	}()
	<-holding
	waited := make(chan int, 1)
	go func() {
		n, err := readFailures(b)
		if err != nil {
			t.Error(err)
		}
		waited <- n
	}()
	if storagetest.IsPostgres() {
		waitForAdvisoryWaiter(t, a, "user:alice")
	} // SQLite: the reader queues for the one writer connection either way
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := <-waited; n != 1 {
		t.Fatalf("the waiting attempt read %d failures, want the holder's 1", n)
	}
}

// waitForAdvisoryWaiter returns once a session waits for key's advisory lock
// (the key hashed as storage.LockAttempt does).
func waitForAdvisoryWaiter(t *testing.T, st *storage.Store, key string) {
	t.Helper()
	h := sha256.Sum256([]byte(key))
	id := binary.BigEndian.Uint64(h[:8])
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		var n int64
		if err := st.DB(context.Background()).Raw(`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
			AND classid::bigint = ? AND objid::bigint = ? AND objsubid = 1`, id>>32, id&0xffffffff).Scan(&n).Error; err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		time.Sleep(5 * time.Millisecond) // polling an observable state, not waiting for luck
	}
	t.Fatal("no session waits for the advisory lock")
}

// An attempt whose work fails or panics keeps nothing, and its connection does
// not come back to the pool inside a transaction; one nested in InTx joins it.
func TestInAttemptRollsBack(t *testing.T) {
	st := storagetest.Open(t)
	ctx := context.Background()
	boom := errors.New("boom")
	err := st.InAttempt(ctx, []string{"user:alice"}, alice, "", "", attemptNow,
		func(ctx context.Context, _ []storage.ThrottleState, _ time.Time) error {
			if err := failOnce(ctx, st); err != nil {
				return err
			}
			return boom
		})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want fn's error", err)
	}
	func() {
		defer func() { _ = recover() }()
		_ = st.InAttempt(ctx, []string{"user:alice"}, alice, "", "", attemptNow,
			func(ctx context.Context, _ []storage.ThrottleState, _ time.Time) error {
				if err := failOnce(ctx, st); err != nil {
					return err
				}
				panic("eval panicked")
			})
	}()
	for range 20 { // more than the pool's connections: none was left in a transaction
		if n := aliceFailures(t, st); n != 0 {
			t.Fatalf("%d failures kept from rolled-back attempts", n)
		}
	}
	err = st.InTx(ctx, func(ctx context.Context) error {
		if err := failOnce(ctx, st); err != nil {
			return err
		}
		return st.InAttempt(ctx, []string{"user:alice"}, alice, "", "", attemptNow,
			func(_ context.Context, rows []storage.ThrottleState, _ time.Time) error {
				if len(rows) != 1 || rows[0].Failures != 1 {
					t.Errorf("nested attempt read %+v, want the outer transaction's failure", rows)
				}
				return boom
			})
	})
	if !errors.Is(err, boom) || aliceFailures(t, st) != 0 {
		t.Fatalf("nested attempt: %v, the outer transaction not rolled back", err)
	}
	if err := st.InAttempt(ctx, make([]string, 9), nil, "", "", attemptNow, nil); err == nil {
		t.Fatal("nine keys held")
	}
}
