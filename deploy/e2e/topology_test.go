package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/twofactor/twofactor/clients/client"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/storage/storagetest"
)

const (
	envE2E       = "TWOFACTOR_E2E"           // 1: run the topology
	envMailpit   = "TWOFACTOR_E2E_MAILPIT"   // a mailpit binary (default: PATH, else go install)
	envArtifacts = "TWOFACTOR_E2E_ARTIFACTS" // where logs and screenshots go (default: a temp folder)
	natsEnv      = "TWOFACTOR_TEST_NATS_URL"
	mailpitMod   = "github.com/axllent/mailpit@v1.33.1"
)

// topology is the deployment of docker-compose.yml, as processes on this machine.
type topology struct {
	dataDir   string // shared by the replicas, as the compose file's keys volume
	dbURL     string // authd's database (notifyd reads push endpoints from it)
	bin       map[string]string
	artifacts string
	replicas  []string // authd gRPC addresses
	proxy     *proxy
	demoURL   string // http://localhost:<port>: the WebAuthn origin
	mailAPI   string // Mailpit's HTTP API
	mailSMTP  string
	c         *client.Client // admin key, through the proxy
	notifyd   int            // notifyd processes started
	outboxes  []string       // their development outboxes (channels without a provider: SMS, Signal, Telegram)
	natsURL   string         // the NATS server and subject prefix authd and notifyd share
	prefix    string
}

func gate(t *testing.T) {
	t.Helper()
	if os.Getenv(envE2E) != "1" {
		t.Skipf("the topology test runs with %s=1 (as .ci/run sets it), on the machine's PostgreSQL and NATS", envE2E)
	}
	if os.Getenv(storagetest.EnvDatabaseURL) == "" {
		t.Setenv(storagetest.EnvDatabaseURL, "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	}
	if os.Getenv(natsEnv) == "" {
		t.Setenv(natsEnv, "nats://127.0.0.1:4222")
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// artifactsDir keeps process logs and screenshots; it is removed when the run
// passes and printed when it fails.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(envArtifacts)
	if dir == "" {
		d, err := os.MkdirTemp("", "twofactor-e2e-")
		if err != nil {
			t.Fatal(err)
		}
		dir = d
		t.Cleanup(func() {
			if !t.Failed() {
				os.RemoveAll(d)
			}
		})
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("process logs and screenshots are in %s", dir)
		}
	})
	return dir
}

func build(t *testing.T, dir string) map[string]string {
	t.Helper()
	cmds := []string{"authd", "demo"}
	if _, err := os.Stat("../../cmd/notifyd"); err == nil {
		cmds = append(cmds, "notifyd")
	}
	args := []string{"build", "-o", dir + "/"}
	bins := map[string]string{}
	for _, c := range cmds {
		args = append(args, "../../cmd/"+c)
		bins[c] = filepath.Join(dir, c)
	}
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	bins["mailpit"] = mailpitBinary(t)
	return bins
}

// mailpitBinary is Mailpit v1.33.1 as a Go binary: $TWOFACTOR_E2E_MAILPIT, one on
// PATH (.ci/run installs it), else built once into the user cache.
func mailpitBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(envMailpit); p != "" {
		return p
	}
	if p, err := exec.LookPath("mailpit"); err == nil {
		return p
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	gobin := filepath.Join(cache, "twofactor-e2e", "mailpit-v1.33.1")
	bin := filepath.Join(gobin, "mailpit")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	cmd := exec.Command("go", "install", mailpitMod)
	cmd.Env = append(os.Environ(), "GOBIN="+gobin, "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go install %s: %v\n%s", mailpitMod, err, out)
	}
	return bin
}

// start runs a process until the test ends (SIGTERM, then SIGKILL after 10 s),
// its output in <artifacts>/<name>.log.
func (tp *topology) start(t *testing.T, name, bin string, env []string, args ...string) {
	t.Helper()
	logf, err := os.Create(filepath.Join(tp.artifacts, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s did not stop within 10 s of SIGTERM", name)
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
	})
}

