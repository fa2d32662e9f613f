package notify_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/twofactor/twofactor/notify"
)

const testToken = "test-token-0123456789abcdefghijklmnopqrstuvwxyz"

// Issue 16, finding 5: an anonymous client of the embedded listener is refused; the
// token from the data folder lets one in; the in-process connection needs nothing.
func TestEmbeddedListenerRefusesAnonymousClients(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, notify.TokenFileName)
	tok, err := notify.EnsureTokenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := notify.EnsureTokenFile(path); err != nil || again != tok {
		t.Fatalf("a second EnsureTokenFile: %q, %v (want the same token)", again, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode: %v, %v", fi.Mode(), err)
	}
	emb, err := notify.StartEmbedded(notify.EmbeddedConfig{StoreDir: filepath.Join(dir, "nats"), Listen: "127.0.0.1:0", Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Shutdown()
	u := emb.ClientURL()
	if nc, err := nats.Connect(u); err == nil {
		nc.Close()
		t.Fatal("an anonymous client connected")
	}
	if nc, err := nats.Connect(u, nats.Token(tok[1:]+"x")); err == nil {
		nc.Close()
		t.Fatal("a wrong token connected")
	}
	opt, err := notify.TokenOption(path)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(u, opt)
	if err != nil {
		t.Fatalf("with the token: %v", err)
	}
	nc.Close()
	in, err := emb.Connect()
	if err != nil {
		t.Fatalf("in-process: %v", err)
	}
	in.Close()
}

// With TLS, a client in clear is refused even with the token; over TLS it connects,
// and the in-process connection still needs no TLS.
func TestEmbeddedListenerTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	emb, err := notify.StartEmbedded(notify.EmbeddedConfig{StoreDir: t.TempDir(), Listen: "127.0.0.1:0", Token: testToken,
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Shutdown()
	u := emb.ClientURL()
	if nc, err := nats.Connect(u, nats.Token(testToken), nats.Timeout(2*time.Second)); err == nil {
		nc.Close()
		t.Fatal("a client in clear connected to a TLS listener")
	}
	nc, err := nats.Connect(u, nats.Token(testToken), nats.Secure(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatalf("over TLS: %v", err)
	}
	nc.Close()
	in, err := emb.Connect()
	if err != nil {
		t.Fatalf("in-process: %v", err)
	}
	in.Close()
}

func TestReadTokenFileRefusesJunk(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tok")
	os.WriteFile(path, []byte("short\n"), 0o600)
	if _, err := notify.ReadTokenFile(path); err == nil {
		t.Fatal("a short token was accepted")
	}
	if _, err := notify.EnsureTokenFile(path); err == nil {
		t.Fatal("EnsureTokenFile accepted (or overwrote) a junk file")
	}
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "nats"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
