// Package egress is the HTTP client notifyd delivers push wake-ups with: the URL is
// a device's endpoint, chosen by whoever enrolled the device, so the client refuses
// to connect to any address that is not public unicast (server-side request forgery,
// OWASP ASVS 4.0 V12.6.1, CWE-918) unless the operator allows it.
//
//	c := egress.NewClient(egress.Config{Allow: allow}) // allow from ParseAllow("ntfy,10.0.0.0/8")
//
// # Security properties
//
//   - The check is on the address dialled, after resolution (net.Dialer.Control on
//     each IP literal the dial goes to), so a public name that resolves to an
//     internal address, or a name re-bound between a check and the dial, is refused.
//   - Refused: loopback, private (RFC 1918, fc00::/7), link-local (169.254/16,
//     fe80::/10: cloud metadata), unspecified, multicast, broadcast, CGNAT
//     (100.64/10), 0.0.0.0/8, documentation and benchmark ranges, IPv4-mapped and
//     NAT64 forms of them, any IPv6 outside 2000::/3: the IANA special-purpose
//     registries as code.dny.dev/ssrf keeps them.
//   - Allowed although internal: the networks (CIDRs or single IPs) of Allow.Prefixes,
//     and the names (or ".domain" suffixes) of Allow.Hosts, whose addresses are then
//     not checked: the operator vouches for its own names' DNS.
//   - CheckHost applies the same policy to a URL's host before any dial (authd, when
//     a device registers its endpoint): IP literals and localhost only, names are
//     not resolved then (the dial checks what they resolve to).
//   - Redirects are not followed (a push service answers, it does not redirect); the
//     3xx is the answer. Proxies from the environment (HTTPS_PROXY, …) are not used:
//     through a proxy the dial would go to the proxy, and the proxy would reach the
//     internal address.
//   - A refusal is a *RefusedError (errors.Is ErrRefused) naming the host and the
//     refused address, never the URL's path or query (an ntfy topic is a capability).
package egress

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"code.dny.dev/ssrf"
)

// ErrRefused is what every refusal of a destination address wraps.
var ErrRefused = errors.New("egress: destination address refused")

// RefusedError is a dial refused because no address of Host may be reached.
type RefusedError struct {
	Host string     // the URL's host (name or IP literal), no port, no path
	Addr netip.Addr // the first refused address
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("egress: host %q: %s is not a public address (allow it with push-allow-internal)", e.Host, e.Addr)
}

// Unwrap makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Unwrap() error { return ErrRefused }

// Allow is what may be reached although not public.
type Allow struct {
	Prefixes []netip.Prefix // networks, e.g. 10.0.0.0/8 or 192.0.2.10/32
	Hosts    []string       // names or ".domain" suffixes, lower case
}

// ParseAllow reads a comma-separated list of CIDRs ("10.0.0.0/8"), IP addresses
// ("10.0.0.5", "fd00::1") and host names or ".domain" suffixes ("ntfy", ".internal").
func ParseAllow(list string) (Allow, error) {
	var a Allow
	for _, e := range strings.Split(list, ",") {
		e = strings.ToLower(strings.TrimSpace(e))
		switch {
		case e == "":
			continue
		case strings.Contains(e, "/"):
			p, err := netip.ParsePrefix(e)
			if err != nil {
				return Allow{}, fmt.Errorf("%q: not a CIDR network", e)
			}
			if p.Addr().Is4In6() && p.Bits() >= 96 { // ::ffff:10.0.0.0/104 is 10.0.0.0/8
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			a.Prefixes = append(a.Prefixes, p.Masked())
		default:
			if ip, err := netip.ParseAddr(e); err == nil {
				ip = ip.Unmap()
				a.Prefixes = append(a.Prefixes, netip.PrefixFrom(ip, ip.BitLen()))
				continue
			}
			if !validHost(strings.TrimPrefix(e, ".")) {
				return Allow{}, fmt.Errorf("%q: want a CIDR, an IP address, a host name or a .domain suffix", e)
			}
			a.Hosts = append(a.Hosts, e)
		}
	}
	return a, nil
}

// Join is a with b's networks and hosts added.
func (a Allow) Join(b Allow) Allow {
	return Allow{Prefixes: append(append([]netip.Prefix(nil), a.Prefixes...), b.Prefixes...),
		Hosts: append(append([]string(nil), a.Hosts...), b.Hosts...)}
}

func validHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_') {
			return false
		}
	}
	return true
}

// hostAllowed tells whether host is one of a.Hosts or under one of its suffixes.
func (a Allow) hostAllowed(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	for _, h := range a.Hosts {
		if host == h || (strings.HasPrefix(h, ".") && strings.HasSuffix(host, h)) {
			return true
		}
	}
	return false
}

