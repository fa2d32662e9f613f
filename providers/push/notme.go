package push

import (
	"context"
	"encoding/json"

	"github.com/twofactor/twofactor/storage"
)

// NotMeContext returns the login context of the push that device d refused as
// "this was not me" (ErrNotFound for any other push, or one another device
// answered), so that the user's other destinations can be told when, from
// which client and IP the refused sign-in came. It reads an answered push, which
// Context refuses.
func (s *Service) NotMeContext(ctx context.Context, d *storage.PushDevice, challengeID string) (LoginContext, error) {
	c, err := s.challengeOf(ctx, d.UserID, challengeID)
	if err != nil {
		return LoginContext{}, err
	}
	if c.Decision != DecisionNotMe || c.DeviceID != d.ID {
		return LoginContext{}, ErrNotFound
	}
	raw, err := s.ring.Open(c.ContextKeyID, c.SealedContext, c.AAD())
	if err != nil {
		return LoginContext{}, err
	}
	var lc LoginContext
	err = json.Unmarshal(raw, &lc)
	return lc, err
}
