package otpcode

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Kinds of out-of-band sends.
const (
	KindCode   = "code"   // a one-time code, for a login or an enrollment
	KindNotice = "notice" // a notice without a code (the destination was changed)
)

// Send is one message to deliver out of band: what the server publishes through
// the delivery side's sealed publisher (a gateway send), after the challenge or
// enrollment it belongs to is stored. Destination, Code, Subject and Text are
// secrets in clear, held only in memory: String, GoString and LogValue redact
// them, so a Send that reaches a log line or an error shows none of them.
type Send struct {
	Kind    string
	Channel string
	// ID is the challenge id of a login, the pending factor id of an
	// enrollment, or for a notice a UUIDv5 of what it is about (the same
	// notice made twice has the same id; see noticeID).
	ID string
	// Seq counts the sends of this code: 1 for the first, 2 for the first
	// resend, …; ID and Seq together name one message (a message id for
	// JetStream's de-duplication, which would drop a resend under ID alone).
	Seq         int
	UserID      string
	FactorID    string
	Destination string
	Code        string
	Subject     string // email only
	Text        string
	Locale      string // the locale the text was rendered for ("" : the default)
	// ExpiresAt is when the code stops working; a message not sent by then is
	// of no use and should be dropped, not sent.
	ExpiresAt time.Time
	// CountedAt is when a code's send was counted toward the daily caps (its
	// counters' day), for Provider.Unsend; zero for a notice.
	CountedAt time.Time
}

// MessageID is the id one message is published under: ID for the first send,
// ID_<seq> for a resend ([A-Za-z0-9_-], as gateway send ids must be). Publish
// a resend under it, not under ID: JetStream's de-duplication and the
// workers' record of delivered ids would otherwise drop it.
func (s *Send) MessageID() string {
	if s.Seq <= 1 {
		return s.ID
	}
	return s.ID + "_" + strconv.Itoa(s.Seq)
}

// SplitMessageID returns the challenge (or enrollment) id and the send's
// sequence number of a MessageID.
func SplitMessageID(msgID string) (id string, seq int) {
	i := strings.LastIndexByte(msgID, '_')
	if i < 0 {
		return msgID, 1
	}
	n, err := strconv.Atoi(msgID[i+1:])
	if err != nil || n < 2 || strconv.Itoa(n) != msgID[i+1:] {
		return msgID, 1
	}
	return msgID[:i], n
}

// String shows the send without its secrets.
func (s *Send) String() string {
	if s == nil {
		return "<nil send>"
	}
	return fmt.Sprintf("otpcode.Send{%s %s id=%s seq=%d user=%s to=%s}", s.Kind, s.Channel, s.ID, s.Seq, s.UserID, Mask(s.Channel, s.Destination))
}

// GoString is String (for %#v).
func (s *Send) GoString() string { return s.String() }

// LogValue is what slog records of a send.
func (s *Send) LogValue() slog.Value {
	if s == nil {
		return slog.StringValue("<nil send>")
	}
	return slog.GroupValue(slog.String("kind", s.Kind), slog.String("channel", s.Channel), slog.String("id", s.ID),
		slog.Int("seq", s.Seq), slog.String("user", s.UserID), slog.String("to", Mask(s.Channel, s.Destination)))
}

// Assurance says what NIST SP 800-63B makes of a channel.
type Assurance struct {
	// OutOfBand: the channel is an out-of-band authenticator under NIST SP
	// 800-63B-4 §3.1.3 (§5.1.3 in revision 3). Email is not one: §3.1.3.1 rules
	// out methods that do not prove possession of a specific device, email
	// among them.
	OutOfBand bool
	// Restricted: the channel is a restricted authenticator (§3.1.3.3, the
	// PSTN: SMS): a verifier offers an alternative and tells the user the risks.
	Restricted bool
	// Note cites the rule.
	Note string
}

// ChannelAssurance tells how NIST SP 800-63B rates channel. A policy may
// forbid a channel that is not out of band or is restricted, per group.
func ChannelAssurance(channel string) Assurance {
	switch channel {
	case Email:
		return Assurance{Note: "NIST SP 800-63B §3.1.3.1: email is not an out-of-band authenticator"}
	case SMS:
		return Assurance{OutOfBand: true, Restricted: true, Note: "NIST SP 800-63B §3.1.3.3: SMS over the PSTN is a restricted authenticator"}
	case Telegram, Signal:
		return Assurance{OutOfBand: true, Note: "NIST SP 800-63B §3.1.3.1: an encrypted channel to an app on the user's device"}
	}
	return Assurance{}
}

// LowEntropy reports that a code is a low-entropy secret (6 to 10 digits, 20
// to 33 bits): its wrong answers count toward the user's throttle like TOTP's
// (NIST SP 800-63B §3.2.2), and a new code never resets that count.
func LowEntropy() bool { return true }
