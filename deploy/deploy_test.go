package deploy

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/twofactor/twofactor/clients/demo"
	"github.com/twofactor/twofactor/server/app"
)

const root = ".."

// load reads the compose files as `docker compose` would, with .env.example as
// the .env file and every profile active.
func load(t *testing.T, files ...string) *types.Project {
	t.Helper()
	var paths []string
	for _, f := range files {
		paths = append(paths, filepath.Join(root, f))
	}
	opts, err := cli.NewProjectOptions(paths,
		cli.WithWorkingDirectory(root),
		cli.WithEnvFiles(filepath.Join(root, ".env.example")),
		cli.WithDotEnv,
		cli.WithProfiles([]string{"*"}),
	)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("compose files %v do not load: %v", files, err)
	}
	return p
}

var wantServices = []string{
	"init", "authd-1", "authd-2", "lb", "notifyd-1", "notifyd-2", "postgres",
	"nats-1", "nats-2", "nats-3", "mailpit", "ntfy", "demo", "authctl",
}

// oneShot services run and exit (init) or are run by hand (authctl): they need
// no healthcheck.
var oneShot = map[string]bool{"init": true, "authctl": true}

func TestComposeTopology(t *testing.T) {
	p := load(t, "docker-compose.yml")
	services := p.AllServices()
	for _, name := range wantServices {
		if _, ok := services[name]; !ok {
			t.Errorf("service %s is missing", name)
		}
	}
	checkHealthAndDependencies(t, services)
	checkOneImage(t, services)
	checkPorts(t, "docker-compose.yml", services)
	checkWebAuthnOrigin(t, services)
	checkVariables(t, services)
	checkPushAllowInternal(t, services)
	if services["lb"].DependsOn["authd-1"].Condition != types.ServiceConditionHealthy {
		t.Error("lb must wait for healthy authd replicas")
	}
}

func TestComposeDevOverride(t *testing.T) {
	p := load(t, "docker-compose.yml", "compose.dev.yml")
	services := p.AllServices()
	checkHealthAndDependencies(t, services)
	checkPorts(t, "docker-compose.yml + compose.dev.yml", services)
	checkVariables(t, services)
	if got := services["authd-1"].Environment["TWOFACTOR_LOG_FORMAT"]; got == nil || *got != "text" {
		t.Errorf("compose.dev.yml does not switch authd to text logs: %v", got)
	}
}

func checkHealthAndDependencies(t *testing.T, services types.Services) {
	t.Helper()
	for name, s := range services {
		if !oneShot[name] && (s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) == 0) {
			t.Errorf("service %s has no healthcheck", name)
		}
		if bin := ourBinary(s); bin != "" && !oneShot[name] {
			want := []string{"CMD", "/usr/local/bin/" + bin, "healthcheck"}
			if s.HealthCheck == nil || len(s.HealthCheck.Test) < 3 || !slices.Equal([]string(s.HealthCheck.Test[:3]), want) {
				t.Errorf("service %s: healthcheck %v, want %v (the image has no shell)", name, s.HealthCheck, want)
			}
		}
		for dep, d := range s.DependsOn {
			target, ok := services[dep]
			switch {
			case !ok:
				t.Errorf("service %s depends on unknown service %s", name, dep)
			case d.Condition == types.ServiceConditionCompletedSuccessfully && oneShot[dep]:
			case d.Condition != types.ServiceConditionHealthy:
				t.Errorf("service %s depends on %s with condition %q, want service_healthy", name, dep, d.Condition)
			case target.HealthCheck == nil:
				t.Errorf("service %s waits for %s to be healthy, which has no healthcheck", name, dep)
			}
		}
	}
}

// ourBinary names the twofactor binary a service of our image runs.
func ourBinary(s types.ServiceConfig) string {
	if s.Image != "twofactor/authd:dev" {
		return ""
	}
	if len(s.Entrypoint) > 0 {
		return filepath.Base(s.Entrypoint[0])
	}
	return "authd"
}

