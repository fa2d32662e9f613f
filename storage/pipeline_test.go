package storage_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
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

// A sealed challenge's state read ahead with the counts (WithSealedRead: on
// PostgreSQL a fourth statement of the attempt's pipeline) is read after the
// hold too: an attempt that waited for another's sees the wrong answer and the
// step that one committed meanwhile, read once, and LoadSealedChallenge reads
// again after that.
func TestSealedReadAfterTheHold(t *testing.T) {
	url := storagetest.URL(t)
	a, b := storagetest.OpenURL(t, url), storagetest.OpenURL(t, url)
	ctx := context.Background()
	step := int64(7)
	if err := a.CreateFactor(ctx, &storage.Factor{ID: "f1", UserID: "alice", Method: "totp", Name: "Phone", State: storage.FactorActive,
		SealedSecret: []byte{1, 2}, SecretKeyID: "k1", LastStep: &step, CreatedAt: attemptNow, UpdatedAt: attemptNow}); err != nil {
		t.Fatal(err)
	}
	mk := func() *storage.Challenge {
		return &storage.Challenge{ID: "c1", UserID: "alice", FactorID: "f1", Method: "totp", State: storage.ChallengeOpen, MaxAttempts: 5,
			ExpiresAt: attemptNow.Add(time.Minute), ClientIP: "192.0.2.1", CreatedAt: attemptNow}
	}
	keys := []string{"user:alice", "hold:challenge:c1"}
	holding, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- a.InAttempt(ctx, keys, alice, "", "", attemptNow, func(ctx context.Context, _ []storage.ThrottleState, _ time.Time) error {
			if _, _, err := a.FailSealedChallengeAttempt(ctx, mk(), attemptNow); err != nil {
				return err
			}
			if _, err := a.AdvanceLastStepFrom(ctx, "f1", &step, step+1, attemptNow); err != nil {
				return err
			}
			close(holding)
			<-release
			return nil
		})
	}()
	<-holding
	type seen struct {
		ahead, again bool
		attempts     int
		step         int64
		secret       string
	}
	got := make(chan seen, 1)
	go func() {
		c := mk()
		var s seen
		err := b.InAttempt(storage.WithSealedRead(ctx, c), keys, alice, "", "", attemptNow,
			func(ctx context.Context, _ []storage.ThrottleState, _ time.Time) error {
				s.ahead = storage.SealedReadAhead(ctx, c)
				f, err := b.LoadSealedChallenge(ctx, c)
				if err != nil || f == nil || f.LastStep == nil {
					return fmt.Errorf("factor %+v, %v", f, err)
				}
				s.attempts, s.step, s.secret = c.Attempts, *f.LastStep, fmt.Sprint(f.SealedSecret, f.SecretKeyID, f.Method, f.State)
				s.again = storage.SealedReadAhead(ctx, c)
				return nil
			})
		if err != nil {
			t.Error(err)
		}
		got <- s
	}()
	if storagetest.IsPostgres() {
		waitForAdvisoryWaiter(t, a, "user:alice")
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s := <-got
	if s.attempts != 1 || s.step != step+1 || s.secret != "[1 2]k1totpactive" {
		t.Fatalf("the waiting attempt read %d attempts, step %d, %s; want the holder's 1 and %d", s.attempts, s.step, s.secret, step+1)
	}
	if s.ahead != storagetest.IsPostgres() || s.again {
		t.Fatalf("read ahead %v (want %v on PostgreSQL only), still there after it was taken: %v", s.ahead, storagetest.IsPostgres(), s.again)
	}
}
