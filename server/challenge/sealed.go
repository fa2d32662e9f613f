package challenge

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/twofactor/twofactor/providers/totp"
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
// moves that step on with a conditional update (storage.AdvanceLastStepFrom, run by the TOTP factor), so
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
	// MaxIDLen bounds a sealed id: a 255-byte user id and a 64-byte
	// client address seal into well under it.
	MaxIDLen = 1024
)

var (
	errBadChallengeID = errors.New("not a valid challenge id")
	sealedIDEncoding  = base64.RawURLEncoding.Strict() // one spelling per id: no slack in the last character
)

func sealedChallengeAAD(id string) []byte {
	return append([]byte("twofactor challenge v1\x00"), id...)
}

// sealedKeeper keeps challenges in their ids.
type sealedKeeper struct {
	store Store
	ring  Sealer
}

// create returns the id that carries c (c.ID must be a uuid); nothing is written.
func (k sealedKeeper) create(_ context.Context, c *Challenge) (string, error) {
	keyID, sealed, err := k.ring.Seal(encodeChallengeClaims(c), sealedChallengeAAD(c.ID))
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

// load opens a sealed id and completes it from the store (the factor, and the
// row wrong answers gave it). An id that does not open is ErrNotFound.
func (k sealedKeeper) load(_ context.Context, id string) (*Challenge, error) {
	c, err := k.open(id)
	if err != nil {
		return nil, ErrNotFound
	}
	return c, nil // its stored state: Verify reads it (reload), inside the hold
}

// usedUp: once the bound factor's step has moved on, the challenge is won.
func (sealedKeeper) usedUp(c *Challenge) bool {
	return c.Factor != nil && !totp.SameStep(c.Factor.LastStep, c.FromStep)
}

// answer: one conditional update both spends the code and uses the challenge up
// (the factor's AdvanceLastStepFrom); a transaction around it and accepted makes
// the acceptance and its record one commit.
func (k sealedKeeper) answer(ctx context.Context, _ *Challenge, _ time.Time, check Check, accepted func(context.Context) error) error {
	return k.store.InTx(ctx, func(ctx context.Context) error {
		ok, err := check(ctx)
		if err != nil || !ok {
			return err
		}
		return accepted(ctx)
	})
}

func (k sealedKeeper) reload(ctx context.Context, c *Challenge) error {
	f, err := k.store.LoadSealedChallenge(ctx, &c.Challenge)
	if err != nil {
		return err
	}
	c.Factor = f
	return nil
}

func (k sealedKeeper) fail(ctx context.Context, c *Challenge, now time.Time) (int, bool, error) {
	return k.store.FailSealedChallengeAttempt(ctx, &c.Challenge, now)
}

// open returns the challenge a sealed id carries, or errBadChallengeID
// when it is malformed, tampered with, or sealed with a key the ring lacks.
func (k sealedKeeper) open(id string) (*Challenge, error) {
	head, body, ok := strings.Cut(id, ".")
	if !ok || len(id) > MaxIDLen {
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
	plain, err := k.ring.Open(keyID, sealed, sealedChallengeAAD(head))
	if err != nil {
		return nil, errBadChallengeID
	}
	c, err := decodeChallengeClaims(plain)
	if err != nil {
		return nil, errBadChallengeID
	}
	c.ID = head
	c.keeper = k
	return c, nil
}

// encodeChallengeClaims writes the fields of c a sealed id carries.
func encodeChallengeClaims(c *Challenge) []byte {
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
func decodeChallengeClaims(b []byte) (*Challenge, error) {
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
	return &Challenge{Challenge: storage.Challenge{
		UserID: userID, FactorID: factorID, Method: method, State: storage.ChallengeOpen,
		MaxAttempts: int(maxAttempts), ExpiresAt: time.Unix(0, expires).UTC(), ClientIP: clientIP,
		CreatedAt: time.Unix(0, created).UTC(),
	}, FromStep: from, keeper: sealedKeeper{}}, nil
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
	if d.err != nil || n > uint64(len(d.b)) || n > MaxIDLen {
		d.err = errBadChallengeID
		return ""
	}
	v := string(d.b[:n])
	d.b = d.b[n:]
	return v
}
