package server

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/twofactor/twofactor/storage"
)

// A TOTP challenge bound to one factor is not stored when it begins: everything
// it holds is sealed into its id, and the factor row it names is its state.
//
//	challenge id = <uuid> "." base64url( version 1 | len(key id) | key id | AES-256-GCM sealed claims )
//
// The uuid is the challenge's id in the audit trail (and in the challenges table,
// should wrong answers give it a row); the associated data of the seal binds the
// claims to it. Any replica holding the key ring opens the id, so nothing lives
// in one replica's memory. Single use comes from the factor: the claims hold the
// factor's last accepted step when the challenge began, and accepting an answer
// moves that step on with a conditional update (storage.AdvanceLastStepFrom), so
// the challenge is won at most once and then reads as used. Wrong answers are
// counted in a challenges row created by the first (FailSealedChallengeAttempt).
//
// What this saves is a row written and then updated for every login: the INSERT
// at BeginChallenge (the table and its four indexes) and the update that
// consumed it.
//
// One behaviour differs from a stored challenge: once the factor accepts a code,
// every other challenge of that factor begun before is used up too (a second
// login of the same user running at the same moment must begin again).

const (
	sealedChallengeVersion = 1
	// maxChallengeIDLen bounds a sealed id: a 255-byte user id and a 64-byte
	// client address seal into well under it.
	maxChallengeIDLen = 1024
)

var (
	errBadChallengeID = errors.New("not a valid challenge id")
	sealedIDEncoding  = base64.RawURLEncoding.Strict() // one spelling per id: no slack in the last character
)

func sealedChallengeAAD(id string) []byte {
	return append([]byte("twofactor challenge v1\x00"), id...)
}

// sealChallenge returns the id that carries c (c.ID must be a uuid).
func (s *Server) sealChallenge(c *storage.Challenge) (string, error) {
	keyID, sealed, err := s.ring.Seal(encodeChallengeClaims(c), sealedChallengeAAD(c.ID))
	if err != nil {
		return "", err
	}
	if len(keyID) > 255 {
		return "", errors.New("key id too long for a challenge id")
	}
	raw := make([]byte, 0, 2+len(keyID)+len(sealed))
	raw = append(raw, sealedChallengeVersion, byte(len(keyID)))
	raw = append(raw, keyID...)
	raw = append(raw, sealed...)
	return c.ID + "." + sealedIDEncoding.EncodeToString(raw), nil
}

// isSealedChallengeID tells a sealed id from a stored challenge's plain uuid.
func isSealedChallengeID(id string) bool { return strings.IndexByte(id, '.') >= 0 }

// openChallenge returns the challenge a sealed id carries, or errBadChallengeID
// when it is malformed, tampered with, or sealed with a key the ring lacks.
func (s *Server) openChallenge(id string) (*storage.Challenge, error) {
	head, body, ok := strings.Cut(id, ".")
	if !ok || len(id) > maxChallengeIDLen {
		return nil, errBadChallengeID
	}
	if u, err := uuid.Parse(head); err != nil || len(head) != 36 || u.String() != head {
		return nil, errBadChallengeID
	}
	raw, err := sealedIDEncoding.DecodeString(body)
	if err != nil || len(raw) < 2 || raw[0] != sealedChallengeVersion || len(raw) < 2+int(raw[1]) {
		return nil, errBadChallengeID
	}
	keyID, sealed := string(raw[2:2+int(raw[1])]), raw[2+int(raw[1]):]
	plain, err := s.ring.Open(keyID, sealed, sealedChallengeAAD(head))
	if err != nil {
		return nil, errBadChallengeID
	}
	c, err := decodeChallengeClaims(plain)
	if err != nil {
		return nil, errBadChallengeID
	}
	c.ID = head
	return c, nil
}

// encodeChallengeClaims writes the fields of c a sealed id carries.
func encodeChallengeClaims(c *storage.Challenge) []byte {
	b := make([]byte, 0, 64+len(c.UserID)+len(c.FactorID)+len(c.Method)+len(c.ClientIP))
	b = binary.AppendVarint(b, c.CreatedAt.UnixNano())
	b = binary.AppendVarint(b, c.ExpiresAt.UnixNano())
	b = binary.AppendUvarint(b, uint64(c.MaxAttempts))
	if c.FromStep == nil {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = binary.AppendVarint(b, *c.FromStep)
	}
	for _, f := range []string{c.UserID, c.FactorID, c.Method, c.ClientIP} {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return b
}

// decodeChallengeClaims reads what encodeChallengeClaims wrote, strictly: no
// field out of range and no byte left over.
func decodeChallengeClaims(b []byte) (*storage.Challenge, error) {
	d := claimsDecoder{b: b}
	created, expires := d.varint(), d.varint()
	maxAttempts := d.uvarint()
	var from *int64
	switch d.byte() {
	case 0:
	case 1:
		step := d.varint()
		from = &step
	default:
		d.err = errBadChallengeID
	}
	userID, factorID, method, clientIP := d.str(), d.str(), d.str(), d.str()
	if d.err != nil || len(d.b) != 0 || maxAttempts > 1<<16 || userID == "" || factorID == "" || method == "" ||
		(from != nil && *from < 0) {
		return nil, errBadChallengeID
	}
	return &storage.Challenge{
		UserID: userID, FactorID: factorID, Method: method, State: storage.ChallengeOpen,
		MaxAttempts: int(maxAttempts), ExpiresAt: time.Unix(0, expires).UTC(), ClientIP: clientIP,
		CreatedAt: time.Unix(0, created).UTC(), Sealed: true, FromStep: from,
	}, nil
}

type claimsDecoder struct {
	b   []byte
	err error
}

func (d *claimsDecoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errBadChallengeID
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *claimsDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errBadChallengeID
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *claimsDecoder) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.err = errBadChallengeID
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *claimsDecoder) str() string {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) || n > maxChallengeIDLen {
		d.err = errBadChallengeID
		return ""
	}
	v := string(d.b[:n])
	d.b = d.b[n:]
	return v
}
