package policy_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/twofactor/twofactor/internal/testfix"
	"github.com/twofactor/twofactor/providers/policy"
	"github.com/twofactor/twofactor/storage/storagetest"
)

func TestRememberDevice(t *testing.T) {
	ctx := context.Background()
	url := storagetest.URL(t)
	s := storagetest.OpenURL(t, url)
	directory(t, s)
	c := testfix.NewClock(t0)
	p := newProvider(t, s, c, policy.Options{})
	other := newProvider(t, storagetest.OpenURL(t, url), c, policy.Options{})
	check := func(name string, want map[string]bool, wantAge time.Duration) {
		t.Helper()
		for user, w := range want {
			got, age, err := other.RememberDevice(ctx, user)
			if err != nil || got != w || age != wantAge {
				t.Errorf("%s: RememberDevice(%s) = %v, %v, %v; want %v, %v", name, user, got, age, err, w, wantAge)
			}
		}
	}
	check("default off", map[string]bool{"alice": false, "bob": false, "nobody": false}, policy.DefaultRememberDeviceMaxAge)
	in := policy.Policy{RememberDeviceGroups: []string{"eng", "sales", "eng"}, RememberDeviceDeniedGroups: []string{"contractors"}, RememberDeviceMaxAge: 7 * 24 * time.Hour}
	set, err := p.Set(ctx, "root", in)
	if err != nil || !reflect.DeepEqual(set.RememberDeviceGroups, []string{"eng", "sales"}) {
		t.Fatalf("Set = %+v, %v", set, err)
	}
	check("groups", map[string]bool{"alice": true, "bob": true, "frank": false, "olga": false, "nobody": false}, 7*24*time.Hour)
	if _, err := p.Set(ctx, "root", policy.Policy{RememberDevice: true, RememberDeviceDeniedGroups: []string{"sales"}}); err != nil {
		t.Fatal(err)
	}
	check("everyone", map[string]bool{"alice": true, "frank": true, "nobody": true, "bob": false}, policy.DefaultRememberDeviceMaxAge)
	for _, age := range []time.Duration{time.Minute, policy.MaxRememberDeviceMaxAge + time.Hour, -time.Hour} {
		if _, err := p.Set(ctx, "root", policy.Policy{RememberDevice: true, RememberDeviceMaxAge: age}); !errors.Is(err, policy.ErrInvalid) {
			t.Errorf("max age %v: err = %v", age, err)
		}
	}
}
