// Package outbox is the development channel: each message is written as a file to a
// folder (data/outbox/ in embedded mode) and a log line names the file, so a newcomer
// can try every channel without an account anywhere.
//
// # Security properties
//
// This is the one place a code is written in clear, for development only: files are
// mode 0600 in a folder of mode 0700 (created so, and refused if group or others can
// enter it), and the log line names the file, never the code or the destination
// (OWASP ASVS 4.0 V7.1.1). Never configure it on a shared machine in production.
//
// A message appears whole or not at all: it is written to a temporary file in the
// folder (".outbox-*.tmp", which neither "*.txt" nor a message name matches),
// synced, and linked to its name, which must not exist yet (a message is never
// written over another); the temporary file is removed in every case but a
// crash between the write and the removal. New sweeps such leftovers (they may
// hold a code in clear) once they are older than StaleTemp: a write takes
// milliseconds, so a Sender of another process sharing the folder never loses a
// temporary file it is still writing.
package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/twofactor/twofactor/notify"
	"github.com/twofactor/twofactor/notify/channels"
)

// Config configures a Sender.
type Config struct {
	Dir    string // the folder (required)
	Logger *slog.Logger
	Now    func() time.Time
}

// Sender writes messages to files.
type Sender struct{ cfg Config }

// tempPattern names the temporary files: hidden, and not ending in .txt, so
// that no reader of messages (which look for *.txt) sees one.
const tempPattern = ".outbox-*.tmp"

// StaleTemp is the age (by modification time, against Config.Now) past which
// New removes a temporary file a crash left behind.
const StaleTemp = 10 * time.Minute

// New creates the folder (0700) if needed and checks its mode.
func New(cfg Config) (*Sender, error) {
	if cfg.Dir == "" {
		return nil, errors.New("outbox: folder is required")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	st, err := os.Stat(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("outbox: folder %s has mode %v: want 0700 (it holds codes in clear)", cfg.Dir, st.Mode().Perm())
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Sender{cfg: cfg}
	s.sweep()
	return s, nil
}

// sweep removes the folder's temporary files older than StaleTemp: left by a
// crash between a write and its removal. Only regular files named by
// tempPattern are looked at; a failure is logged and the Sender starts anyway.
func (s *Sender) sweep() {
	// The folder's entries matched by name: a glob of the whole path would read
	// the folder's own name as a pattern ("out[1]" matches no folder of that name).
	entries, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		s.cfg.Logger.Warn("outbox: cannot list the folder for stale temporary files", "folder", s.cfg.Dir, "error", err.Error())
		return
	}
	now := s.cfg.Now()
	removed := 0
	for _, e := range entries {
		if ok, _ := filepath.Match(tempPattern, e.Name()); !ok {
			continue
		}
		name := filepath.Join(s.cfg.Dir, e.Name())
		st, err := os.Lstat(name)
		if err != nil || !st.Mode().IsRegular() || now.Sub(st.ModTime()) <= StaleTemp {
			continue
		}
		if err := os.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.cfg.Logger.Warn("outbox: cannot remove a stale temporary file (it may hold a code in clear)", "file", name, "error", err.Error())
			continue
		}
		removed++
	}
	if removed > 0 {
		s.cfg.Logger.Info("outbox: removed temporary files a crash left behind", "folder", s.cfg.Dir, "files", removed)
	}
}

// Send writes m to <dir>/<unix nanos>-<channel>-<challenge id>.txt (a notice: to
// <dir>/<unix nanos>-<channel>-notice-<notice id>.txt, with a "Kind: notice" line).
func (s *Sender) Send(ctx context.Context, m channels.Message) error {
	if !notify.ValidChannel(m.Channel) {
		return notify.Permanent{Err: errors.New("outbox: unknown channel"), Reason: notify.ReasonRejected}
	}
	if err := notifyToken(m.ChallengeID); err != nil {
		return notify.Permanent{Err: err, Reason: notify.ReasonRejected}
	}
	kind := "-"
	if m.IsNotice() {
		kind = "-notice-"
	}
	name := strconv.FormatInt(s.cfg.Now().UnixNano(), 10) + "-" + m.Channel + kind + m.ChallengeID + ".txt"
	path := filepath.Join(s.cfg.Dir, name)
	idLine := "\nChallenge: " + m.ChallengeID
	if m.IsNotice() {
		idLine = "\nKind: notice\nNotice: " + m.ChallengeID
	}
	body := "To: " + m.Destination + "\nChannel: " + m.Channel + idLine +
		"\nExpires: " + m.ExpiresAt.UTC().Format(time.RFC3339) + "\n"
	if m.Subject != "" {
		body += "Subject: " + m.Subject + "\n"
	}
	body += "\n" + m.TextOrDefault() + "\n"
	if err := s.write(path, body); err != nil {
		return err
	}
	if m.IsNotice() {
		s.cfg.Logger.Info("outbox: notice written (development channel: the file holds the destination in clear)",
			"file", path, "channel", m.Channel, "notice_id", m.ChallengeID)
		return nil
	}
	s.cfg.Logger.Info("outbox: message written (development channel: the file holds the code in clear)",
		"file", path, "channel", m.Channel, "challenge_id", m.ChallengeID)
	return nil
}

// write makes path a file of body, whole or not at all: body goes to a
// temporary file in the same folder, synced, then linked to path (which fails
// if path exists: never over another message); the temporary file is removed
// whatever happens (once the message has its name, a failure to remove it is
// logged: the message is written, a retry would write it twice).
func (s *Sender) write(path, body string) error {
	f, err := os.CreateTemp(filepath.Dir(path), tempPattern) // mode 0600, a name of its own
	if err != nil {
		return fmt.Errorf("outbox: create message file: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err := os.Remove(tmp); err != nil {
			s.cfg.Logger.Warn("outbox: cannot remove a temporary file (it may hold a code in clear)", "file", tmp, "error", err.Error())
		}
	}()
	if _, err := f.WriteString(body); err != nil {
		f.Close()
		return fmt.Errorf("outbox: write message file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("outbox: sync message file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("outbox: close message file: %w", err)
	}
	if err := os.Link(tmp, path); err != nil {
		return fmt.Errorf("outbox: name message file: %w", err)
	}
	return nil
}

// notifyToken keeps the file name inside the folder.
func notifyToken(id string) error {
	if id == "" || len(id) > 128 {
		return errors.New("outbox: challenge id: want 1 to 128 characters")
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return errors.New("outbox: challenge id: character not in [A-Za-z0-9_-]")
		}
	}
	return nil
}
