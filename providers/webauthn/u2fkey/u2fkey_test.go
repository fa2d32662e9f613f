package u2fkey

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"
)

type vector struct {
	Name    string `json:"name"`
	Comment string `json:"comment"`
	Raw     string `json:"raw"`
	COSE    string `json:"cose"`
	Error   string `json:"error"`
}

func loadVectors(t testing.TB) []vector {
	t.Helper()

	data, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatalf("read vectors: %v", err)
	}

	var vs []vector
	if err = json.Unmarshal(data, &vs); err != nil {
		t.Fatalf("decode vectors: %v", err)
	}

	return vs
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()

	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}

	return b
}

var errorKinds = map[string]error{
	"length":   ErrRawKeyLength,
	"encoding": ErrRawKeyEncoding,
	"point":    ErrRawKeyPoint,
}

func TestU2FToCOSEVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			raw := mustHex(t, v.Raw)

			got, err := U2FToCOSE(raw)
			if v.Error != "" {
				want := errorKinds[v.Error]
				if want == nil {
					t.Fatalf("vector names unknown error kind %q", v.Error)
				}

				if !errors.Is(err, want) {
					t.Fatalf("U2FToCOSE error = %v, want %v", err, want)
				}

				return
			}

			if err != nil {
				t.Fatalf("U2FToCOSE: %v", err)
			}

			if want := mustHex(t, v.COSE); !bytes.Equal(got, want) {
				t.Fatalf("COSE key\n got %x\nwant %x", got, want)
			}

			// go-webauthn reads it as the same EC2 key.
			key, err := webauthncose.ParsePublicKey(got)
			if err != nil {
				t.Fatalf("go-webauthn refuses the COSE key: %v", err)
			}

			ec, ok := key.(webauthncose.EC2PublicKeyData)
			if !ok {
				t.Fatalf("go-webauthn parsed %T, want EC2PublicKeyData", key)
			}

			if ec.Algorithm != int64(webauthncose.AlgES256) || ec.Curve != int64(webauthncose.P256) ||
				!bytes.Equal(ec.XCoord, raw[1:33]) || !bytes.Equal(ec.YCoord, raw[33:]) {
				t.Fatalf("go-webauthn parsed %+v, which is not the input point", ec)
			}

			// And the CBOR is already canonical: re-encoding changes nothing.
			var m any
			if err = webauthncbor.Unmarshal(got, &m); err != nil {
				t.Fatalf("decode: %v", err)
			}

			again, err := webauthncbor.Marshal(m)
			if err != nil || !bytes.Equal(again, got) {
				t.Fatalf("COSE key is not in CTAP2 canonical form: %x vs %x (%v)", again, got, err)
			}

			back, err := COSEToU2F(got)
			if err != nil || !bytes.Equal(back, raw) {
				t.Fatalf("COSEToU2F = %x, %v; want %x", back, err, raw)
			}
		})
	}
}

func TestParseRawMatchesStdlib(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), nil)
	if err != nil {
		t.Fatal(err)
	}

	raw, err := k.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}

	pub, err := ParseRaw(raw)
	if err != nil {
		t.Fatalf("ParseRaw: %v", err)
	}

	if !pub.Equal(&k.PublicKey) {
		t.Fatal("ParseRaw returned a different key")
	}
}

func TestCOSEToU2FRefusesOtherKeys(t *testing.T) {
	edPub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}

	okp, err := webauthncbor.Marshal(map[int]any{1: 1, 3: -8, -1: 6, -2: []byte(edPub)})
	if err != nil {
		t.Fatal(err)
	}

	p384, err := ecdsa.GenerateKey(elliptic.P384(), nil)
	if err != nil {
		t.Fatal(err)
	}

	p384Raw, _ := p384.PublicKey.Bytes()

	es384, err := webauthncbor.Marshal(map[int]any{1: 2, 3: -35, -1: 2, -2: p384Raw[1:49], -3: p384Raw[49:]})
	if err != nil {
		t.Fatal(err)
	}

	valid := mustHex(t, loadVectors(t)[0].COSE)
	truncated := valid[:len(valid)-1]

	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"garbage", []byte("not cbor at all")},
		{"ed25519 OKP key", okp},
		{"ES384 P-384 key", es384},
		{"truncated ES256 key", truncated},
		{"trailing byte", append(append([]byte(nil), valid...), 0x00)},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := COSEToU2F(tc.in); !errors.Is(err, ErrCOSEKey) {
				t.Fatalf("COSEToU2F error = %v, want %v", err, ErrCOSEKey)
			}
		})
	}
}

