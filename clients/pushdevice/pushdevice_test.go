package pushdevice_test

import (
	"path/filepath"
	"testing"

	"github.com/twofactor/twofactor/clients/pushdevice"
	"github.com/twofactor/twofactor/providers/push/pushsig"
)

func TestAuthVerifiesAndFileRoundTrips(t *testing.T) {
	d, err := pushdevice.New()
	if err != nil {
		t.Fatal(err)
	}
	d.ID, d.UserID = "dev-1", "alice"
	a, err := d.Auth(pushsig.PurposeRespond, "c-1", "approve", "42")
	if err != nil {
		t.Fatal(err)
	}
	msg := pushsig.RequestMessage(pushsig.PurposeRespond, "dev-1", a.TimestampMs, a.Nonce, "c-1", "approve", "42")
	if !pushsig.VerifySignature(&d.Key.PublicKey, msg, a.Signature) || len(a.Nonce) != 16 {
		t.Fatal("signature does not verify")
	}
	b, _ := d.Auth(pushsig.PurposeRespond, "c-1", "approve", "42")
	if string(a.Nonce) == string(b.Nonce) {
		t.Fatal("nonce reused")
	}
	path := filepath.Join(t.TempDir(), "device.json")
	if err := d.Save(path, "localhost:7443"); err != nil {
		t.Fatal(err)
	}
	if err := d.Save(path, ""); err == nil {
		t.Fatal("overwrote a device file")
	}
	got, server, err := pushdevice.Load(path)
	if err != nil || got.ID != "dev-1" || got.UserID != "alice" || server != "localhost:7443" || !got.Key.Equal(d.Key) {
		t.Fatalf("load = %+v, %q, %v", got, server, err)
	}
}
