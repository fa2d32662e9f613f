package app

import (
	"os"
	"strings"
	"testing"
)

// Finding 6 of issue 16: nothing secret is served in clear off loopback by default.
func TestTransportIsSecureByDefault(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		env  map[string]string
		file string
		want string // "" = accepted
	}{
		"loopback plaintext":            {[]string{"-listen", "127.0.0.1:7443"}, nil, "", ""},
		"localhost plaintext":           {[]string{"-listen", "localhost:7443"}, nil, "", ""},
		"IPv6 loopback plaintext":       {[]string{"-listen", "[::1]:7443"}, nil, "", ""},
		"all interfaces plaintext":      {[]string{"-listen", ":7443"}, nil, "", "listen \":7443\": not a loopback address"},
		"public plaintext":              {[]string{"-listen", "0.0.0.0:7443"}, nil, "", "insecure-plaintext"},
		"public with TLS":               {[]string{"-listen", "0.0.0.0:7443", "-tls-cert", "c.pem", "-tls-key", "k.pem"}, nil, "", ""},
		"public, insecure flag":         {[]string{"-listen", "0.0.0.0:7443", "-insecure-plaintext"}, nil, "", ""},
		"public, insecure env":          {[]string{"-listen", "0.0.0.0:7443"}, map[string]string{"TWOFACTOR_INSECURE_PLAINTEXT": "true"}, "", ""},
		"public, insecure YAML":         {[]string{"-listen", "0.0.0.0:7443"}, nil, "insecure-plaintext: true\n", ""},
		"public, insecure off in YAML":  {[]string{"-listen", "0.0.0.0:7443"}, nil, "insecure-plaintext: false\n", "insecure-plaintext"},
		"pprof public":                  {[]string{"-pprof-listen", "0.0.0.0:6060"}, nil, "", "pprof-listen"},
		"pprof loopback":                {[]string{"-pprof-listen", "127.0.0.1:6060"}, nil, "", ""},
		"push allow internal":           {[]string{"-push-allow-internal", "10.0.0.0/8,ntfy"}, nil, "", ""},
		"push allow internal bad":       {[]string{"-push-allow-internal", "10.0.0.0/33"}, nil, "", "push-allow-internal"},
		"nats listen loopback":          {[]string{"-nats-listen", "127.0.0.1:0"}, nil, "", ""},
		"nats listen public":            {[]string{"-nats-listen", "0.0.0.0:4333"}, nil, "", "nats-listen \"0.0.0.0:4333\": not a loopback address"},
		"nats listen public with TLS":   {[]string{"-nats-listen", "0.0.0.0:4333", "-nats-tls-cert", "c", "-nats-tls-key", "k"}, nil, "", ""},
		"nats TLS half":                 {[]string{"-nats-listen", "0.0.0.0:4333", "-nats-tls-cert", "c"}, nil, "", "nats-tls-cert and nats-tls-key"},
		"nats TLS without listener":     {[]string{"-nats-tls-cert", "c", "-nats-tls-key", "k"}, nil, "", "no nats-listen"},
		"nats listen with external":     {[]string{"-nats-listen", "127.0.0.1:0", "-nats-url", "nats://127.0.0.1:1"}, nil, "", "only the embedded"},
		"revocation check too long":     {[]string{"-app-password-revocation-check", "5s"}, nil, "", "app-password-revocation-check"},
		"metrics public (warned, kept)": {[]string{"-metrics-listen", "0.0.0.0:9464"}, nil, "", ""},
	} {
		args := append([]string{"-data-dir", t.TempDir()}, tc.args...)
		if tc.file != "" {
			f := t.TempDir() + "/authd.yaml"
			writeFile(t, f, tc.file)
			args = append(args, "-config", f)
		}
		_, err := Parse("authd", args, func(k string) string { return tc.env[k] })
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: refused: %v", name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: err = %v, want it to mention %q", name, err, tc.want)
		}
	}
}

func TestWarnings(t *testing.T) {
	none := func(string) string { return "" }
	cfg, err := Parse("authd", []string{"-data-dir", t.TempDir(), "-metrics-listen", "0.0.0.0:9464", "-listen", "10.0.0.1:7443", "-insecure-plaintext"}, none)
	if err != nil {
		t.Fatal(err)
	}
	w := cfg.Warnings()
	if len(w) != 2 || !strings.HasPrefix(w[0], "metrics-listen") || !strings.HasPrefix(w[1], "listen") {
		t.Fatalf("warnings: %q", w)
	}
	cfg, err = Parse("authd", []string{"-data-dir", t.TempDir(), "-nats-url", "nats://127.0.0.1:4222,nats://nats-2:4222,tls://nats-3:4222"}, none)
	if err != nil {
		t.Fatal(err)
	}
	if w := cfg.Warnings(); len(w) != 1 || !strings.Contains(w[0], "nats-2:4222 is reached in clear") {
		t.Fatalf("warnings: %q", w)
	}
	cfg, err = Parse("authd", []string{"-data-dir", t.TempDir()}, none)
	if err != nil {
		t.Fatal(err)
	}
	if w := cfg.Warnings(); len(w) != 0 {
		t.Fatalf("the defaults warn: %q", w)
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}
