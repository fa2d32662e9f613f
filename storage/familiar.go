package storage

import (
	"context"
	"time"
)

// FamiliarNetwork is a client network a user has passed a second factor from:
// the throttle counts the user's wrong answers from such networks apart from
// those from anywhere else, so that strangers guessing from elsewhere cannot lock
// the user out of their usual networks (smart lockout; NIST SP 800-63B §5.2.2).
// Network is the throttle's network key (an IPv4 address, or an IPv6 prefix).
// Each user keeps at most a bounded number, the most recently seen, each until
// ExpiresAt.
type FamiliarNetwork struct {
	UserID    string    `gorm:"primaryKey;size:255"`
	Network   string    `gorm:"primaryKey;size:64"`
	FirstSeen time.Time `gorm:"not null"`
	LastSeen  time.Time `gorm:"not null"`
	ExpiresAt time.Time `gorm:"not null;index"`
}

// TableName keeps the table name plain.
func (FamiliarNetwork) TableName() string { return "familiar_networks" }

// RememberFamiliarNetwork records that user passed a second factor from network
// at now, familiar until now+ttl. A network seen within the last refresh is not
// written again (the common login costs no row change), and a new network past
// the user's max evicts the least recently seen ones.
func (s *Store) RememberFamiliarNetwork(ctx context.Context, user, network string, now time.Time, ttl, refresh time.Duration, max int) error {
	now = now.UTC().Truncate(time.Microsecond) // PostgreSQL keeps microseconds: compared below
	var out []struct{ FirstSeen time.Time }
	err := s.DB(ctx).Raw(`INSERT INTO familiar_networks (user_id, network, first_seen, last_seen, expires_at)
 VALUES (?, ?, ?, ?, ?)
 ON CONFLICT (user_id, network) DO UPDATE SET last_seen = excluded.last_seen, expires_at = excluded.expires_at,
  first_seen = CASE WHEN familiar_networks.expires_at <= excluded.last_seen THEN excluded.first_seen ELSE familiar_networks.first_seen END
 WHERE familiar_networks.last_seen < ? OR familiar_networks.expires_at <= excluded.last_seen
 RETURNING first_seen`, user, network, now, now, now.Add(ttl), now.Add(-refresh)).Scan(&out).Error
	if err != nil || len(out) == 0 || !out[0].FirstSeen.Equal(now) {
		return err // unchanged, refreshed, or failed
	}
	// A new network: keep the user's max most recently seen.
	return s.DB(ctx).Exec(`DELETE FROM familiar_networks WHERE user_id = ? AND network NOT IN
 (SELECT network FROM familiar_networks WHERE user_id = ? ORDER BY last_seen DESC, network LIMIT ?)`, user, user, max).Error
}

// FamiliarNetworks lists a user's unexpired familiar networks, most recently
// seen first.
func (s *Store) FamiliarNetworks(ctx context.Context, user string, now time.Time) ([]FamiliarNetwork, error) {
	var out []FamiliarNetwork
	err := s.DB(ctx).Where("user_id = ? AND expires_at > ?", user, now.UTC()).Order("last_seen DESC, network").Find(&out).Error
	return out, err
}

// ForgetFamiliarNetworks removes a user's familiar networks (an admin who
// suspects one of them, or a deleted user). It reports how many there were.
func (s *Store) ForgetFamiliarNetworks(ctx context.Context, user string) (int64, error) {
	res := s.DB(ctx).Where("user_id = ?", user).Delete(&FamiliarNetwork{})
	return res.RowsAffected, res.Error
}

// DeleteFamiliarNetworksBefore removes the familiar networks expired by t.
func (s *Store) DeleteFamiliarNetworksBefore(ctx context.Context, t time.Time) (int64, error) {
	res := s.DB(ctx).Where("expires_at <= ?", t.UTC()).Delete(&FamiliarNetwork{})
	return res.RowsAffected, res.Error
}
