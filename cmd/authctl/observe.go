package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/twofactor/twofactor/notify"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
)

func init() {
	register("throttle status", command{usage: "throttle status <user|ip>", help: "failure count, delay and lock of a user or client network", run: throttleStatus})
	register("throttle clear", command{usage: "throttle clear <user|ip> [-actor A]", help: "clear the failure count and lock of a user or client network", run: throttleClear})
	register("audit list", command{usage: "audit list <user> [-n 50] [-all] [-json]", help: "a user's audit trail, newest first", run: auditList})
	register("audit tail", command{usage: "audit tail [-from-start] [-nats-url U] [-nats-prefix P] [-durable D] [-json]", help: "follow the audit stream on NATS live (resumes where the durable consumer stopped)", run: auditTail})
}

// subjectOf reads a user id or an IP address.
func subjectOf(s string) *pb.ThrottleSubject {
	if _, err := netip.ParseAddr(s); err == nil {
		return &pb.ThrottleSubject{Subject: &pb.ThrottleSubject_Ip{Ip: s}}
	}
	return &pb.ThrottleSubject{Subject: &pb.ThrottleSubject_UserId{UserId: s}}
}

func throttleStatus(e *env, args []string) error {
	if err := need(args, 1, "throttle status <user|ip>"); err != nil {
		return err
	}
	st, err := e.c.Admin.GetThrottleStatus(e.ctx, &pb.GetThrottleStatusRequest{Subject: subjectOf(args[0])})
	if err != nil {
		return err
	}
	state := "not blocked"
	if st.GetBlockedUntil().IsValid() && st.GetBlockedUntil().AsTime().After(time.Now()) {
		state = "delayed until " + st.GetBlockedUntil().AsTime().Local().Format("2006-01-02 15:04:05")
		if st.GetLocked() {
			state = "LOCKED until " + st.GetBlockedUntil().AsTime().Local().Format("2006-01-02 15:04:05")
		}
	}
	fmt.Fprintf(e.out, "%s: %d failures, %s\n", st.GetKey(), st.GetFailures(), state)
	return nil
}

func throttleClear(e *env, args []string) error {
	fs := flag.NewFlagSet("throttle clear", flag.ContinueOnError)
	actor := fs.String("actor", "", "the admin acting (checked against the user's groups when set)")
	subj, err := userThenFlags(fs, args, "throttle clear <user|ip> [-actor A]")
	if err != nil {
		return err
	}
	if _, err := e.c.Admin.ClearThrottle(e.ctx, &pb.ClearThrottleRequest{ActorId: *actor, Subject: subjectOf(subj)}); err != nil {
		return err
	}
	fmt.Fprintf(e.out, "cleared %s\n", subj)
	return nil
}

func auditList(e *env, args []string) error {
	fs := flag.NewFlagSet("audit list", flag.ContinueOnError)
	n := fs.Uint("n", 50, "events per page")
	all := fs.Bool("all", false, "every page, not only the newest")
	asJSON := fs.Bool("json", false, "one JSON object per line")
	user, err := userThenFlags(fs, args, "audit list <user> [-n 50] [-all] [-json]")
	if err != nil {
		return err
	}
	tok := ""
	for {
		page, err := e.c.Admin.ListAuditEvents(e.ctx, &pb.ListAuditEventsRequest{UserId: user, PageSize: uint32(*n), PageToken: tok})
		if err != nil {
			return err
		}
		for _, ev := range page.GetEvents() {
			method := ""
			if ev.GetMethod() != pb.Method_METHOD_UNSPECIFIED {
				method = strings.ToLower(strings.TrimPrefix(ev.GetMethod().String(), "METHOD_"))
			}
			printEvent(e, *asJSON, notify.AuditEvent{
				V: notify.SchemaVersion, ID: ev.GetId(), Time: ev.GetTime().AsTime(), Event: ev.GetEvent(), UserID: ev.GetUserId(),
				Actor: ev.GetActor(), Caller: ev.GetCaller(), Method: method, Result: ev.GetResult(),
				ClientIP: ev.GetClientIp(), UserAgent: ev.GetUserAgent(), RequestID: ev.GetRequestId(), Details: ev.GetDetails(),
			})
		}
		if tok = page.GetNextPageToken(); tok == "" || !*all {
			return nil
		}
	}
}

// printEvent writes one event: its JSON (schema v1), or one readable line.
func printEvent(e *env, asJSON bool, ev notify.AuditEvent) {
	if asJSON {
		b, _ := json.Marshal(ev)
		fmt.Fprintln(e.out, string(b))
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %-26s", ev.Time.Local().Format("2006-01-02 15:04:05"), ev.Event)
	for _, kv := range [][2]string{{"user", ev.UserID}, {"actor", ev.Actor}, {"method", ev.Method}, {"result", ev.Result},
		{"ip", ev.ClientIP}, {"caller", ev.Caller}, {"request", ev.RequestID}} {
		if kv[1] != "" {
			fmt.Fprintf(&b, " %s=%q", kv[0], kv[1])
		}
	}
	keys := make([]string, 0, len(ev.Details))
	for k := range ev.Details {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%q", k, ev.Details[k])
	}
	fmt.Fprintln(e.out, b.String())
}

func auditTail(e *env, args []string) error {
	fs := flag.NewFlagSet("audit tail", flag.ContinueOnError)
	fromStart := fs.Bool("from-start", false, "a new durable consumer starts at the oldest kept event (default: new events only)")
	url := fs.String("nats-url", envOr("TWOFACTOR_NATS_URL", "nats://127.0.0.1:4222"), "NATS server (env TWOFACTOR_NATS_URL); an embedded authd needs --nats-listen")
	prefix := fs.String("nats-prefix", envOr("TWOFACTOR_NATS_PREFIX", notify.DefaultPrefix), "subject prefix authd uses")
	tokenFile := fs.String("nats-token-file", "", "token of an embedded authd's NATS listener (default <data-dir>/"+notify.TokenFileName+" when it exists)")
	natsCA := fs.String("nats-ca", "", "CA certificate (PEM) of a NATS listener served over TLS")
	durable := fs.String("durable", "authctl", "durable consumer name: a tail with the same name resumes where the last one stopped")
	asJSON := fs.Bool("json", false, "one JSON object (schema v1) per line")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("usage: authctl audit tail [-from-start] [-nats-url U] [-nats-prefix P] [-durable D] [-json]")
	}
	names, err := notify.NewNames(*prefix)
	if err != nil {
		return err
	}
	opts, err := natsClientOptions(e.dataDir, *tokenFile, *natsCA)
	if err != nil {
		return err
	}
	nc, err := notify.Connect(*url, opts...)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(e.ctx, os.Interrupt)
	defer stop()
	return notify.TailAudit(ctx, js, names, *durable, *fromStart, func(ev notify.AuditEvent) error {
		printEvent(e, *asJSON, ev)
		return nil
	})
}

// natsClientOptions presents the embedded NATS server's token (an explicit file, or
// the data folder's when there is one) and trusts natsCA for TLS.
func natsClientOptions(dataDir, tokenFile, natsCA string) ([]nats.Option, error) {
	var opts []nats.Option
	if tokenFile == "" {
		if p := filepath.Join(dataDir, notify.TokenFileName); fileExists(p) {
			tokenFile = p
		}
	}
	if tokenFile != "" {
		o, err := notify.TokenOption(tokenFile)
		if err != nil {
			return nil, err
		}
		opts = append(opts, o)
	}
	if natsCA != "" {
		opts = append(opts, nats.RootCAs(natsCA))
	}
	return opts, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
