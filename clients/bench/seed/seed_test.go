package seed_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/twofactor/twofactor/clients/bench"
	"github.com/twofactor/twofactor/clients/bench/seed"
	"github.com/twofactor/twofactor/providers/totp"
	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// TestSeedOverlapAndSeal seeds users 0–49, then 30–79 (20 of them anew): the
// second run keeps the 20 it finds (the SQLite INSERT's ON CONFLICT, the
// PostgreSQL COPY's fallback) and adds the rest, each seed sealed to its row.
func TestSeedOverlapAndSeal(t *testing.T) {
	ctx := context.Background()
	dbURL, keys := storagetest.URL(t), filepath.Join(t.TempDir(), "keys.json")
	for _, first := range []int{0, 30} {
		opts := seed.Options{DatabaseURL: dbURL, KeyFile: keys, Secret: "s", First: first, Count: 50, Batch: 7, Tx: 16, Workers: 3}
		if _, err := seed.Seed(ctx, opts); err != nil {
			t.Fatalf("seed from %d: %v", first, err)
		}
	}
	store := storagetest.OpenURL(t, dbURL)
	ring, err := storage.LoadKeyRing(keys)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := store.DB(ctx).Model(&storage.Factor{}).Count(&n).Error; err != nil || n != 80 {
		t.Fatalf("%d factors (%v), want 80", n, err)
	}
	for _, i := range []int{0, 29, 30, 49, 50, 79} {
		user := bench.UserID(i)
		fs, err := store.ListFactors(ctx, user, totp.Method, storage.FactorActive)
		if err != nil || len(fs) != 1 {
			t.Fatalf("%s: %d factors (%v), want 1", user, len(fs), err)
		}
		got, err := ring.Open(fs[0].SecretKeyID, fs[0].SealedSecret, fs[0].AAD())
		if err != nil || !bytes.Equal(got, bench.SeedFor("s", user)) {
			t.Fatalf("%s: seed does not open to SeedFor (%v)", user, err)
		}
	}
}