func TestImportCredential(t *testing.T) {
	raw := mustHex(t, loadVectors(t)[0].Raw)
	handle := bytes.Repeat([]byte{0x2a}, 64)

	cred, err := ImportCredential(handle, raw, 41)
	if err != nil {
		t.Fatalf("ImportCredential: %v", err)
	}

	if !bytes.Equal(cred.ID, handle) || !bytes.Equal(cred.PublicKey, raw) {
		t.Fatal("credential does not carry the key handle and the raw key")
	}

	if cred.AttestationFormat != string(protocol.AttestationFormatFIDOUniversalSecondFactor) {
		t.Fatalf("AttestationFormat = %q, want fido-u2f", cred.AttestationFormat)
	}

	if cred.Authenticator.SignCount != 41 {
		t.Fatalf("SignCount = %d, want 41", cred.Authenticator.SignCount)
	}

	if cred.Flags.BackupEligible || cred.Flags.BackupState {
		t.Fatal("a U2F credential cannot be backup eligible")
	}

	// The descriptor keeps the format, which is what BeginLogin looks at to keep appid.
	if d := cred.Descriptor(); d.AttestationFormat != FormatFIDOU2F {
		t.Fatalf("descriptor format = %q", d.AttestationFormat)
	}

	// go-webauthn's appid path parses exactly this public key form.
	fido, err := webauthncose.ParseFIDOPublicKey(cred.PublicKey)
	if err != nil {
		t.Fatalf("ParseFIDOPublicKey: %v", err)
	}

	if !bytes.Equal(fido.XCoord, raw[1:33]) || !bytes.Equal(fido.YCoord, raw[33:]) {
		t.Fatal("ParseFIDOPublicKey read a different point")
	}

	// Mutating the inputs afterwards must not change the record.
	handle[0] ^= 0xff
	raw[1] ^= 0xff

	if cred.ID[0] == handle[0] || cred.PublicKey[1] == raw[1] {
		t.Fatal("ImportCredential aliases its inputs")
	}

	bad := []struct {
		name   string
		handle []byte
		raw    []byte
		want   error
	}{
		{"empty key handle", nil, mustHex(t, loadVectors(t)[0].Raw), ErrKeyHandle},
		{"key handle of 256 bytes", make([]byte, 256), mustHex(t, loadVectors(t)[0].Raw), ErrKeyHandle},
		{"short key", []byte{1}, make([]byte, 64), ErrRawKeyLength},
		{"point off the curve", []byte{1}, append([]byte{4}, make([]byte, 64)...), ErrRawKeyPoint},
	}

	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ImportCredential(tc.handle, tc.raw, 0); !errors.Is(err, tc.want) {
				t.Fatalf("error = %v, want %v", err, tc.want)
			}
		})
	}
}

// FuzzU2FToCOSE checks that the raw-point parser accepts exactly what the standard
// library's P-256 decoder accepts, and that every accepted key survives the round trip
// through COSE and is read identically by go-webauthn's two public key parsers.
func FuzzU2FToCOSE(f *testing.F) {
	for _, v := range loadVectors(f) {
		f.Add(mustHex(f, v.Raw))
	}

	f.Fuzz(func(t *testing.T, raw []byte) {
		_, stdErr := ecdh.P256().NewPublicKey(raw)

		cose, err := U2FToCOSE(raw)
		if (err == nil) != (stdErr == nil) {
			t.Fatalf("U2FToCOSE err = %v but crypto/ecdh err = %v", err, stdErr)
		}

		if err != nil {
			return
		}

		back, err := COSEToU2F(cose)
		if err != nil || !bytes.Equal(back, raw) {
			t.Fatalf("round trip: %x, %v", back, err)
		}

		key, err := webauthncose.ParsePublicKey(cose)
		if err != nil {
			t.Fatalf("go-webauthn refuses COSE output: %v", err)
		}

		fido, err := webauthncose.ParseFIDOPublicKey(raw)
		if err != nil {
			t.Fatalf("go-webauthn refuses raw input: %v", err)
		}

		ec := key.(webauthncose.EC2PublicKeyData)
		if !bytes.Equal(ec.XCoord, fido.XCoord) || !bytes.Equal(ec.YCoord, fido.YCoord) {
			t.Fatal("the two go-webauthn parsers disagree")
		}
	})
}

// FuzzCOSEToU2F feeds arbitrary CBOR to the inverse conversion: it must never panic and
// anything it accepts must be a valid raw key that converts back to an equivalent key.
func FuzzCOSEToU2F(f *testing.F) {
	for _, v := range loadVectors(f) {
		if v.COSE != "" {
			f.Add(mustHex(f, v.COSE))
		}
	}

	f.Add([]byte{0xa0})

	f.Fuzz(func(t *testing.T, cose []byte) {
		raw, err := COSEToU2F(cose)
		if err != nil {
			return
		}

		if _, err = ParseRaw(raw); err != nil {
			t.Fatalf("COSEToU2F returned an invalid raw key: %v", err)
		}

		if _, err = U2FToCOSE(raw); err != nil {
			t.Fatalf("accepted key does not convert back: %v", err)
		}
	})
}

func BenchmarkU2FToCOSE(b *testing.B) {
	raw := mustHex(b, loadVectors(b)[0].Raw)

	for b.Loop() {
		if _, err := U2FToCOSE(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCOSEToU2F(b *testing.B) {
	cose := mustHex(b, loadVectors(b)[0].COSE)

	for b.Loop() {
		if _, err := COSEToU2F(cose); err != nil {
			b.Fatal(err)
		}
	}
}
