package push

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/google/uuid"

	"github.com/twofactor/twofactor/providers/push/pushsig"
	"github.com/twofactor/twofactor/storage"
)

// LoginContext is what the device shows about the login it is asked to approve.
type LoginContext struct {
	Client    string    `json:"client,omitempty"`
	ClientIP  string    `json:"client_ip,omitempty"`
	UserAgent string    `json:"user_agent,omitempty"`
	Time      time.Time `json:"time"`
	// Choices are the three numbers offered in NumberChoice mode.
	Choices []string `json:"choices,omitempty"`
}

// Begun is a push challenge begun.
type Begun struct {
	ChallengeID string
	// Number is shown on the login screen ("" in NumberNone mode).
	Number    string
	ExpiresAt time.Time
	// Devices are the user's active devices, each to be sent an opaque push.
	Devices []storage.PushDevice
}

// BeginInput is the login a push is begun for.
type BeginInput struct {
	UserID, Client, ClientIP, UserAgent string
}

func validBegin(in BeginInput) error {
	if err := validUser(in.UserID); err != nil {
		return err
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{{"client", in.Client, 128}, {"client_ip", in.ClientIP, 64}, {"user_agent", in.UserAgent, 512}} {
		if len(f.v) > f.max {
			return inputErr(f.name, "at most %d bytes", f.max)
		}
	}
	return nil
}

// Begin starts a push login for a user with at least one active device. The push
// is counted against the user's limits before it exists (one pending push, the
// backoff after a refused or unanswered one, the daily cap), in the same
// transaction as the challenge's row: a refused push leaves no challenge, and of
// concurrent begins on any number of replicas only the allowed number succeed.
func (s *Service) Begin(ctx context.Context, in BeginInput) (*Begun, error) {
	if err := validBegin(in); err != nil {
		return nil, err
	}
	devices, err := s.store.ListPushDevices(ctx, in.UserID, true)
	if err != nil {
		return nil, err
	}
	if len(devices) == 0 {
		return nil, ErrNoDevice
	}
	now := s.now()
	c := &storage.PushChallenge{ID: uuid.NewString(), UserID: in.UserID, State: storage.PushPending,
		NumberMode: s.cfg.NumberMode, ExpiresAt: now.Add(s.cfg.ChallengeTTL), CreatedAt: now}
	lc := LoginContext{Client: in.Client, ClientIP: in.ClientIP, UserAgent: in.UserAgent, Time: now}
	number, err := s.pickNumber(c, &lc)
	if err != nil {
		return nil, err
	}
	raw, _ := json.Marshal(lc)
	if c.ContextKeyID, c.SealedContext, err = s.ring.Seal(raw, c.AAD()); err != nil {
		return nil, err
	}
	err = s.store.InTx(ctx, func(ctx context.Context) error {
		err := s.updateLimit(ctx, in.UserID, func(l *storage.PushLimit) (bool, error) {
			return s.reserve(l, c.ID, now, c.ExpiresAt)
		})
		if err != nil {
			return err
		}
		return s.store.CreatePushChallenge(ctx, c)
	})
	if err != nil {
		return nil, err
	}
	return &Begun{ChallengeID: c.ID, Number: number, ExpiresAt: c.ExpiresAt, Devices: devices}, nil
}

// pickNumber draws the number to match, stores its keyed hash in c and, in
// NumberChoice mode, two decoys beside it in lc.
func (s *Service) pickNumber(c *storage.PushChallenge, lc *LoginContext) (string, error) {
	if s.cfg.NumberMode == NumberNone {
		return "", nil
	}
	number, err := randomDigits(s.cfg.Digits)
	if err != nil {
		return "", err
	}
	c.NumberHash = s.numberHash(c.ID, number)
	if s.cfg.NumberMode == NumberChoice {
		lc.Choices = []string{number}
		for len(lc.Choices) < 3 {
			d, err := randomDigits(s.cfg.Digits)
			if err != nil {
				return "", err
			}
			if !contains(lc.Choices, d) {
				lc.Choices = append(lc.Choices, d)
			}
		}
		at, err := rand.Int(rand.Reader, big.NewInt(3)) // where the right one goes
		if err != nil {
			return "", err
		}
		lc.Choices[0], lc.Choices[at.Int64()] = lc.Choices[at.Int64()], lc.Choices[0]
	}
	return number, nil
}

func (s *Service) numberHash(challengeID, number string) []byte {
	return s.ring.MAC(macNumber, pushsig.Encode([]byte(challengeID), []byte(number)))
}

func randomDigits(n int) (string, error) {
	max := big.NewInt(1)
	for range n {
		max.Mul(max, big.NewInt(10))
	}
	v, err := rand.Int(rand.Reader, max)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%0*d", n, v), nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// Pending is a push waiting for the device's answer.
type Pending struct {
	ChallengeID string
	ExpiresAt   time.Time
}

// ListPending lists the pushes waiting for an answer from the authenticated
// device d's user (at most 10, newest first).
func (s *Service) ListPending(ctx context.Context, d *storage.PushDevice) ([]Pending, error) {
	rows, err := s.store.ListPendingPushHeads(ctx, d.UserID, s.now(), 10)
	if err != nil {
		return nil, err
	}
	out := make([]Pending, len(rows))
	for i, r := range rows {
		out[i] = Pending{ChallengeID: r.ID, ExpiresAt: r.ExpiresAt}
	}
	return out, nil
}

// PushContext is one pending push as the device shows it.
type PushContext struct {
	ChallengeID string
	Login       LoginContext
	NumberMode  string
	Digits      int
	ExpiresAt   time.Time
}

// challengeOf loads challengeID if it belongs to d's user; ErrNotFound otherwise,
// so a device learns nothing of another user's challenges.
func (s *Service) challengeOf(ctx context.Context, userID, challengeID string) (*storage.PushChallenge, error) {
	if challengeID == "" || len(challengeID) > 36 {
		return nil, inputErr("challenge_id", "want 1 to 36 characters")
	}
	c, err := s.store.GetPushChallenge(ctx, challengeID)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && c.UserID != userID) {
		return nil, ErrNotFound
	}
	return c, err
}

// Context returns a pending push's login context for the authenticated device d.
func (s *Service) Context(ctx context.Context, d *storage.PushDevice, challengeID string) (*PushContext, error) {
	c, err := s.challengeOf(ctx, d.UserID, challengeID)
	if err != nil {
		return nil, err
	}
	if c.State != storage.PushPending {
		return nil, ErrAnswered
	}
	if !c.ExpiresAt.After(s.now()) {
		return nil, ErrExpired
	}
	raw, err := s.ring.Open(c.ContextKeyID, c.SealedContext, c.AAD())
	if err != nil {
		return nil, err
	}
	pc := &PushContext{ChallengeID: c.ID, NumberMode: c.NumberMode, ExpiresAt: c.ExpiresAt}
	if err := json.Unmarshal(raw, &pc.Login); err != nil {
		return nil, err
	}
	if c.NumberMode != NumberNone {
		pc.Digits = s.cfg.Digits
	}
	return pc, nil
}