// waitFor polls ok every 100 ms until it succeeds or the deadline passes.
func waitFor(t *testing.T, what string, within time.Duration, ok func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := ok()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not ready within %v: %v", what, within, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func run(bin string, args ...string) error {
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

func startTopology(t *testing.T) *topology {
	t.Helper()
	gate(t)
	tp := &topology{dataDir: t.TempDir(), artifacts: artifactsDir(t)}
	tp.bin = build(t, t.TempDir())
	dbURL := storagetest.URL(t)
	tp.dbURL = dbURL
	natsURL := os.Getenv(natsEnv)
	prefix := "e2e" + randomHex(5)
	tp.natsURL, tp.prefix = natsURL, prefix
	t.Cleanup(func() { deleteStreams(t, natsURL, prefix) })

	if err := run(tp.bin["authd"], "init", "-data-dir", tp.dataDir); err != nil {
		t.Fatalf("authd init: %v", err)
	}
	demoPort := freePort(t)
	tp.demoURL = fmt.Sprintf("http://localhost:%d", demoPort)
	for i := 1; i <= 2; i++ {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		// The environment, as in the compose file, not flags.
		env := []string{
			"TWOFACTOR_DATA_DIR=" + tp.dataDir, "TWOFACTOR_LISTEN=" + addr, "TWOFACTOR_DATABASE_URL=" + dbURL,
			"TWOFACTOR_NATS_URL=" + natsURL, "TWOFACTOR_NATS_PREFIX=" + prefix,
			fmt.Sprintf("TWOFACTOR_METRICS_LISTEN=127.0.0.1:%d", freePort(t)),
			"TWOFACTOR_WEBAUTHN_ORIGINS=" + tp.demoURL, "TWOFACTOR_BREACHED_MODE=off", "TWOFACTOR_LOG_FORMAT=text",
			"TWOFACTOR_HEALTH_INTERVAL=1s", "TWOFACTOR_OTP_TELEGRAM_BOT=" + e2eTelegramBot,
		}
		tp.start(t, fmt.Sprintf("authd-%d", i), tp.bin["authd"], env)
		// One after the other: the first migrates the fresh schema.
		waitFor(t, fmt.Sprintf("authd-%d", i), 60*time.Second, func() error {
			return run(tp.bin["authd"], "healthcheck", "-listen", addr, "-data-dir", tp.dataDir)
		})
		tp.replicas = append(tp.replicas, addr)
	}
	tp.proxy = startProxy(t, tp.replicas...)
	tp.startMailpit(t)
	tp.startNotifyd(t, natsURL, prefix)

	demoListen := fmt.Sprintf("127.0.0.1:%d", demoPort)
	tp.start(t, "demo", tp.bin["demo"], nil, "-listen", demoListen, "-origin", tp.demoURL, "-addr", tp.proxy.addr, "-data-dir", tp.dataDir)
	waitFor(t, "demo", 30*time.Second, func() error { return run(tp.bin["demo"], "healthcheck", "-listen", demoListen) })

	key, err := client.FindAPIKey("", tp.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	tp.c, err = client.Dial(client.Options{Addr: tp.proxy.addr, APIKey: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tp.c.Close() })
	tp.enableRemember(t)
	return tp
}

func (tp *topology) startMailpit(t *testing.T) {
	t.Helper()
	tp.mailSMTP = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	api := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	tp.mailAPI = "http://" + api
	tp.start(t, "mailpit", tp.bin["mailpit"], nil, "--smtp", tp.mailSMTP, "--listen", api,
		"--database", filepath.Join(t.TempDir(), "mailpit.db"), "--disable-version-check", "--smtp-auth-accept-any", "--smtp-auth-allow-insecure")
	waitFor(t, "mailpit", 30*time.Second, func() error {
		resp, err := http.Get(tp.mailAPI + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz: %s", resp.Status)
		}
		return nil
	})
}

// startNotifyd starts two notifyd workers once cmd/notifyd exists, configured
// as the compose file configures them (SMTP to Mailpit).
func (tp *topology) startNotifyd(t *testing.T, natsURL, prefix string) {
	t.Helper()
	bin, ok := tp.bin["notifyd"]
	if !ok {
		t.Log("cmd/notifyd does not exist yet: the topology runs without the delivery workers")
		return
	}
	host, port, _ := net.SplitHostPort(tp.mailSMTP)
	for i := 1; i <= 2; i++ {
		outbox := filepath.Join(t.TempDir(), "outbox")
		tp.outboxes = append(tp.outboxes, outbox)
		env := []string{
			"TWOFACTOR_DATA_DIR=" + tp.dataDir, "TWOFACTOR_NATS_URL=" + natsURL, "TWOFACTOR_NATS_PREFIX=" + prefix,
			"TWOFACTOR_DATABASE_URL=" + tp.dbURL,                              // push delivery reads the devices' endpoints
			fmt.Sprintf("TWOFACTOR_METRICS_LISTEN=127.0.0.1:%d", freePort(t)), // and /healthz
			"TWOFACTOR_SMTP_HOST=" + host, "TWOFACTOR_SMTP_PORT=" + port, "TWOFACTOR_SMTP_TLS=none",
			"TWOFACTOR_SMTP_FROM=twofactor@localhost", "TWOFACTOR_LOG_FORMAT=text",
			"TWOFACTOR_OUTBOX=true", "TWOFACTOR_OUTBOX_DIR=" + outbox,
		}
		name := fmt.Sprintf("notifyd-%d", i)
		tp.start(t, name, bin, env)
		waitFor(t, name, 30*time.Second, func() error {
			cmd := exec.Command(bin, "healthcheck")
			cmd.Env = append(os.Environ(), env...)
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		})
		tp.notifyd++
	}
}

func deleteStreams(t *testing.T, url, prefix string) {
	nc, err := nats.Connect(url)
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	up := strings.ToUpper(prefix) + "_"
	var mine []string
	lister := js.StreamNames(ctx)
	for name := range lister.Name() {
		if strings.HasPrefix(name, up) || strings.HasPrefix(name, "KV_"+up) {
			mine = append(mine, name)
		}
	}
	for _, name := range mine {
		js.DeleteStream(ctx, name)
	}
}

// TestTopology starts the whole topology once and runs every flow through it:
// the API-level checks first, then the browser flows.
func TestTopology(t *testing.T) {
	tp := startTopology(t)
	t.Run("APIKeyReloadWithoutSignal", tp.testAPIKeyReload)
	t.Run("LoginCrossesReplicas", tp.testLoginCrossesReplicas)
	t.Run("MailpitCatchesMail", tp.testMailpit)
	t.Run("Browser", tp.testBrowser)

	calls, crossed := tp.proxy.snapshot()
	per := map[int]int{}
	verifies := 0
	for _, c := range calls {
		per[c.Backend]++
		if strings.HasSuffix(c.Method, "/VerifyChallenge") {
			verifies++
		}
	}
	t.Logf("proxy: %d RPCs, %d to authd-1 and %d to authd-2; %d of %d VerifyChallenge answered by the other replica than their BeginChallenge; %d notifyd running",
		len(calls), per[0], per[1], crossed, verifies, tp.notifyd)
	if per[0] == 0 || per[1] == 0 {
		t.Errorf("a replica served no RPC: %v", per)
	}
	if verifies == 0 || crossed != verifies {
		t.Errorf("only %d of %d verifications crossed replicas", crossed, verifies)
	}
}

// `authd apikey add` writes the key file; both running replicas load it within
// a few seconds with no signal (they watch the file).
func (tp *topology) testAPIKeyReload(t *testing.T) {
	out, err := exec.Command(tp.bin["authd"], "apikey", "add", "-name", "e2e", "-roles", "login", "-data-dir", tp.dataDir).Output()
	if err != nil {
		t.Fatalf("authd apikey add: %v", err)
	}
	token := strings.TrimSpace(string(out))
	for i, addr := range tp.replicas {
		c, err := client.Dial(client.Options{Addr: addr, APIKey: token})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, fmt.Sprintf("the new key on authd-%d", i+1), 10*time.Second, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, err := c.Challenges.GetLoginRequirements(ctx, &pb.GetLoginRequirementsRequest{UserId: "nobody"})
			return err
		})
		c.Close()
	}
}

