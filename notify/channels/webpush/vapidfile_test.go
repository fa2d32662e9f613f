package webpush_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/twofactor/twofactor/notify/channels/webpush"
)

// The key pair written once (0600), kept on a second call, loads into a Sender;
// a file others may read is refused.
func TestVAPIDKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", webpush.DefaultVAPIDKeyFile)
	if created, err := webpush.EnsureVAPIDKeyFile(path); err != nil || !created {
		t.Fatalf("created %v, %v", created, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", st.Mode(), err)
	}
	priv, pub, err := webpush.LoadVAPIDKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if created, err := webpush.EnsureVAPIDKeyFile(path); err != nil || created {
		t.Fatalf("second call: created %v, %v", created, err)
	}
	if p2, _, _ := webpush.LoadVAPIDKeyFile(path); p2 != priv {
		t.Fatal("the second call replaced the key")
	}
	if _, err := webpush.New(webpush.Config{VAPIDPublicKey: pub, VAPIDPrivateKey: priv, Subscriber: "ops@auth.example"}); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := webpush.LoadVAPIDKeyFile(path); err == nil {
		t.Fatal("a world-readable key file was loaded")
	}
	if _, _, err := webpush.LoadVAPIDKeyFile(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Fatal("a missing file was loaded")
	}
}

// FuzzParseVAPIDKeys: any input is refused or yields a pair New accepts.
func FuzzParseVAPIDKeys(f *testing.F) {
	priv, pub, err := webpush.GenerateVAPIDKeys()
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`{"public_key":"` + pub + `","private_key":"` + priv + `"}`))
	f.Add([]byte(`{"public_key":"` + pub + `","private_key":"AAAA"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		priv, pub, err := webpush.ParseVAPIDKeys(raw)
		if err != nil {
			return
		}
		if _, err := webpush.New(webpush.Config{VAPIDPublicKey: pub, VAPIDPrivateKey: priv, Subscriber: "ops@auth.example"}); err != nil {
			t.Fatalf("parsed keys New refuses: %v", err)
		}
	})
}

// A file whose keys are not a pair is refused when it is loaded.
func TestVAPIDKeyFileMismatch(t *testing.T) {
	_, pub1, _ := webpush.GenerateVAPIDKeys()
	priv2, _, _ := webpush.GenerateVAPIDKeys()
	path := filepath.Join(t.TempDir(), "vapid.json")
	if err := os.WriteFile(path, []byte(`{"public_key":"`+pub1+`","private_key":"`+priv2+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := webpush.LoadVAPIDKeyFile(path); err == nil {
		t.Fatal("a mismatched pair was loaded")
	}
}
