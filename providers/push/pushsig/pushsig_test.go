package pushsig_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"testing"

	"github.com/twofactor/twofactor/providers/push/pushsig"
)

// TestEncodingVector pins the canonical encoding byte for byte, for devices
// written in other languages to test against.
func TestEncodingVector(t *testing.T) {
	got := pushsig.RequestMessage(pushsig.PurposeRespond, "d-1", 1764666000123, []byte{0xde, 0xad}, "c-1", "approve", "42", "")
	want := "544650555348310000000772657370" + "6f6e64" + // "TFPUSH1", len 7 "respond"
		"00000003" + hex.EncodeToString([]byte("d-1")) +
		"0000000d" + hex.EncodeToString([]byte("1764666000123")) +
		"00000002dead" +
		"00000003" + hex.EncodeToString([]byte("c-1")) +
		"00000007" + hex.EncodeToString([]byte("approve")) +
		"00000002" + hex.EncodeToString([]byte("42")) +
		"00000000"
	if hex.EncodeToString(got) != want {
		t.Fatalf("encoding\n got %x\nwant %s", got, want)
	}
	fields, err := pushsig.Decode(got)
	if err != nil || len(fields) != 8 || string(fields[4]) != "c-1" || len(fields[7]) != 0 {
		t.Fatalf("decode = %q, %v", fields, err)
	}
}

func TestDecodeRefuses(t *testing.T) {
	ok := pushsig.Encode([]byte("a"))
	for name, msg := range map[string][]byte{
		"empty":     nil,
		"magic":     append([]byte("TFPUSH2"), ok[7:]...),
		"truncated": ok[:len(ok)-1],
		"trailing":  append(append([]byte{}, ok...), 0, 0),
		"too long":  append([]byte("TFPUSH1"), 0, 0, 0x08, 0x01),
		"too many":  pushsig.Encode(make([][]byte, 17)...),
	} {
		if _, err := pushsig.Decode(msg); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	if f, err := pushsig.Decode(pushsig.Encode(make([][]byte, 16)...)); err != nil || len(f) != 16 {
		t.Fatalf("16 empty fields: %v", err)
	}
}

func TestSignatureFormats(t *testing.T) {
	key := newKey(t)
	msg := pushsig.Encode([]byte("hello"))
	for _, p1363 := range []bool{false, true} {
		sig := sign(t, key, msg, p1363)
		if !pushsig.VerifySignature(&key.PublicKey, msg, sig) {
			t.Fatalf("p1363=%v: valid signature refused", p1363)
		}
		if pushsig.VerifySignature(&key.PublicKey, append(msg, 0), sig) {
			t.Fatalf("p1363=%v: signature of another message accepted", p1363)
		}
		if pushsig.VerifySignature(&newKey(t).PublicKey, msg, sig) {
			t.Fatalf("p1363=%v: another key accepted", p1363)
		}
	}
	if pushsig.VerifySignature(&key.PublicKey, msg, make([]byte, 64)) || pushsig.VerifySignature(nil, msg, []byte{1}) {
		t.Fatal("zero signature or nil key accepted")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(pushsig.RequestMessage(pushsig.PurposeRespond, "d", 1, []byte("n"), "c", "approve", "12"))
	f.Add(pushsig.Encode())
	f.Add([]byte("TFPUSH1\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		fields, err := pushsig.Decode(msg)
		if err != nil {
			return
		}
		if again := pushsig.Encode(fields...); !bytes.Equal(again, msg) {
			t.Fatalf("Encode(Decode(m)) != m: %x vs %x", again, msg)
		}
	})
}

func FuzzVerifySignature(f *testing.F) {
	key := newKey(f)
	msg := pushsig.Encode([]byte("m"))
	f.Add(sign(f, key, msg, false), []byte("m"))
	f.Add(sign(f, key, msg, true), []byte("m"))
	f.Add([]byte{0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01}, []byte("m"))
	f.Fuzz(func(t *testing.T, sig, field []byte) {
		m := pushsig.Encode(field)
		if pushsig.VerifySignature(&key.PublicKey, m, sig) && !bytes.Equal(field, []byte("m")) {
			t.Fatalf("a fuzzed signature verified for %q", field)
		}
	})
}

func FuzzParsePublicKey(f *testing.F) {
	key := newKey(f)
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	raw, _ := key.PublicKey.Bytes()
	f.Add(der)
	f.Add(raw)
	f.Add([]byte{4})
	f.Fuzz(func(t *testing.T, b []byte) {
		pub, out, err := pushsig.ParsePublicKey(b)
		if err != nil {
			return
		}
		again, _, err := pushsig.ParsePublicKey(out)
		if err != nil || !again.Equal(pub) {
			t.Fatalf("stored form does not parse back: %v", err)
		}
		var _ *ecdsa.PublicKey = pub
	})
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sign(t testing.TB, key *ecdsa.PrivateKey, msg []byte, p1363 bool) []byte {
	t.Helper()
	sign := pushsig.SignDER
	if p1363 {
		sign = pushsig.SignP1363
	}
	sig, err := sign(key, msg)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}
