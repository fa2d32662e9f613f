package notify_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
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
	if dec.V != 3 || dec.Kind != notify.KindCode || dec.Code != "" || dec.Destination != "" || dec.KeyID != "d1" || len(dec.Sealed) == 0 {
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
		"kind":      func(g *notify.GatewaySend) { g.Kind = notify.KindNotice },
		"version":   func(g *notify.GatewaySend) { g.V = 2 },
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
		"v3 without kind":  `{"v":3,"challenge_id":"c","channel":"sms","key_id":"d1","sealed":"AAAA"}`,
		"v3 unknown kind":  `{"v":3,"kind":"fax","challenge_id":"c","channel":"sms","key_id":"d1","sealed":"AAAA"}`,
		"kind in v2":       `{"v":2,"kind":"notice","challenge_id":"c","channel":"sms","key_id":"d1","sealed":"AAAA"}`,
		"v4":               `{"v":4,"kind":"code","challenge_id":"c","channel":"sms","key_id":"d1","sealed":"AAAA"}`,
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

// sealV2 writes a version-2 payload as an authd before notices had a kind did.
func sealV2(t testing.TB, key *notify.DeliveryKey, g notify.GatewaySend) []byte {
	secret, _ := json.Marshal(map[string]string{"d": g.Destination, "c": g.Code, "t": g.Text})
	aad := "twofactor/gateway-send/v2\x00" + g.Channel + "\x00" + g.ChallengeID + "\x00" + g.UserID +
		"\x00" + strconv.FormatInt(g.ExpiresAt.UnixNano(), 10)
	keyID, sealed, err := key.Seal(secret, []byte(aad))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(map[string]any{"v": 2, "challenge_id": g.ChallengeID, "channel": g.Channel,
		"user_id": g.UserID, "expires_at": g.ExpiresAt, "key_id": keyID, "sealed": sealed})
	return out
}

// A notice is sealed as kind notice (no code, a text); a payload of the old version 2
// still opens: with a code it is a code, without one a notice.
func TestSealNoticeAndOpenV2(t *testing.T) {
	key, _ := notify.GenerateDeliveryKey()
	exp := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	notice := notify.GatewaySend{Kind: notify.KindNotice, ChallengeID: "n-1", Channel: notify.ChannelEmail, UserID: "u-1",
		ExpiresAt: exp, Destination: "old@example.org", Subject: "Changed", Text: "Your factor moved."}
	data, err := key.SealGatewaySend(notice)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "old@example.org") || !strings.Contains(string(data), `"kind":"notice"`) {
		t.Fatalf("notice payload %s", data)
	}
	dec, err := notify.DecodeGatewaySend(data)
	if err != nil {
		t.Fatal(err)
	}
	if open, err := key.OpenGatewaySend(dec); err != nil || open.Kind != notify.KindNotice || open.Text != notice.Text ||
		open.Destination != notice.Destination || open.Code != "" {
		t.Fatalf("notice opened %+v %v", open, err)
	}
	for name, bad := range map[string]notify.GatewaySend{
		"notice with a code":  {Kind: notify.KindNotice, ChallengeID: "n", Channel: "sms", Destination: "+15550100", Code: "1", Text: "t"},
		"notice without text": {Kind: notify.KindNotice, ChallengeID: "n", Channel: "sms", Destination: "+15550100"},
		"code without code":   {ChallengeID: "n", Channel: "sms", Destination: "+15550100", Text: "t"},
		"unknown kind":        {Kind: "fax", ChallengeID: "n", Channel: "sms", Destination: "+15550100", Code: "1"},
	} {
		if _, err := key.SealGatewaySend(bad); err == nil {
			t.Errorf("%s: sealed", name)
		}
	}
	for _, tc := range []struct {
		g    notify.GatewaySend
		kind string
	}{
		{notify.GatewaySend{ChallengeID: "c-2", Channel: "sms", UserID: "u", ExpiresAt: exp, Destination: "+15550100", Code: "123456"}, notify.KindCode},
		{notify.GatewaySend{ChallengeID: "n-2", Channel: "sms", UserID: "u", ExpiresAt: exp, Destination: "+15550100", Text: "moved"}, notify.KindNotice},
	} {
		dec, err := notify.DecodeGatewaySend(sealV2(t, key, tc.g))
		if err != nil || dec.V != 2 {
			t.Fatalf("v2 decode: %+v %v", dec, err)
		}
		open, err := key.OpenGatewaySend(dec)
		if err != nil || open.Kind != tc.kind || open.Code != tc.g.Code || open.Text != tc.g.Text {
			t.Fatalf("v2 %s opened %+v %v", tc.kind, open, err)
		}
	}
}

func FuzzOpenGatewaySend(f *testing.F) {
	key, _ := notify.GenerateDeliveryKey()
	code := notify.GatewaySend{ChallengeID: "c", Channel: "sms", Destination: "+15550100", Code: "123456"}
	notice := notify.GatewaySend{Kind: notify.KindNotice, ChallengeID: "c", Channel: "sms", Destination: "+15550100", Text: "moved"}
	for _, g := range []notify.GatewaySend{code, notice} {
		data, _ := key.SealGatewaySend(g)
		f.Add(data)
	}
	f.Add(sealV2(f, key, code))
	f.Add([]byte(`{"v":2,"challenge_id":"c","channel":"sms","key_id":"d1","sealed":"AAAA"}`))
	f.Add([]byte(`{"v":3,"kind":"notice","challenge_id":"c","channel":"sms","key_id":"d1","sealed":"AAAA"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		dec, err := notify.DecodeGatewaySend(data)
		if err != nil {
			return
		}
		open, err := key.OpenGatewaySend(dec)
		if err != nil || dec.V < 2 {
			return
		}
		isCode := open.Kind == notify.KindCode && open.Code == "123456"
		isNotice := open.Kind == notify.KindNotice && open.Code == "" && open.Text == "moved"
		if open.ChallengeID != "c" || !(isCode || isNotice) {
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