// A backup-code login through the proxy: BeginChallenge on one replica,
// VerifyChallenge on the other, a wrong code counted, then the right one.
func (tp *topology) testLoginCrossesReplicas(t *testing.T) {
	ctx := context.Background()
	codes, err := tp.c.Enrollment.IssueBackupCodes(ctx, &pb.IssueBackupCodesRequest{UserId: "e2e-api"})
	if err != nil {
		t.Fatal(err)
	}
	_, before := tp.proxy.snapshot()
	ch, err := tp.c.Begin(ctx, "e2e-api", pb.Method_METHOD_BACKUP_CODE, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := tp.c.VerifyCode(ctx, ch.GetChallengeId(), "AAAAA-AAAAA", nil)
	if err != nil || r.GetResult() != pb.VerifyResult_VERIFY_RESULT_REJECTED || r.GetRemainingAttempts() != 4 {
		t.Fatalf("wrong code on the other replica: %v %v", r, err)
	}
	r, err = tp.c.VerifyCode(ctx, ch.GetChallengeId(), codes.GetCodes()[0], nil)
	if err != nil || r.GetResult() != pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
		t.Fatalf("right code: %v %v", r, err)
	}
	if _, after := tp.proxy.snapshot(); after-before != 2 {
		t.Fatalf("%d of 2 verifications reached the replica that did not begin the challenge", after-before)
	}
	// Each code works once, whichever replica sees it.
	if r, err := tp.c.LoginWithCode(ctx, "e2e-api", pb.Method_METHOD_BACKUP_CODE, codes.GetCodes()[0], nil); err != nil || r.GetResult() == pb.VerifyResult_VERIFY_RESULT_ACCEPTED {
		t.Fatalf("a used backup code was accepted again: %v %v", r, err)
	}
}

