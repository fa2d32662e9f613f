package storage

import (
	"context"
	"slices"
)

// UserGroup says a user belongs to a group, as the backend syncs it.
type UserGroup struct {
	UserID    string `gorm:"primaryKey;size:255"`
	GroupName string `gorm:"primaryKey;size:255;index"`
}

// GroupAdmin says a user administers a group: they may act on the group's members.
type GroupAdmin struct {
	GroupName string `gorm:"primaryKey;size:255"`
	AdminID   string `gorm:"primaryKey;size:255;index"`
}

// SetUserGroups replaces the groups a user belongs to, in one transaction.
// Duplicates and empty names are dropped.
func (s *Store) SetUserGroups(ctx context.Context, userID string, groups []string) error {
	groups = uniqueNonEmpty(groups)
	return s.InTx(ctx, func(ctx context.Context) error {
		if err := s.DB(ctx).Where("user_id = ?", userID).Delete(&UserGroup{}).Error; err != nil {
			return err
		}
		if len(groups) == 0 {
			return nil
		}
		rows := make([]UserGroup, len(groups))
		for i, g := range groups {
			rows[i] = UserGroup{UserID: userID, GroupName: g}
		}
		return s.DB(ctx).Create(&rows).Error
	})
}

// ListUserGroups lists the groups a user belongs to, sorted.
func (s *Store) ListUserGroups(ctx context.Context, userID string) ([]string, error) {
	var out []string
	err := s.DB(ctx).Model(&UserGroup{}).Where("user_id = ?", userID).Order("group_name").Pluck("group_name", &out).Error
	return out, err
}

// SetGroupAdmins replaces the admins of a group, in one transaction. Duplicates and
// empty ids are dropped.
func (s *Store) SetGroupAdmins(ctx context.Context, group string, adminIDs []string) error {
	adminIDs = uniqueNonEmpty(adminIDs)
	return s.InTx(ctx, func(ctx context.Context) error {
		if err := s.DB(ctx).Where("group_name = ?", group).Delete(&GroupAdmin{}).Error; err != nil {
			return err
		}
		if len(adminIDs) == 0 {
			return nil
		}
		rows := make([]GroupAdmin, len(adminIDs))
		for i, a := range adminIDs {
			rows[i] = GroupAdmin{GroupName: group, AdminID: a}
		}
		return s.DB(ctx).Create(&rows).Error
	})
}

// ListGroupAdmins lists the admins of a group, sorted.
func (s *Store) ListGroupAdmins(ctx context.Context, group string) ([]string, error) {
	var out []string
	err := s.DB(ctx).Model(&GroupAdmin{}).Where("group_name = ?", group).Order("admin_id").Pluck("admin_id", &out).Error
	return out, err
}

// ListAdministeredGroups lists the groups adminID administers, sorted.
func (s *Store) ListAdministeredGroups(ctx context.Context, adminID string) ([]string, error) {
	var out []string
	err := s.DB(ctx).Model(&GroupAdmin{}).Where("admin_id = ?", adminID).Order("group_name").Pluck("group_name", &out).Error
	return out, err
}

// IsGroupAdminOf tells whether actorID administers any group userID belongs to.
func (s *Store) IsGroupAdminOf(ctx context.Context, actorID, userID string) (bool, error) {
	var n int64
	err := s.DB(ctx).Model(&GroupAdmin{}).
		Joins("JOIN user_groups ON user_groups.group_name = group_admins.group_name").
		Where("group_admins.admin_id = ? AND user_groups.user_id = ?", actorID, userID).
		Limit(1).Count(&n).Error
	return n > 0, err
}

func uniqueNonEmpty(in []string) []string {
	out := make([]string, 0, len(in))
	for _, v := range in {
		if v != "" {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
