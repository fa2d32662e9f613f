package otpcode

import (
	"context"
	"encoding/binary"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/twofactor/twofactor/storage"
)

// NoticeTTL is how long a notice is worth delivering: unlike a code, it is
// still of use hours later (notifyd drops it after this).
const NoticeTTL = 24 * time.Hour

// NotMe describes a push sign-in refused as "this was not me", for the notices
// to the user's other destinations.
type NotMe struct {
	UserID string
	// Challenge is the refused push's challenge id: with a factor's id it
	// names that factor's notice, so that telling the same refusal again
	// republishes the same notice (dropped as a duplicate), not a second one.
	Challenge string
	Device    string    // the device's name
	Time      time.Time // when the sign-in attempt began
	Client    string    // the client as the backend described it
	IP        string    // the client's IP address
}

// MaxNotices bounds the notices of one NotMeNotices (a user's active code
// factors; enrollment caps them far below).
const MaxNotices = 32

// NotMeNotices returns one notice per active code factor of n.UserID (email,
// SMS, Telegram, Signal): a sign-in was refused as not the user on n.Device;
// if it was not them, they should change their password (the push's other
// devices learn nothing a refusal did not show them). Each is rendered in its
// factor's locale and expires after NoticeTTL. Pending factors get none: their
// destination is not proved. A factor whose destination does not open is
// skipped and reported in the error beside the notices of the others.
func (p *Provider) NotMeNotices(ctx context.Context, n NotMe) ([]*Send, error) {
	if err := checkIDs(n.UserID, n.Challenge); err != nil {
		return nil, err
	}
	if n.Challenge == "" {
		return nil, errors.New("challenge: the refused push's id is required (it names the notices)")
	}
	d := MessageData{Service: p.cfg.ServiceName, Device: cleanClient(n.Device), Client: cleanClient(n.Client),
		IP: cleanClient(n.IP), When: n.Time.UTC().Format("2006-01-02 15:04 UTC")}
	var (
		sends []*Send
		errs  []error
	)
	for _, ch := range Channels {
		fs, err := p.store.ListFactors(ctx, n.UserID, ch, storage.FactorActive)
		if err != nil {
			return nil, err
		}
		for i := range fs {
			if len(sends) == MaxNotices {
				return sends, errors.Join(errs...)
			}
			data, _ := ParseFactorData(fs[i].Data)
			msg, err := p.tpl.RenderNotMe(data.Locale, ch, d)
			if err == nil {
				var s *Send
				if s, err = p.notice(&fs[i], noticeID(noticeNotMe, n.Challenge, fs[i].ID), data.Locale, msg); err == nil {
					sends = append(sends, s)
				}
			}
			errs = append(errs, err)
		}
	}
	return sends, errors.Join(errs...)
}

// notice is a notice of msg to f's destination under id, expiring after
// NoticeTTL.
func (p *Provider) notice(f *storage.Factor, id, locale string, msg Message) (*Send, error) {
	dest, err := p.openDestination(f)
	if err != nil {
		return nil, err
	}
	return &Send{Kind: KindNotice, Channel: f.Method, ID: id, Seq: 1, UserID: f.UserID,
		FactorID: f.ID, Destination: dest.Address, Subject: msg.Subject, Text: msg.Text, Locale: locale,
		ExpiresAt: p.now().UTC().Add(NoticeTTL)}, nil
}

// What a notice is about, the first part of its id's name.
const (
	noticeChanged = "changed" // a replaced destination: (old factor id, new factor id)
	noticeNotMe   = "not-me"  // a push refused as not me: (push challenge id, factor id)
)

// noticeNamespace is the UUIDv5 namespace of notice ids.
var noticeNamespace = uuid.MustParse("cc9a0e2b-9bf6-4667-8f2b-b874a1dcab88")

// noticeID names a notice by what it is about and the ids of what it concerns
// (never a secret: factor and challenge ids), as a UUIDv5: the same notice
// made again (a change retried after its transaction failed, a refusal told
// twice) gets the same id, so JetStream's duplicate window drops its second
// publish and notifyd's record of delivered ids its second delivery; another
// notice gets another id. The parts are length-prefixed, so no two lists of
// parts share a name.
func noticeID(about string, ids ...string) string {
	name := make([]byte, 0, 128)
	for _, part := range append([]string{about}, ids...) {
		name = binary.AppendUvarint(name, uint64(len(part)))
		name = append(name, part...)
	}
	return uuid.NewSHA1(noticeNamespace, name).String()
}