// One image build serves every service of ours.
func checkOneImage(t *testing.T, services types.Services) {
	t.Helper()
	builds := 0
	for name, s := range services {
		if s.Build != nil {
			builds++
			if s.Image != "twofactor/authd:dev" || s.Build.Dockerfile != "Dockerfile" {
				t.Errorf("service %s builds %s from %s, want twofactor/authd:dev from the one Dockerfile", name, s.Image, s.Build.Dockerfile)
			}
		}
		if strings.HasPrefix(s.Image, "twofactor/") && s.Image != "twofactor/authd:dev" {
			t.Errorf("service %s uses a second image of ours: %s", name, s.Image)
		}
	}
	if builds == 0 {
		t.Error("no service builds the image")
	}
}

// Published ports listen on loopback only, and none is the host's 4222.
func checkPorts(t *testing.T, files string, services types.Services) {
	t.Helper()
	for name, s := range services {
		for _, port := range s.Ports {
			if port.Published == "4222" || (port.Published == "" && port.Target == 4222) {
				t.Errorf("%s: service %s publishes port 4222 on the host", files, name)
			}
			if port.HostIP != "127.0.0.1" {
				t.Errorf("%s: service %s publishes %s:%d on %q, want 127.0.0.1", files, name, port.Published, port.Target, port.HostIP)
			}
		}
	}
}

// flagValue returns the value of -name in a command line, or "".
func flagValue(cmd []string, name string) string {
	for i, a := range cmd {
		if (a == "-"+name || a == "--"+name) && i+1 < len(cmd) {
			return cmd[i+1]
		}
		if v, ok := strings.CutPrefix(a, "-"+name+"="); ok {
			return v
		}
	}
	return ""
}

// The demo is published where its -origin says, and authd accepts exactly that
// origin with the origin's host as the relying party id.
func checkWebAuthnOrigin(t *testing.T, services types.Services) {
	t.Helper()
	d := services["demo"]
	origin := flagValue(d.Command, "origin")
	u, err := url.Parse(origin)
	if err != nil || u.Scheme == "" || u.Port() == "" {
		t.Fatalf("demo -origin %q is not an origin with a port", origin)
	}
	_, listenPort, _ := strings.Cut(flagValue(d.Command, "listen"), ":")
	published := false
	for _, port := range d.Ports {
		if port.Published == u.Port() && listenPort == itoa(port.Target) {
			published = true
		}
	}
	if !published {
		t.Errorf("demo -origin %s, but the demo is published on %v listening on %s", origin, d.Ports, listenPort)
	}
	if u.Hostname() != "localhost" {
		t.Errorf("demo origin %s: the published ports are on loopback, so the browser's host is localhost", origin)
	}
	for _, name := range []string{"authd-1", "authd-2"} {
		env := services[name].Environment
		origins, rp := env["TWOFACTOR_WEBAUTHN_ORIGINS"], env["TWOFACTOR_WEBAUTHN_RP_ID"]
		if origins == nil || !slices.Contains(strings.Split(*origins, ","), origin) {
			t.Errorf("%s: TWOFACTOR_WEBAUTHN_ORIGINS %q does not list the demo's origin %s", name, deref(origins), origin)
		}
		if rp == nil || *rp != u.Hostname() {
			t.Errorf("%s: TWOFACTOR_WEBAUTHN_RP_ID %q, want the demo origin's host %s", name, deref(rp), u.Hostname())
		}
	}
}

