package main

import (
	"strings"
	"testing"
)

func TestDevicesCommands(t *testing.T) {
	addr, dataDir := startAuthd(t)
	run := func(args ...string) string {
		t.Helper()
		return start(t, addr, dataDir, args...).wait()
	}
	run("groups", "set", "root", "admin")
	if out := run("policy", "set", "-actor", "root", "-remember", "-remember-max-age", "240h"); !strings.Contains(out, "remember devices:     true") ||
		!strings.Contains(out, "remembered for:       240h0m0s") {
		t.Fatalf("policy set: %s", out)
	}
	s := start(t, addr, dataDir, "backup-codes", "issue", "alice")
	code := s.until(`^  ([0-9A-Z]{5}-[0-9A-Z]{5})$`)[1]
	s.wait()
	s = start(t, addr, dataDir, "login", "alice", "-method", "backup_code", "-remember", "Laptop")
	s.answer(code)
	tok := s.until(`^  (tfrd_\S+)$`)[1]
	s.wait()

	s = start(t, addr, dataDir, "devices", "list", "alice")
	id := s.until(`^([0-9a-f-]{36})\s.*Laptop$`)[1]
	s.wait()
	if out := run("devices", "list", "alice", "-actor", "root"); !strings.Contains(out, id) {
		t.Fatalf("admin list: %s", out)
	}
	s = start(t, addr, dataDir, "devices", "check", "alice")
	s.answer(tok)
	next := s.until(`^  (tfrd_\S+)$`)[1]
	s.wait()
	if next == tok {
		t.Fatal("the token was not rotated")
	}
	s = start(t, addr, dataDir, "devices", "check", "alice", "-step-up")
	s.answer(next)
	if out := s.wait(); !strings.Contains(out, "STEP_UP_REQUIRED") {
		t.Fatalf("step-up: %s", out)
	}
	if out := run("devices", "revoke", "alice", id, "-actor", "root"); !strings.Contains(out, "revoked 1") {
		t.Fatalf("revoke: %s", out)
	}
	s = start(t, addr, dataDir, "devices", "check", "alice")
	s.answer(next)
	if out := s.wait(); !strings.Contains(out, "Not remembered") {
		t.Fatalf("check after revoke: %s", out)
	}
	if out := run("devices", "revoke", "alice", "-all"); !strings.Contains(out, "revoked 0") {
		t.Fatalf("revoke -all: %s", out)
	}
}
