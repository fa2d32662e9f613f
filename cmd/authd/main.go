// Command authd serves the twofactor gRPC API.
//
//	authd [flags]                         serve (see -h for every setting)
//	authd init                            create the data folder's keys (sealing key ring, admin API key) and exit
//	authd apikey add -name N -roles R,R   add an API key to the key file and print it once
//	authd keys rotate                     add a new sealing key and make it active
//	authd keys reseal                     re-encrypt stored secrets with the active key
//	authd healthcheck                     exit 0 when the local listener's gRPC health is SERVING
//	authd help                            this list and every serve flag
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/twofactor/twofactor/server"
	"github.com/twofactor/twofactor/server/app"
	"github.com/twofactor/twofactor/storage"
)

const usage = `authd serves the twofactor gRPC API.

Usage:
  authd [flags]                         serve
  authd init [flags]                    create the data folder's keys (sealing key ring, admin API key) and exit
  authd apikey add -name N -roles R,R   add an API key to the key file and print it once
  authd keys rotate [flags]             add a new sealing key and make it active
  authd keys reseal [flags]             re-encrypt stored secrets with the active key
  authd healthcheck [flags]             exit 0 when the local listener's gRPC health is SERVING
  authd help                            this text

Running replicas reload the API key file when it changes (checked every second)
and on SIGHUP. Every flag is also an environment variable TWOFACTOR_<NAME> and a
key of the -config YAML file. Flags:
`

func main() {
	if err := run(os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "authd:", err)
			os.Exit(1)
		}
	}
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "help" {
		args = []string{"-h"}
	}
	if wantsHelp(args) && (len(args) == 0 || strings.HasPrefix(args[0], "-")) {
		fmt.Fprint(os.Stderr, usage)
	}
	if len(args) > 0 && args[0] == "healthcheck" {
		return healthcheck(args[1:])
	}
	if len(args) >= 2 {
		switch args[0] + " " + args[1] {
		case "apikey add":
			return apikeyAdd(args[2:])
		case "keys rotate", "keys reseal":
			return keys(args[1], args[2:])
		}
	}
	initOnly := len(args) > 0 && args[0] == "init"
	if initOnly {
		args = args[1:]
	}
	cfg, err := app.Parse("authd", args, os.Getenv)
	if err != nil {
		return err
	}
	log, err := app.NewLogger(cfg, os.Stderr)
	if err != nil {
		return err
	}
	if initOnly {
		return app.Init(cfg, log)
	}
	return serve(cfg, log)
}

// serve runs authd until SIGINT or SIGTERM, reloading the API key file when it
// changes or on SIGHUP.
func serve(cfg *app.Config, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	reload := func() {
		if err := a.ReloadAPIKeys(); err != nil {
			log.Error("reload API keys", "error", err.Error())
		} else {
			log.Info("reloaded API keys", "path", cfg.APIKeysFile)
		}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			reload()
		}
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	go watchFile(ctx, cfg.APIKeysFile, tick.C, reload)
	return a.Serve(ctx)
}

// wantsHelp tells whether the arguments ask for the usage text.
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "-h", "-help", "--help", "--h":
			return true
		}
	}
	return false
}

func apikeyAdd(args []string) error {
	fs := flag.NewFlagSet("authd apikey add", flag.ContinueOnError)
	name := fs.String("name", "", "who uses the key, e.g. nextcloud-prod")
	roles := fs.String("roles", "login", "comma-separated roles: login, selfservice, admin")
	rest, err := splitServeFlags(fs, args)
	if err != nil {
		return err
	}
	cfg, err := app.Parse("authd", rest, os.Getenv)
	if err != nil {
		return err
	}
	if *name == "" {
		return errors.New("-name is required")
	}
	token, entry, err := server.NewAPIKey(*name, strings.Split(*roles, ","))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}
	if err := server.AppendAPIKey(cfg.APIKeysFile, entry); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "added key %s (%s) to %s; running authd replicas load it within a second (or on SIGHUP).\nThe key, shown once:\n", entry.ID, *roles, cfg.APIKeysFile)
	fmt.Println(token)
	return nil
}

func keys(cmd string, args []string) error {
	cfg, err := app.Parse("authd keys "+cmd, args, os.Getenv)
	if err != nil {
		return err
	}
	switch cmd {
	case "rotate":
		id, err := storage.RotateKeyFile(cfg.KeyFile)
		if err != nil {
			return err
		}
		fmt.Printf("active sealing key is now %s; copy %s to every replica, restart them, then run: authd keys reseal\n", id, cfg.KeyFile)
		return nil
	default:
		ring, err := storage.LoadKeyRing(cfg.KeyFile)
		if err != nil {
			return err
		}
		ctx := context.Background()
		st, err := storage.Open(ctx, cfg.DatabaseURL, storage.Options{MaxOpenConns: 2})
		if err != nil {
			return err
		}
		defer st.Close()
		if err := st.Migrate(ctx); err != nil {
			return err
		}
		n, err := st.ResealFactors(ctx, ring)
		fmt.Printf("resealed %d secrets with key %s\n", n, ring.ActiveKeyID())
		return err
	}
}

// splitServeFlags parses the subcommand's own flags and returns the rest
// (the serve flags such as -data-dir) for app.Parse.
func splitServeFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var own, rest []string
	for i := 0; i < len(args); i++ {
		name := strings.TrimLeft(strings.SplitN(args[i], "=", 2)[0], "-")
		if fs.Lookup(name) != nil {
			own = append(own, args[i])
			if !strings.Contains(args[i], "=") && i+1 < len(args) {
				own = append(own, args[i+1])
				i++
			}
			continue
		}
		rest = append(rest, args[i])
	}
	return rest, fs.Parse(own)
}