// Mailpit catches a mail on its SMTP port and shows it on its HTTP API, as the
// email-code flow reads it once notifyd sends codes.
func (tp *topology) testMailpit(t *testing.T) {
	token := randomHex(8)
	msg := "From: twofactor@localhost\r\nTo: alice@example.com\r\nSubject: e2e " + token + "\r\n\r\nYour code is " + token + "\r\n"
	if err := smtp.SendMail(tp.mailSMTP, nil, "twofactor@localhost", []string{"alice@example.com"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	body := tp.waitForMail(t, "alice@example.com", "e2e "+token)
	if !strings.Contains(body, "Your code is "+token) {
		t.Fatalf("mail body %q", body)
	}
}

// waitForMail returns the text of the newest mail to `to` whose subject is
// subject, polling Mailpit's API.
func (tp *topology) waitForMail(t *testing.T, to, subject string) string {
	t.Helper()
	var id string
	waitFor(t, "mail "+subject, 15*time.Second, func() error {
		var list struct {
			Messages []struct {
				ID      string `json:"ID"`
				Subject string `json:"Subject"`
				To      []struct {
					Address string `json:"Address"`
				} `json:"To"`
			} `json:"messages"`
		}
		if err := getJSON(tp.mailAPI+"/api/v1/messages", &list); err != nil {
			return err
		}
		for _, m := range list.Messages {
			if m.Subject == subject && len(m.To) > 0 && m.To[0].Address == to {
				id = m.ID
				return nil
			}
		}
		return fmt.Errorf("not among %d messages", len(list.Messages))
	})
	var m struct {
		Text string `json:"Text"`
	}
	if err := getJSON(tp.mailAPI+"/api/v1/message/"+id, &m); err != nil {
		t.Fatal(err)
	}
	return m.Text
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(bufio.NewReader(resp.Body)).Decode(v)
}
