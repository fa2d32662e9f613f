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
	// Prepared statements (hot.go): a first login from a network runs both.
	rows, err := s.hotQuery(ctx, rememberFamiliarSQL, user, network, now, now, now.Add(ttl), now.Add(-refresh))
	if err != nil {
		return err
	}
	inserted := false
	for rows.Next() {
		var first time.Time
		if err := rows.Scan(&first); err != nil {
			rows.Close()
			return err
		}
		inserted = first.Equal(now)
	}
	if err := rows.Close(); err != nil {
		return err
	}
	if !inserted {
		return nil // unchanged or refreshed
	}
	// A new network: keep the user's max most recently seen.
	_, err = s.hotExec(ctx, pruneFamiliarSQL, user, max, user, user, max)
	return err
}

const rememberFamiliarSQL = `INSERT INTO familiar_networks (user_id, network, first_seen, last_seen, expires_at)
 VALUES (?, ?, ?, ?, ?)
 ON CONFLICT (user_id, network) DO UPDATE SET last_seen = excluded.last_seen, expires_at = excluded.expires_at,
  first_seen = CASE WHEN familiar_networks.expires_at <= excluded.last_seen THEN excluded.first_seen ELSE familiar_networks.first_seen END
 WHERE familiar_networks.last_seen < ? OR familiar_networks.expires_at <= excluded.last_seen
 RETURNING first_seen`

// pruneFamiliarSQL deletes a user's networks beyond the max most recently seen.
// Its first term reads no row of the outer table, so both databases test it once,
// before the scan (SQLite codes it ahead of the loop, PostgreSQL as a one-time
// filter): a user with no more than max networks, the common case, costs a
// count on the primary key's prefix instead of a sort of the user's networks.
// With at most max rows the NOT IN list holds all of them, so the term changes
// nothing but the cost.
const pruneFamiliarSQL = `DELETE FROM familiar_networks WHERE (SELECT count(*) FROM familiar_networks WHERE user_id = ?) > ?
 AND user_id = ? AND network NOT IN
 (SELECT network FROM familiar_networks WHERE user_id = ? ORDER BY last_seen DESC, network LIMIT ?)`

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
