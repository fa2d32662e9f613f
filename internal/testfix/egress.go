package testfix

import (
	"net/netip"

	"github.com/twofactor/twofactor/notify/egress"
)

// AnyAddress is an egress allowance covering every address: authd's side of a
// push test enrolls the test's push services on 127.0.0.1 with it (and, for
// notifyd's refusal tests, an endpoint notifyd refuses, as one enrolled before
// authd checked addresses or by an authd configured unlike notifyd).
func AnyAddress() egress.Allow {
	return egress.Allow{Prefixes: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}}
}
