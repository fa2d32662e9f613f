package storage

import "context"

// SealedReadAhead tells whether ctx's attempt has read c's sealed state ahead
// (WithSealedRead) and LoadSealedChallenge has not taken it yet.
func SealedReadAhead(ctx context.Context, c *Challenge) bool {
	r, ok := ctx.Value(sealedReadKey{}).(*sealedRead)
	return ok && r.done && r.id == c.ID
}
