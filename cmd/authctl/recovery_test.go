package main

import (
	"strings"
	"testing"
)

func TestRecoveryAndAppPasswordCommands(t *testing.T) {
	addr, dataDir := startAuthd(t)
	run := func(args ...string) string {
		t.Helper()
		return start(t, addr, dataDir, args...).wait()
	}

	// Backup codes: issue, then log in with one, then it is spent.
	s := start(t, addr, dataDir, "backup-codes", "issue", "alice")
	code := s.until(`^  ([0-9A-Z]{5}-[0-9A-Z]{5})$`)[1]
	s.wait()
	if out := run("backup-codes", "status", "alice"); !strings.Contains(out, "10 of 10 left") {
		t.Fatalf("status: %s", out)
	}
	s = start(t, addr, dataDir, "login", "alice", "-method", "backup_code")
	s.answer(strings.ToLower(code))
	if out := s.wait(); !strings.Contains(out, "Accepted: alice") {
		t.Fatalf("backup-code login: %s", out)
	}
	s = start(t, addr, dataDir, "login", "alice", "-method", "backup_code")
	s.answer(code)
	s.until(`Rejected`)
	s.in.Close()
	<-s.done
	if out := run("backup-codes", "status", "alice"); !strings.Contains(out, "9 of 10 left") {
		t.Fatalf("status after use: %s", out)
	}

	// App passwords: issue, verify through a pipe, revoke, verify again.
	s = start(t, addr, dataDir, "app-password", "issue", "alice", "-name", "Thunderbird")
	pw := s.until(`^  (tfap_\S+)$`)[1]
	s.wait()
	s = start(t, addr, dataDir, "app-password", "verify", "alice")
	s.answer(pw)
	if out := s.wait(); !strings.Contains(out, "valid: user alice") {
		t.Fatalf("verify: %s", out)
	}
	s = start(t, addr, dataDir, "app-password", "list", "alice")
	id := s.until(`^([0-9a-f-]{36})\s`)[1]
	s.wait()
	run("app-password", "revoke", "alice", id)
	s = start(t, addr, dataDir, "app-password", "verify", "alice")
	s.answer(pw)
	if out := s.wait(); !strings.Contains(out, "invalid") {
		t.Fatalf("verify after revoke: %s", out)
	}

	// Admin code from a full admin.
	run("groups", "set", "root", "admin")
	s = start(t, addr, dataDir, "admin", "code", "-actor", "root", "bob")
	admin := s.until(`^  (\S+)$`)[1]
	s.wait()
	s = start(t, addr, dataDir, "login", "bob", "-method", "admin_code")
	s.answer(admin)
	if out := s.wait(); !strings.Contains(out, "Accepted: bob") {
		t.Fatalf("admin-code login: %s", out)
	}
	if out := run("policy", "set", "-actor", "root", "-enforced", "-grace", "72h"); !strings.Contains(out, "enforced for all:     true") {
		t.Fatalf("policy set: %s", out)
	}
	if out := run("requirements", "carol"); !strings.Contains(out, "must enroll:            true") {
		t.Fatalf("requirements: %s", out)
	}
}

// The login's wording (issue 17): "1 attempt left", no "(factor )" for codes that
// belong to no factor row, and the last wrong answer ends the command instead of
// asking for another code.
func TestLoginWording(t *testing.T) {
	addr, dataDir := startAuthd(t)
	s := start(t, addr, dataDir, "backup-codes", "issue", "erin")
	code := s.until(`^  ([0-9A-Z]{5}-[0-9A-Z]{5})$`)[1]
	s.wait()

	s = start(t, addr, dataDir, "login", "erin", "-method", "backup_code")
	s.answer(code)
	if out := s.wait(); !strings.Contains(out, "Accepted: erin passed the second factor.") || strings.Contains(out, "(factor") {
		t.Fatalf("backup-code login names an empty factor:\n%s", out)
	}

	s = start(t, addr, dataDir, "login", "erin", "-method", "backup_code")
	for _, want := range []string{"4 attempts left", "3 attempts left", "2 attempts left", "1 attempt left."} {
		s.answer("AAAAA-AAAAA")
		s.until(`Rejected \(.*\); ` + want)
	}
	s.answer("AAAAA-AAAAA")
	for line := range s.lines {
		s.output.WriteString(line)
	}
	err := <-s.done
	if err == nil || !strings.Contains(err.Error(), "no attempts left") {
		t.Fatalf("the last wrong code: err = %v\n%s", err, s.output.String())
	}
	out := s.output.String()
	if strings.Contains(out, "0 attempts") || strings.Count(out, "Code: ") != 5 {
		t.Fatalf("after the last attempt authctl asked again or said 0 attempts:\n%s", out)
	}
}
