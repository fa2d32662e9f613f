package totp_test

import (
	"bytes"
	"context"
	"encoding/base32"
	"encoding/json"
	"errors"
	"image/png"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pquerna/otp"

	"github.com/twofactor/twofactor/providers/totp"
	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

func TestRFC6238AppendixB(t *testing.T) {
	raw, err := os.ReadFile("testdata/rfc6238.json")
	if err != nil {
		t.Fatal(err)
	}
	var vec struct {
		Seeds   map[string]string `json:"seeds"`
		Vectors []map[string]any  `json:"vectors"`
	}
	if err := json.Unmarshal(raw, &vec); err != nil {
		t.Fatal(err)
	}
	for _, v := range vec.Vectors {
		at := time.Unix(int64(v["time"].(float64)), 0)
		for _, alg := range []string{"SHA1", "SHA256", "SHA512"} {
			got, err := totp.CodeAt([]byte(vec.Seeds[alg]), totp.Params{Algorithm: alg, Digits: 8, Period: 30}, at)
			if err != nil {
				t.Fatal(err)
			}
			if want := v[alg].(string); got != want {
				t.Errorf("T=%d %s: code %s, want %s", at.Unix(), alg, got, want)
			}
		}
	}
}

func TestNormalizeCode(t *testing.T) {
	cases := []struct {
		in, want string
		digits   int
		ok       bool
	}{
		{"123456", "123456", 6, true},
		{"123 456", "123456", 6, true},
		{"123-456", "123456", 6, true},
		{" 1234 5678 ", "12345678", 8, true},
		{"12345", "", 6, false},
		{"1234567", "", 6, false},
		{"12a456", "", 6, false},
		{"١٢٣٤٥٦", "", 6, false}, // Arabic-Indic digits are not ASCII digits
		{"", "", 6, false},
		{strings.Repeat("1", 100), "", 6, false},
	}
	for _, c := range cases {
		got, err := totp.NormalizeCode(c.in, c.digits)
		if c.ok && (err != nil || got != c.want) {
			t.Errorf("NormalizeCode(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
		if !c.ok && !errors.Is(err, totp.ErrMalformed) {
			t.Errorf("NormalizeCode(%q) err = %v, want ErrMalformed", c.in, err)
		}
	}
}

func FuzzNormalizeCode(f *testing.F) {
	for _, s := range []string{"123456", "123 456", "12-34-56", "abc", "", "12345678"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := totp.NormalizeCode(in, 6)
		if err != nil {
			return
		}
		if len(got) != 6 || strings.Trim(got, "0123456789") != "" {
			t.Fatalf("NormalizeCode(%q) = %q: not six ASCII digits", in, got)
		}
	})
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }

func newProvider(t *testing.T, s *storage.Store, c *clock, cfg totp.Config) *totp.Provider {
	t.Helper()
	p, err := totp.New(s, storagetest.KeyRing(t), cfg, c.now, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func seedOf(t *testing.T, e *totp.Enrollment) []byte {
	seed, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(e.Secret)
	if err != nil {
		t.Fatal(err)
	}
	return seed
}

func TestEnrollLoginReplay(t *testing.T) {
	ctx := context.Background()
	s := storagetest.Open(t)
	c := &clock{time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	ring := storagetest.KeyRing(t)
	p, _ := totp.New(s, ring, totp.Config{Issuer: "Cloud"}, c.now, nil)

	e, err := p.BeginEnrollment(ctx, "alice", "Phone", "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	seed := seedOf(t, e)
	if len(seed) != totp.SeedBytes {
		t.Fatalf("seed is %d bytes, want %d (160 bits)", len(seed), totp.SeedBytes)
	}
	u, err := url.Parse(e.URI)
	if err != nil || u.Scheme != "otpauth" || u.Host != "totp" || u.Query().Get("issuer") != "Cloud" ||
		u.Query().Get("secret") != e.Secret || !strings.Contains(u.Path, "alice@example.com") {
		t.Fatalf("bad otpauth URI %q", e.URI)
	}
	if _, err := png.Decode(bytes.NewReader(e.QRPNG)); err != nil {
		t.Fatalf("QR code is not a PNG: %v", err)
	}
	// A pending factor cannot log in, even with its right code.
	code, _ := totp.CodeAt(seed, e.Params, c.t)
	if _, err := p.VerifyAny(ctx, "alice", code); !errors.Is(err, totp.ErrWrongCode) {
		t.Fatalf("pending factor with its right code: err = %v", err)
	}
	if _, err := p.FinishEnrollment(ctx, "alice", e.Factor.ID, wrong(code)); !errors.Is(err, totp.ErrWrongCode) {
		t.Fatalf("finish with wrong code: %v", err)
	}
	f, err := p.FinishEnrollment(ctx, "alice", e.Factor.ID, code)
	if err != nil || f.State != storage.FactorActive {
		t.Fatalf("finish: %+v, %v", f, err)
	}
	// The enrollment proof cannot be reused to log in.
	if _, err := p.VerifyAny(ctx, "alice", code); !errors.Is(err, totp.ErrReplayed) {
		t.Fatalf("reuse of the enrollment code: err = %v, want ErrReplayed", err)
	}
	c.add(30 * time.Second)
	code, _ = totp.CodeAt(seed, e.Params, c.t)
	if _, err := p.VerifyAny(ctx, "alice", code[:3]+" "+code[3:]); err != nil {
		t.Fatalf("login: %v", err)
	}
	if _, err := p.VerifyAny(ctx, "alice", code); !errors.Is(err, totp.ErrReplayed) {
		t.Fatalf("replay: err = %v, want ErrReplayed", err)
	}
	// The previous step's code is inside the window but older than the last use.
	prev, _ := totp.CodeAt(seed, e.Params, c.t.Add(-30*time.Second))
	if _, err := p.VerifyAny(ctx, "alice", prev); err == nil {
		t.Fatal("an older step was accepted after a later one")
	}
	// The next step (clock skew of the phone) is accepted, once.
	next, _ := totp.CodeAt(seed, e.Params, c.t.Add(30*time.Second))
	if _, err := p.VerifyAny(ctx, "alice", next); err != nil {
		t.Fatalf("next step within skew: %v", err)
	}
	far, _ := totp.CodeAt(seed, e.Params, c.t.Add(5*time.Minute))
	if _, err := p.VerifyAny(ctx, "alice", far); !errors.Is(err, totp.ErrWrongCode) {
		t.Fatalf("code outside the window: err = %v", err)
	}
	if _, err := p.VerifyAny(ctx, "alice", "12x456"); !errors.Is(err, totp.ErrMalformed) {
		t.Fatalf("malformed: err = %v", err)
	}
}

func wrong(code string) string {
	b := []byte(code)
	b[0] = '0' + (b[0]-'0'+1)%10
	return string(b)
}

func TestSettings(t *testing.T) {
	ctx := context.Background()
	c := &clock{time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	for _, cfg := range []totp.Config{
		{Algorithm: otp.AlgorithmSHA256, Digits: otp.DigitsEight, Period: 60},
		{Algorithm: otp.AlgorithmSHA512, Digits: otp.DigitsSix, Skew: 3},
		{SkewSet: true}, // skew 0: only the current step
	} {
		s := storagetest.Open(t)
		p := newProvider(t, s, c, cfg)
		e, err := p.BeginEnrollment(ctx, "bob", "x", "bob")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(e.URI, "digits="+strconv.Itoa(e.Params.Digits)) || !strings.Contains(e.URI, "algorithm="+e.Params.Algorithm) {
			t.Fatalf("URI %q lacks the settings %+v", e.URI, e.Params)
		}
		seed := seedOf(t, e)
		code, _ := totp.CodeAt(seed, e.Params, c.t)
		if len(code) != e.Params.Digits {
			t.Fatalf("%+v: code %q", cfg, code)
		}
		if _, err := p.FinishEnrollment(ctx, "bob", e.Factor.ID, code); err != nil {
			t.Fatalf("%+v: %v", cfg, err)
		}
		period := time.Duration(e.Params.Period) * time.Second
		early, _ := totp.CodeAt(seed, e.Params, c.t.Add(period))
		_, err = p.VerifyAny(ctx, "bob", early)
		if cfg.SkewSet && err == nil {
			t.Errorf("skew 0 accepted the next step")
		}
		if !cfg.SkewSet && err != nil {
			t.Errorf("%+v: next step refused: %v", cfg, err)
		}
	}
	if err := (totp.Config{Digits: 7}).Validate(); err == nil {
		t.Error("7 digits accepted")
	}
	if err := (totp.Config{Period: 5}).Validate(); err == nil {
		t.Error("5 s period accepted")
	}
}

func TestEnrollmentDiesAfterAttemptsOrTime(t *testing.T) {
	ctx := context.Background()
	s := storagetest.Open(t)
	c := &clock{time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	p := newProvider(t, s, c, totp.Config{MaxEnrollAttempts: 3, EnrollmentTTL: time.Minute})
	e, _ := p.BeginEnrollment(ctx, "carol", "x", "carol")
	code, _ := totp.CodeAt(seedOf(t, e), e.Params, c.t)
	for i := 0; i < 2; i++ {
		if _, err := p.FinishEnrollment(ctx, "carol", e.Factor.ID, wrong(code)); !errors.Is(err, totp.ErrWrongCode) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if _, err := p.FinishEnrollment(ctx, "carol", e.Factor.ID, wrong(code)); !errors.Is(err, totp.ErrEnrollmentExpired) {
		t.Fatalf("last attempt: %v", err)
	}
	if _, err := p.FinishEnrollment(ctx, "carol", e.Factor.ID, code); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("after the enrollment died: %v", err)
	}
	e, _ = p.BeginEnrollment(ctx, "carol", "x", "carol")
	c.add(2 * time.Minute)
	code, _ = totp.CodeAt(seedOf(t, e), e.Params, c.t)
	if _, err := p.FinishEnrollment(ctx, "carol", e.Factor.ID, code); !errors.Is(err, totp.ErrEnrollmentExpired) {
		t.Fatalf("late proof: %v", err)
	}
}

func TestConcurrentSameCodeOneWinner(t *testing.T) {
	ctx := context.Background()
	url := storagetest.URL(t)
	ring := storagetest.KeyRing(t)
	c := &clock{time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	var ps []*totp.Provider
	for i := 0; i < 2; i++ { // two replicas on one database
		p, _ := totp.New(storagetest.OpenURL(t, url), ring, totp.Config{}, c.now, nil)
		ps = append(ps, p)
	}
	e, _ := ps[0].BeginEnrollment(ctx, "dave", "x", "dave")
	seed := seedOf(t, e)
	code, _ := totp.CodeAt(seed, e.Params, c.t)
	if _, err := ps[1].FinishEnrollment(ctx, "dave", e.Factor.ID, code); err != nil {
		t.Fatal(err)
	}
	code, _ = totp.CodeAt(seed, e.Params, c.t.Add(30*time.Second))
	var wins, replays atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(p *totp.Provider) {
			defer wg.Done()
			_, err := p.VerifyAny(ctx, "dave", code)
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, totp.ErrReplayed):
				replays.Add(1)
			default:
				t.Error(err)
			}
		}(ps[i%2])
	}
	wg.Wait()
	if wins.Load() != 1 || replays.Load() != 19 {
		t.Fatalf("wins=%d replays=%d, want 1 and 19", wins.Load(), replays.Load())
	}
}

func TestSeedSealedAtRest(t *testing.T) {
	ctx := context.Background()
	s := storagetest.Open(t)
	c := &clock{time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	p := newProvider(t, s, c, totp.Config{})
	e, _ := p.BeginEnrollment(ctx, "erin", "x", "erin")
	seed := seedOf(t, e)
	if where := storagetest.FindInTables(t, s, seed, []byte(e.Secret)); where != "" {
		t.Fatalf("%s holds the seed in clear", where)
	}
}

// benchFactor enrolls one factor for the benchmarks; codeAt gives the code of
// the i-th step after enrollment, with the provider's clock moved to it.
func benchFactor(b *testing.B) (p *totp.Provider, f *storage.Factor, codeAt func(i int) string) {
	ctx := context.Background()
	start := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	c := &clock{start}
	p, err := totp.New(storagetest.Open(b), storagetest.KeyRing(b), totp.Config{}, c.now, nil)
	if err != nil {
		b.Fatal(err)
	}
	e, err := p.BeginEnrollment(ctx, "u", "x", "u")
	if err != nil {
		b.Fatal(err)
	}
	seed := seedOf(nil, e)
	codeAt = func(i int) string {
		c.t = start.Add(time.Duration(i) * 30 * time.Second)
		code, err := totp.CodeAt(seed, e.Params, c.t)
		if err != nil {
			b.Fatal(err)
		}
		return code
	}
	if f, err = p.FinishEnrollment(ctx, "u", e.Factor.ID, codeAt(0)); err != nil {
		b.Fatal(err)
	}
	return p, f, codeAt
}

func BenchmarkVerify(b *testing.B) {
	ctx := context.Background()
	p, f, codeAt := benchFactor(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		code := codeAt(i + 1)
		f.LastStep = nil
		if err := p.Verify(ctx, f, code); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyFrom is the sealed challenge's path: the factor as
// LoadSealedChallenge read it, and one conditional update from the step it saw.
func BenchmarkVerifyFrom(b *testing.B) {
	ctx := context.Background()
	p, f, codeAt := benchFactor(b)
	from := *f.LastStep
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		code := codeAt(i + 1)
		f.LastStep = &from
		if err := p.VerifyFrom(ctx, f, code, &from); err != nil {
			b.Fatal(err)
		}
		from++
	}
}

// With a 6-digit and an 8-digit factor, a wrong guess of either length is a wrong
// code (it costs an attempt); only a code no factor can read is malformed.
func TestMixedDigitFactorsCountWrongGuesses(t *testing.T) {
	ctx := context.Background()
	s := storagetest.Open(t)
	ring := storagetest.KeyRing(t)
	c := &clock{time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	six, _ := totp.New(s, ring, totp.Config{}, c.now, nil)
	eight, _ := totp.New(s, ring, totp.Config{Digits: otp.DigitsEight}, c.now, nil)
	var seeds [][]byte
	var params []totp.Params
	for _, p := range []*totp.Provider{six, eight} {
		e, err := p.BeginEnrollment(ctx, "gina", "x", "gina")
		if err != nil {
			t.Fatal(err)
		}
		code, _ := totp.CodeAt(seedOf(t, e), e.Params, c.t)
		if _, err := p.FinishEnrollment(ctx, "gina", e.Factor.ID, code); err != nil {
			t.Fatal(err)
		}
		seeds, params = append(seeds, seedOf(t, e)), append(params, e.Params)
	}
	c.add(30 * time.Second)
	for i := range seeds {
		right, _ := totp.CodeAt(seeds[i], params[i], c.t)
		if _, err := six.VerifyAny(ctx, "gina", wrong(right)); !errors.Is(err, totp.ErrWrongCode) {
			t.Fatalf("wrong %d-digit guess: err = %v, want ErrWrongCode", len(right), err)
		}
		if _, err := six.VerifyAny(ctx, "gina", right); err != nil {
			t.Fatalf("right %d-digit code: %v", len(right), err)
		}
		c.add(30 * time.Second)
	}
	if _, err := six.VerifyAny(ctx, "gina", "1234567"); !errors.Is(err, totp.ErrMalformed) {
		t.Fatalf("7 digits: err = %v, want ErrMalformed", err)
	}
}