// checkPushAllowInternal: every authd and notifyd has the same push allowance, and
// it admits the push endpoint hosts the compose network's devices register (its
// ntfy): authd refuses to enroll what notifyd would not reach, notifyd reaches what
// authd enrolled.
func checkPushAllowInternal(t *testing.T, services types.Services) {
	t.Helper()
	var want *string
	for name, s := range services {
		if bin := ourBinary(s); (bin != "authd" && bin != "notifyd") || oneShot[name] {
			continue
		}
		got := s.Environment["TWOFACTOR_PUSH_ALLOW_INTERNAL"]
		if got == nil || !slices.Contains(strings.Split(*got, ","), "ntfy") {
			t.Errorf("%s: TWOFACTOR_PUSH_ALLOW_INTERNAL %q does not allow the compose ntfy", name, deref(got))
			continue
		}
		if want == nil {
			want = got
		} else if *got != *want {
			t.Errorf("%s: TWOFACTOR_PUSH_ALLOW_INTERNAL %q, another service has %q", name, *got, *want)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

// authdVariables are the TWOFACTOR_* names authd reads: app.Parse asks the
// environment for every flag it defines.
func authdVariables(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	if _, err := app.Parse("authd", nil, func(k string) string { names[k] = true; return "" }); err != nil {
		t.Fatal(err)
	}
	if len(names) < 20 {
		t.Fatalf("app.Parse asked for only %d variables", len(names))
	}
	return names
}

func demoFlags() map[string]bool {
	names := map[string]bool{}
	demo.NewFlagSet("demo", &demo.Flags{}).VisitAll(func(f *flag.Flag) { names[f.Name] = true })
	return names
}

// notifydVariables builds cmd/notifyd, when it exists, and reads its flags from
// its -h, named the way app.Parse names authd's (TWOFACTOR_UPPER_SNAKE).
func notifydVariables(t *testing.T) map[string]bool {
	t.Helper()
	notifydOnce.Do(func() { notifydNames, notifydErr = readNotifydFlags() })
	if notifydErr != nil {
		t.Fatal(notifydErr)
	}
	return notifydNames
}

var (
	notifydOnce  sync.Once
	notifydNames map[string]bool
	notifydErr   error
)

func readNotifydFlags() (map[string]bool, error) {
	if _, err := os.Stat(filepath.Join(root, "cmd", "notifyd")); err != nil {
		return nil, nil
	}
	dir, err := os.MkdirTemp("", "notifyd-flags-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "notifyd")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/notifyd").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build notifyd: %v\n%s", err, out)
	}
	out, _ := exec.Command(bin, "-h").CombinedOutput()
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z0-9][a-z0-9-]*)`).FindAllStringSubmatch(string(out), -1) {
		names["TWOFACTOR_"+strings.ToUpper(strings.ReplaceAll(m[1], "-", "_"))] = true
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("notifyd -h lists no flags:\n%s", out)
	}
	return names, nil
}

func checkVariables(t *testing.T, services types.Services) {
	t.Helper()
	authd, notifyd, demoF := authdVariables(t), notifydVariables(t), demoFlags()
	for name, s := range services {
		bin := ourBinary(s)
		for k := range s.Environment {
			if !strings.HasPrefix(k, "TWOFACTOR_") {
				continue
			}
			switch bin {
			case "authd", "authctl":
				if !authd[k] && bin == "authd" {
					t.Errorf("service %s sets %s, which is no flag of authd", name, k)
				}
			case "notifyd":
				if notifyd != nil && !notifyd[k] {
					t.Errorf("service %s sets %s, which is no flag of notifyd", name, k)
				}
			default:
				t.Errorf("service %s (%s) sets %s, which it does not read", name, bin, k)
			}
		}
		if bin == "demo" {
			for _, a := range s.Command {
				if f, ok := strings.CutPrefix(a, "-"); ok && !demoF[strings.TrimPrefix(strings.SplitN(f, "=", 2)[0], "-")] {
					t.Errorf("service demo passes %s, which is no flag of the demo", a)
				}
			}
		}
		if bin == "notifyd" && notifyd != nil && len(s.Profiles) > 0 {
			t.Errorf("cmd/notifyd exists now: drop `profiles: %v` from %s in docker-compose.yml so it runs by default", s.Profiles, name)
		}
	}
	if notifyd == nil {
		t.Log("cmd/notifyd does not exist yet: the notifyd services' variables are checked once it does")
	}
}

// Every ${VAR} the compose files use is documented in .env.example, and
// .env.example documents nothing they do not use.
func TestEnvExampleDocumentsEveryVariable(t *testing.T) {
	used := map[string]bool{}
	for _, f := range []string{"docker-compose.yml", "compose.dev.yml"} {
		raw, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)`).FindAllStringSubmatch(string(raw), -1) {
			used[m[1]] = true
		}
	}
	raw, err := os.ReadFile(filepath.Join(root, ".env.example"))
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^([A-Za-z_][A-Za-z0-9_]*)=`).FindAllStringSubmatch(string(raw), -1) {
		documented[m[1]] = true
	}
	for v := range used {
		if !documented[v] {
			t.Errorf("the compose files use ${%s}, which .env.example does not document", v)
		}
	}
	for v := range documented {
		if !used[v] {
			t.Errorf(".env.example documents %s, which no compose file uses", v)
		}
	}
	if !used["POSTGRES_PASSWORD"] {
		t.Error("the database password is not taken from .env")
	}
}

// deploy/nats.conf's routes are the compose file's NATS services, and
// deploy/nginx.conf's upstream is its authd replicas.
func TestConfigsMatchCompose(t *testing.T) {
	p := load(t, "docker-compose.yml")
	nats, err := os.ReadFile(filepath.Join(root, "deploy", "nats.conf"))
	if err != nil {
		t.Fatal(err)
	}
	nginx, err := os.ReadFile(filepath.Join(root, "deploy", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for name := range p.AllServices() {
		if strings.HasPrefix(name, "nats-") && !strings.Contains(string(nats), "nats-route://"+name+":6222") {
			t.Errorf("deploy/nats.conf has no route to %s", name)
		}
		if strings.HasPrefix(name, "authd-") && !regexp.MustCompile(`(?m)^\s*server\s+`+name+`:7443\b`).Match(nginx) {
			t.Errorf("deploy/nginx.conf's upstream lacks %s:7443", name)
		}
	}
	if !strings.Contains(string(nats), "jetstream") {
		t.Error("deploy/nats.conf does not enable JetStream")
	}
}

// requireTool finds a program, or skips (fails when TWOFACTOR_DEPLOY_TOOLS=required,
// as .ci/run sets it).
func requireTool(t *testing.T, name string, paths ...string) string {
	t.Helper()
	for _, p := range append([]string{name}, paths...) {
		if found, err := exec.LookPath(p); err == nil {
			return found
		}
	}
	if os.Getenv("TWOFACTOR_DEPLOY_TOOLS") == "required" {
		t.Fatalf("%s is not installed (TWOFACTOR_DEPLOY_TOOLS=required)", name)
	}
	t.Skipf("%s is not installed: skipping its check of the config (apt-get install %s)", name, name)
	return ""
}

func TestNATSConfigWithNATSServer(t *testing.T) {
	bin := requireTool(t, "nats-server", "/usr/sbin/nats-server")
	if out, err := exec.Command(bin, "-t", "-c", filepath.Join(root, "deploy", "nats.conf")).CombinedOutput(); err != nil {
		t.Fatalf("nats-server -t: %v\n%s", err, out)
	}
}

// nginx -t resolves upstream host names, which exist only inside the compose
// network: the check runs on a copy whose upstream servers are 127.0.0.1.
func TestNginxConfigWithNginx(t *testing.T) {
	bin := requireTool(t, "nginx", "/usr/sbin/nginx")
	raw, err := os.ReadFile(filepath.Join(root, "deploy", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	conf := regexp.MustCompile(`authd-\d+:7443`).ReplaceAll(raw, []byte("127.0.0.1:7443"))
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), conf, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-t", "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", "stderr", "-g", "pid "+filepath.Join(dir, "nginx.pid")+";")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}
