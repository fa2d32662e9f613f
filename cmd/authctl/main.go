// Command authctl is the operator's CLI for twofactor: it talks gRPC to authd.
//
//	authctl [global flags] <command> [args]
//
// Run "authctl help" for the commands. By default it reaches an embedded authd on
// 127.0.0.1:7443 with the admin key from ./data/admin.key.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/twofactor/twofactor/clients/client"
)

// command is one authctl subcommand; each file registers its own in init.
type command struct {
	usage string // "totp enroll <user>"
	help  string
	run   func(e *env, args []string) error
}

var commands = map[string]command{}

func register(name string, c command) { commands[name] = c }

// env is what a command runs with.
type env struct {
	c     *client.Client
	ctx   context.Context
	stdin io.Reader
	in    *bufio.Reader
	out   io.Writer
	// dataDir is the -data-dir folder (the embedded NATS token is there).
	dataDir string
}

func (e *env) prompt(q string) (string, error) {
	fmt.Fprint(e.out, q)
	line, err := e.in.ReadString('\n')
	if err != nil && line == "" {
		return "", err
	}
	return strings.TrimSpace(line), nil
}

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "authctl:", err)
		}
		os.Exit(1)
	}
}

func run(args []string, stdin io.Reader, stdout io.Writer) error {
	return runContext(context.Background(), args, stdin, stdout)
}

// runContext runs one command; ctx ending ends it as -timeout does (tests stop
// a listening device with it).
func runContext(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("authctl", flag.ContinueOnError)
	addr := fs.String("addr", envOr("TWOFACTOR_ADDR", "127.0.0.1:7443"), "authd address (env TWOFACTOR_ADDR)")
	dataDir := fs.String("data-dir", envOr("TWOFACTOR_DATA_DIR", "data"), "embedded authd's data folder, where admin.key is")
	keyFile := fs.String("key-file", "", "file holding the API key (default <data-dir>/admin.key; env TWOFACTOR_API_KEY wins)")
	useTLS := fs.Bool("tls", false, "use TLS")
	ca := fs.String("ca", "", "CA certificate (PEM) for TLS")
	cert := fs.String("cert", "", "client certificate (PEM) for mTLS")
	key := fs.String("cert-key", "", "client certificate key (PEM) for mTLS")
	timeout := fs.Duration("timeout", 0, "deadline for the whole command (0: none)")
	fs.Usage = func() { usage(fs.Output(), fs) }
	if err := fs.Parse(args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) == 0 || rest[0] == "help" {
		usage(stdout, fs)
		return nil
	}
	name, cmdArgs, ok := lookup(rest)
	if !ok {
		return fmt.Errorf("unknown command %q; run authctl help", strings.Join(rest, " "))
	}
	apiKey, err := client.FindAPIKey(*keyFile, *dataDir)
	if err != nil {
		return err
	}
	c, err := client.Dial(client.Options{Addr: *addr, APIKey: apiKey, TLS: *useTLS || *ca != "", CAFile: *ca, CertFile: *cert, KeyFile: *key})
	if err != nil {
		return err
	}
	defer c.Close()
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	return commands[name].run(&env{c: c, ctx: ctx, stdin: stdin, in: bufio.NewReader(stdin), out: stdout, dataDir: *dataDir}, cmdArgs)
}

// lookup finds the longest registered command name that prefixes args.
func lookup(args []string) (string, []string, bool) {
	for n := min(len(args), 3); n > 0; n-- {
		name := strings.Join(args[:n], " ")
		if _, ok := commands[name]; ok {
			return name, args[n:], true
		}
	}
	return "", nil, false
}

func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintln(w, "usage: authctl [global flags] <command> [args]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-44s %s\n", commands[n].usage, commands[n].help)
	}
	fmt.Fprintln(w, "\nglobal flags:")
	fs.SetOutput(w)
	fs.PrintDefaults()
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// need checks a command got exactly n positional arguments.
func need(args []string, n int, usage string) error {
	if len(args) != n {
		return fmt.Errorf("usage: authctl %s", usage)
	}
	return nil
}

func when(t interface {
	AsTime() time.Time
	IsValid() bool
}) string {
	if t == nil || !t.IsValid() {
		return "-"
	}
	return t.AsTime().Local().Format("2006-01-02 15:04")
}