// Config is the client's settings.
type Config struct {
	Allow Allow
	// Timeout bounds a whole request (default 10 s).
	Timeout time.Duration
	// TLS is the TLS configuration (nil: the system's roots; tests: a push
	// service's certificate).
	TLS *tls.Config
	// Lookup resolves a host name (default net.DefaultResolver.LookupNetIP "ip").
	Lookup func(ctx context.Context, host string) ([]netip.Addr, error)
}

// NewClient returns the guarded client.
func NewClient(cfg Config) *http.Client {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	d := NewDialer(cfg)
	t := &http.Transport{
		Proxy:                 nil, // never from the environment: see the package doc
		DialContext:           d.DialContext,
		TLSClientConfig:       cfg.TLS,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{Transport: t, Timeout: cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// Dialer dials only the addresses its Config allows.
type Dialer struct {
	allow  Allow
	guard  *ssrf.Guardian
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)
}

// NewDialer returns the dialer NewClient uses.
func NewDialer(cfg Config) *Dialer {
	var v4, v6 []netip.Prefix
	for _, p := range cfg.Allow.Prefixes {
		if p.Addr().Is4() {
			v4 = append(v4, p)
		} else {
			v6 = append(v6, p)
		}
	}
	lookup := cfg.Lookup
	if lookup == nil {
		lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	return &Dialer{allow: cfg.Allow, lookup: lookup, guard: ssrf.New(ssrf.WithAnyPort(),
		ssrf.WithAllowedV4Prefixes(v4...), ssrf.WithAllowedV6Prefixes(v6...))}
}

// Check returns a *RefusedError when ip may not be reached as host.
func (d *Dialer) Check(host string, ip netip.Addr) error {
	if d.allow.hostAllowed(host) {
		return nil
	}
	// A zone (fe80::1%eth0) is dropped: netip.Prefix.Contains matches no zoned
	// address, so an allowed network would not cover it.
	if d.guard.SafeAddr(ip.WithZone("").Unmap()) != nil {
		return &RefusedError{Host: host, Addr: ip}
	}
	return nil
}

// loopback is what "localhost" resolves to (RFC 6761 §6.3).
var loopback = []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1}), netip.IPv6Loopback()}

// CheckHost is Check's policy applied to a URL's host (u.Hostname(): no brackets,
// no port) before any resolution, for a caller that validates an endpoint when it
// is registered rather than when it is dialled (authd's push enrollment): a
// *RefusedError when the dial would certainly be refused, nil otherwise.
//
//   - An IP literal (IPv4, IPv6, IPv4-mapped IPv6, with or without a zone) is
//     checked as Check checks the address dialled.
//   - "localhost" and the names under ".localhost", in any case and with or without
//     the trailing dot, always resolve to loopback (RFC 6761 §6.3): they are checked
//     as 127.0.0.1 and ::1 (allowed when Allow.Hosts names them or Allow.Prefixes
//     covers either address).
//   - Any other name is NOT resolved: its DNS may change between now and a dial, and
//     the dial checks the addresses it resolves to then (DialContext). nil.
func (d *Dialer) CheckHost(host string) error {
	if ip, err := netip.ParseAddr(host); err == nil {
		return d.Check(host, ip)
	}
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	if name != "localhost" && !strings.HasSuffix(name, ".localhost") {
		return nil
	}
	var refused error
	for _, ip := range loopback {
		if err := d.Check(host, ip); err == nil {
			return nil
		} else if refused == nil {
			refused = err
		}
	}
	return refused
}

// DialContext resolves addr's host, keeps the addresses Check allows and dials them
// in turn; each dial checks again the address it connects to (Control).
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else if ips, err = d.lookup(ctx, host); err != nil {
		return nil, err
	}
	var refused, dialErr error
	for _, ip := range ips {
		if err := d.Check(host, ip); err != nil {
			if refused == nil {
				refused = err
			}
			continue
		}
		nd := net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second,
			Control: func(_, address string, _ syscall.RawConn) error {
				ap, err := netip.ParseAddrPort(address)
				if err != nil {
					return &RefusedError{Host: host}
				}
				return d.Check(host, ap.Addr())
			}}
		c, err := nd.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
		if err == nil {
			return c, nil
		}
		dialErr = err
		if ctx.Err() != nil {
			break
		}
	}
	switch {
	case dialErr != nil:
		return nil, dialErr
	case refused != nil:
		return nil, refused
	}
	return nil, fmt.Errorf("egress: %q has no address", host)
}
