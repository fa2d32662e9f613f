package notify_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twofactor/twofactor/notify"
)

func sealedSend(t *testing.T, key *notify.DeliveryKey) (notify.GatewaySend, []byte) {
	t.Helper()
	g := notify.GatewaySend{ChallengeID: "ch-seal", Channel: notify.ChannelEmail, UserID: "u-1",
		ExpiresAt: time.Date(2026, 3, 1, 12, 5, 0, 0, time.UTC), Destination: "alice@example.org",
		Code: "918273", Subject: "Your code", Text: "Your code is 918273.", Locale: "de-DE"}
	data, err := key.SealGatewaySend(g)
	if err != nil {
		t.Fatal(err)
	}
	return g, data
}

func TestSealGatewaySendRoundTrip(t *testing.T) {
	key, err := notify.GenerateDeliveryKey()
	if err != nil {
		t.Fatal(err)
	}
	g, data := sealedSend(t, key)
	for _, secret := range []string{"918273", "alice@example.org", "Your code", "de-DE"} {
		if strings.Contains(string(data), secret) {
			t.Fatalf("payload holds %q in clear: %s", secret, data)
		}
	}
	dec, err := notify.DecodeGatewaySend(data)
	if err != nil {
		t.Fatal(err)
	}
	if dec.V != 2 || dec.Code != "" || dec.Destination != "" || dec.KeyID != "d1" || len(dec.Sealed) == 0 {
		t.Fatalf("decoded before opening: %+v", dec)
	}
	open, err := key.OpenGatewaySend(dec)
	if err != nil {
		t.Fatal(err)
	}
	if open.Destination != g.Destination || open.Code != g.Code || open.Subject != g.Subject || open.Text != g.Text ||
		open.Locale != g.Locale || open.UserID != g.UserID || !open.ExpiresAt.Equal(g.ExpiresAt) {
		t.Fatalf("opened %+v, want %+v", open, g)
	}
}

// The sealed part is bound to its channel, challenge, user and expiry: moved into another
// message, or opened with another key, it does not open.
func TestSealGatewaySendBindsAAD(t *testing.T) {
	key, _ := notify.GenerateDeliveryKey()
	other, _ := notify.GenerateDeliveryKey()
	_, data := sealedSend(t, key)
	dec, err := notify.DecodeGatewaySend(data)
	if err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*notify.GatewaySend){
		"channel":   func(g *notify.GatewaySend) { g.Channel = notify.ChannelSMS },
		"challenge": func(g *notify.GatewaySend) { g.ChallengeID = "ch-other" },
		"user":      func(g *notify.GatewaySend) { g.UserID = "u-2" },
		"expiry":    func(g *notify.GatewaySend) { g.ExpiresAt = g.ExpiresAt.Add(time.Hour) },
		"tampered":  func(g *notify.GatewaySend) { g.Sealed = append([]byte(nil), g.Sealed...); g.Sealed[20] ^= 1 },
		"key id":    func(g *notify.GatewaySend) { g.KeyID = "d9" },
		"short":     func(g *notify.GatewaySend) { g.Sealed = g.Sealed[:10] },
	} {
		g := dec
		mod(&g)
		if _, err := key.OpenGatewaySend(g); !errors.Is(err, notify.ErrUnsealPayload) {
			t.Errorf("%s changed: err = %v, want ErrUnsealPayload", name, err)
		}
	}
	if _, err := other.OpenGatewaySend(dec); !errors.Is(err, notify.ErrUnsealPayload) {
		t.Errorf("another key: err = %v", err)
	}
}

func TestDecodeGatewaySendV2Rejects(t *testing.T) {
	for name, payload := range map[string]string{
		"clear code in v2": `{"v":2,"challenge_id":"c","channel":"sms","key_id":"d1","sealed":"AAAA","code":"123456"}`,
		"no sealed":        `{"v":2,"challenge_id":"c","channel":"sms","key_id":"d1"}`,
		"no key id":        `{"v":2,"challenge_id":"c","channel":"sms","sealed":"AAAA"}`,
		"v3":               `{"v":3,"challenge_id":"c","channel":"sms","key_id":"d1","sealed":"AAAA"}`,
		"long v1 code":     `{"v":1,"challenge_id":"c","channel":"sms","code":"` + strings.Repeat("1", 33) + `"}`,
	} {
		if _, err := notify.DecodeGatewaySend([]byte(payload)); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "123456") {
			t.Errorf("%s: error quotes the code: %v", name, err)
		}
	}
}

func TestDeliveryKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", notify.DefaultDeliveryKeyFile)
	created, err := notify.EnsureDeliveryKeyFile(path)
	if err != nil || !created {
		t.Fatalf("created %v, err %v", created, err)
	}
	for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm() != want {
			t.Fatalf("%s: mode %v (err %v), want %v", p, st.Mode().Perm(), err, want)
		}
	}
	if created, err := notify.EnsureDeliveryKeyFile(path); err != nil || created {
		t.Fatalf("second ensure: created %v, err %v", created, err)
	}
	k1, err := notify.LoadDeliveryKey(path)
	if err != nil {
		t.Fatal(err)
	}
	_, data := sealedSend(t, k1)
	id, err := notify.RotateDeliveryKeyFile(path)
	if err != nil || id != "d2" {
		t.Fatalf("rotate: %q, %v", id, err)
	}
	k2, err := notify.LoadDeliveryKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if k2.CurrentKeyID() != "d2" || strings.Join(k2.KeyIDs(), ",") != "d1,d2" {
		t.Fatalf("after rotation: current %s, keys %v", k2.CurrentKeyID(), k2.KeyIDs())
	}
	dec, _ := notify.DecodeGatewaySend(data)
	if _, err := k2.OpenGatewaySend(dec); err != nil {
		t.Fatalf("a payload sealed before the rotation does not open: %v", err)
	}
	_, data2 := sealedSend(t, k2)
	if dec2, _ := notify.DecodeGatewaySend(data2); dec2.KeyID != "d2" {
		t.Fatalf("sealed under %q after rotation", dec2.KeyID)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := notify.LoadDeliveryKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key file: err = %v", err)
	}
}

func TestLoadDeliveryKeyRejects(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"not json":      `{"current":`,
		"no current":    `{"current":"d2","keys":{"d1":"` + strings.Repeat("A", 43) + `="}}`,
		"short key":     `{"current":"d1","keys":{"d1":"AAAA"}}`,
		"not base64":    `{"current":"d1","keys":{"d1":"!!!"}}`,
		"dotted key id": `{"current":"a.b","keys":{"a.b":"` + strings.Repeat("A", 43) + `="}}`,
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := notify.LoadDeliveryKey(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := notify.LoadDeliveryKey(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file accepted")
	}
}

func FuzzOpenGatewaySend(f *testing.F) {
	key, _ := notify.GenerateDeliveryKey()
	g := notify.GatewaySend{ChallengeID: "c", Channel: "sms", Destination: "+15550100", Code: "123456"}
	data, _ := key.SealGatewaySend(g)
	f.Add(data)
	f.Add([]byte(`{"v":2,"challenge_id":"c","channel":"sms","key_id":"d1","sealed":"AAAA"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		dec, err := notify.DecodeGatewaySend(data)
		if err != nil {
			return
		}
		open, err := key.OpenGatewaySend(dec)
		if err == nil && dec.V == 2 && (open.Code != "123456" || open.ChallengeID != "c") {
			t.Fatalf("forged payload opened: %+v", open)
		}
	})
}

func FuzzOpenTelegramBinding(f *testing.F) {
	key, _ := notify.GenerateDeliveryKey()
	f.Add([]byte(`{"v":1,"update_id":1,"time":"2026-03-01T12:00:00Z","key_id":"d1","sealed":"AAAA"}`))
	f.Add([]byte(`{"v":2}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := notify.OpenTelegramBinding(key, data)
		if err == nil {
			t.Fatalf("forged binding opened: %+v", b)
		}
		if len(data) > 8 && strings.Contains(err.Error(), string(data)) {
			t.Fatalf("error quotes the payload: %v", err)
		}
	})
}
