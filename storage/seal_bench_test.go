package storage_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"testing"

	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// TestMACMatchesHMAC pins MAC to its definition: HMAC-SHA-256 over purpose, a
// zero byte and the data, also when called from many goroutines at once (the
// keyed states are reused).
func TestMACMatchesHMAC(t *testing.T) {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	ring, err := storage.NewKeyRing("k1", map[string][]byte{"k1": key}, key)
	if err != nil {
		t.Fatal(err)
	}
	want := func(purpose string, data ...[]byte) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(purpose + "\x00"))
		for _, d := range data {
			m.Write(d)
		}
		return m.Sum(nil)
	}
	cases := []struct {
		purpose string
		data    [][]byte
	}{
		{"app-password", [][]byte{[]byte("tfap_ABCDEFGHJKMNPQRSTVWXYZ2345")}},
		{"backup-code", [][]byte{[]byte("alice"), {0}, []byte("ABCDE23456")}},
		{"empty", nil},
	}
	done := make(chan struct{})
	for g := 0; g < 8; g++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; i < 200; i++ {
				c := cases[i%len(cases)]
				if got := ring.MAC(c.purpose, c.data...); !hmac.Equal(got, want(c.purpose, c.data...)) {
					t.Errorf("MAC(%q) differs from HMAC-SHA-256", c.purpose)
					return
				}
			}
		}()
	}
	for g := 0; g < 8; g++ {
		<-done
	}
}

func BenchmarkSeal(b *testing.B) {
	ring := storagetest.KeyRing(b)
	seed := make([]byte, 20)
	aad := storage.SealAAD("factors", "bench-00000001", "3f2504e0-4f89-41d3-9a0c-0305e82c3301")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ring.Seal(seed, aad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	ring := storagetest.KeyRing(b)
	aad := storage.SealAAD("factors", "bench-00000001", "3f2504e0-4f89-41d3-9a0c-0305e82c3301")
	id, sealed, err := ring.Seal(make([]byte, 20), aad)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ring.Open(id, sealed, aad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMAC(b *testing.B) {
	ring := storagetest.KeyRing(b)
	pw := []byte("tfap_ABCDEFGHJKMNPQRSTVWXYZ2345")
	b.ReportAllocs()
	for b.Loop() {
		ring.MAC("app-password", pw)
	}
}

func BenchmarkMACParallel(b *testing.B) {
	ring := storagetest.KeyRing(b)
	pw := []byte("tfap_ABCDEFGHJKMNPQRSTVWXYZ2345")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ring.MAC("app-password", pw)
		}
	})
}
