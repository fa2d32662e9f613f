package egress_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/twofactor/twofactor/notify/egress"
)

// counting is an httptest server that counts the requests it saw.
func counting(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if h != nil {
			h(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// names resolves the given names (the resolver seam) and nothing else.
func names(m map[string]string) func(context.Context, string) ([]netip.Addr, error) {
	return func(_ context.Context, host string) ([]netip.Addr, error) {
		if a, ok := m[host]; ok {
			return []netip.Addr{netip.MustParseAddr(a)}, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
}

func post(c *http.Client, u string) (*http.Response, error) {
	resp, err := c.Post(u, "application/json", strings.NewReader(`{}`))
	if err == nil {
		resp.Body.Close()
	}
	return resp, err
}

func port(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	u, _ := url.Parse(srv.URL)
	return u.Port()
}

// A device endpoint on 127.0.0.1 is refused at dial time: the server sees no
// request, and the error names the host and the address, not the path.
func TestLoopbackRefusedAtDial(t *testing.T) {
	srv, n := counting(t, nil)
	_, err := post(egress.NewClient(egress.Config{}), srv.URL+"/topic-secret?up=1")
	var re *egress.RefusedError
	if !errors.Is(err, egress.ErrRefused) || !errors.As(err, &re) || re.Host != "127.0.0.1" || re.Addr != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("post to %s: %v, want a refusal of 127.0.0.1", srv.URL, err)
	}
	if strings.Contains(re.Error(), "topic-secret") {
		t.Fatalf("refusal %q names the path", re)
	}
	if n.Load() != 0 {
		t.Fatalf("the refused server saw %d requests", n.Load())
	}
}

// A name that resolves to loopback is refused: the check is on the address dialled,
// not on the name (DNS rebinding). Both the system resolver's "localhost" and a
// public-looking name the resolver seam maps to 127.0.0.1.
func TestNameResolvingToLoopbackRefused(t *testing.T) {
	srv, n := counting(t, nil)
	p := port(t, srv)
	if _, err := post(egress.NewClient(egress.Config{}), "http://localhost:"+p+"/t"); !errors.Is(err, egress.ErrRefused) {
		t.Fatalf("localhost: %v, want refused", err)
	}
	c := egress.NewClient(egress.Config{Lookup: names(map[string]string{"push.example.com": "127.0.0.1"})})
	if _, err := post(c, "http://push.example.com:"+p+"/t"); !errors.Is(err, egress.ErrRefused) {
		t.Fatalf("push.example.com → 127.0.0.1: %v, want refused", err)
	}
	if n.Load() != 0 {
		t.Fatalf("the refused server saw %d requests", n.Load())
	}
}

// With the operator's allowance (a network, or a name) the same server is reached.
func TestAllowanceDelivers(t *testing.T) {
	srv, n := counting(t, nil)
	p := port(t, srv)
	for _, tc := range []struct{ allow, url string }{
		{"127.0.0.0/8", srv.URL},
		{"127.0.0.1", srv.URL},
		{"localhost", "http://localhost:" + p},
		{".example.test", "http://ntfy.example.test:" + p},
	} {
		a, err := egress.ParseAllow("10.0.0.0/8, " + tc.allow)
		if err != nil {
			t.Fatal(err)
		}
		c := egress.NewClient(egress.Config{Allow: a, Lookup: names(map[string]string{"localhost": "127.0.0.1", "ntfy.example.test": "127.0.0.1"})})
		before := n.Load()
		if resp, err := post(c, tc.url+"/t"); err != nil || resp.StatusCode != http.StatusOK || n.Load() != before+1 {
			t.Fatalf("allow %q, post %s: %v", tc.allow, tc.url, err)
		}
	}
	// The allowance of one network is not one of another.
	a, _ := egress.ParseAllow("10.0.0.0/8,ntfy")
	if _, err := post(egress.NewClient(egress.Config{Allow: a}), srv.URL); !errors.Is(err, egress.ErrRefused) {
		t.Fatalf("allow 10/8 and ntfy, post to 127.0.0.1: %v, want refused", err)
	}
}

// A redirect from an allowed server to a refused address is not followed: the 3xx
// is the answer and the refused server sees nothing.
func TestRedirectNotFollowed(t *testing.T) {
	internal, n := counting(t, nil)
	target := "http://metadata.example.test:" + port(t, internal) + "/latest/meta-data/"
	allowed, _ := counting(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target, http.StatusTemporaryRedirect)
	})
	a, _ := egress.ParseAllow("push.example.test")
	c := egress.NewClient(egress.Config{Allow: a,
		Lookup: names(map[string]string{"push.example.test": "127.0.0.1", "metadata.example.test": "127.0.0.1"})})
	resp, err := post(c, "http://push.example.test:"+port(t, allowed)+"/t")
	if err != nil || resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("post: %v, %v: want the 307 itself", resp, err)
	}
	if n.Load() != 0 {
		t.Fatalf("the redirect target saw %d requests", n.Load())
	}
	if _, err := post(c, target); !errors.Is(err, egress.ErrRefused) {
		t.Fatalf("the redirect target directly: %v, want refused", err)
	}
}

// Proxies from the environment are not used (through one the proxy would reach the
// internal address).
func TestNoProxyFromEnvironment(t *testing.T) {
	tr, ok := egress.NewClient(egress.Config{}).Transport.(*http.Transport)
	if !ok || tr.Proxy != nil {
		t.Fatalf("transport %T with a proxy function", egress.NewClient(egress.Config{}).Transport)
	}
}

// Of a name with a refused and an allowed address only the allowed one is dialled:
// the name answers 127.0.0.1 (refused) then 127.0.0.2 (allowed), both listening on
// the same port.
func TestMixedAnswerDialsOnlyAllowed(t *testing.T) {
	serve := func(addr string) (*httptest.Server, *atomic.Int32) {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Skipf("listen %s: %v", addr, err)
		}
		var n atomic.Int32
		srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { n.Add(1) })}}
		srv.Start()
		t.Cleanup(srv.Close)
		return srv, &n
	}
	allowed, nAllowed := serve("127.0.0.2:0")
	p := port(t, allowed)
	_, nRefused := serve("127.0.0.1:" + p)
	a, _ := egress.ParseAllow("127.0.0.2")
	c := egress.NewClient(egress.Config{Allow: a, Lookup: func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")}, nil
	}})
	if resp, err := post(c, "http://both.example.test:"+p+"/t"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("post: %v", err)
	}
	if nAllowed.Load() != 1 || nRefused.Load() != 0 {
		t.Fatalf("allowed address saw %d, refused address %d requests", nAllowed.Load(), nRefused.Load())
	}
}

func TestCheck(t *testing.T) {
	d := egress.NewDialer(egress.Config{})
	refused := []string{
		"127.0.0.1", "127.1.2.3", "::1", "0.0.0.0", "::", "0.1.2.3",
		"10.0.0.5", "172.16.0.1", "172.31.255.255", "192.168.1.1", "100.64.0.1", "100.127.255.254",
		"169.254.169.254", "169.254.0.1", "fe80::1", "fc00::1", "fd12:3456::1",
		"224.0.0.1", "239.255.255.250", "255.255.255.255", "ff02::1",
		"::ffff:127.0.0.1", "::ffff:10.0.0.5", "::ffff:169.254.169.254", "64:ff9b::7f00:1",
		"192.0.2.1", "198.18.0.1", "240.0.0.1", "2001:db8::1", "fd00:ec2::254",
	}
	for _, s := range refused {
		if err := d.Check("h", netip.MustParseAddr(s)); !errors.Is(err, egress.ErrRefused) {
			t.Errorf("%s: %v, want refused", s, err)
		}
	}
	for _, s := range []string{"1.1.1.1", "8.8.8.8", "93.184.215.14", "2606:4700:4700::1111", "2a00:1450:4001::200e"} {
		if err := d.Check("h", netip.MustParseAddr(s)); err != nil {
			t.Errorf("%s: %v, want allowed", s, err)
		}
	}
	// An allowed network covers the IPv4-mapped form too.
	a, _ := egress.ParseAllow("10.0.0.0/8")
	if err := egress.NewDialer(egress.Config{Allow: a}).Check("h", netip.MustParseAddr("::ffff:10.1.2.3")); err != nil {
		t.Errorf("::ffff:10.1.2.3 with 10/8 allowed: %v", err)
	}
	// And an allowed network written in its IPv4-mapped form covers the IPv4 one.
	a, _ = egress.ParseAllow("::ffff:10.0.0.0/104")
	if err := egress.NewDialer(egress.Config{Allow: a}).Check("h", netip.MustParseAddr("10.1.2.3")); err != nil {
		t.Errorf("10.1.2.3 with ::ffff:10.0.0.0/104 allowed: %v", err)
	}
}

func TestParseAllow(t *testing.T) {
	a, err := egress.ParseAllow(" 10.0.0.0/8 ,fd00::/8, 192.168.1.7,NTFY, .Internal,")
	if err != nil || len(a.Prefixes) != 3 || a.Prefixes[2] != netip.MustParsePrefix("192.168.1.7/32") ||
		len(a.Hosts) != 2 || a.Hosts[0] != "ntfy" || a.Hosts[1] != ".internal" {
		t.Fatalf("ParseAllow = %+v, %v", a, err)
	}
	for _, bad := range []string{"10.0.0.0/33", "10.0.0/8", "http://ntfy", "ntfy:80", "a b", "."} {
		if _, err := egress.ParseAllow(bad); err == nil {
			t.Errorf("ParseAllow(%q): no error", bad)
		}
	}
	if a, err := egress.ParseAllow(""); err != nil || len(a.Prefixes)+len(a.Hosts) != 0 {
		t.Fatalf("ParseAllow(\"\") = %+v, %v", a, err)
	}
}

// CheckHost, for a check at registration: IP literals as Check, localhost as
// loopback, other names not resolved; the allowance as for a dial.
func TestCheckHost(t *testing.T) {
	d := egress.NewDialer(egress.Config{})
	for _, h := range []string{"127.0.0.1", "10.0.0.5", "169.254.169.254", "::1", "fc00::1", "fd12::1", "fe80::1%eth0",
		"::ffff:127.0.0.1", "::ffff:10.0.0.5", "0.0.0.0", "localhost", "LOCALHOST.", "api.localhost", "Api.LocalHost."} {
		var re *egress.RefusedError
		if err := d.CheckHost(h); !errors.As(err, &re) || re.Host != h {
			t.Errorf("CheckHost(%q) = %v, want refused naming the host", h, err)
		}
	}
	for _, h := range []string{"8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "ntfy.sh", "ntfy", "localhost.example.com", "notlocalhost"} {
		if err := d.CheckHost(h); err != nil {
			t.Errorf("CheckHost(%q) = %v, want nil", h, err)
		}
	}
	a, _ := egress.ParseAllow("10.0.0.0/8,fe80::/10,127.0.0.1,.internal")
	d = egress.NewDialer(egress.Config{Allow: a})
	for _, h := range []string{"10.0.0.5", "::ffff:10.0.0.5", "fe80::1%eth0", "localhost", "127.0.0.1"} {
		if err := d.CheckHost(h); err != nil {
			t.Errorf("allowed: CheckHost(%q) = %v", h, err)
		}
	}
	for _, h := range []string{"::1", "169.254.169.254", "192.168.1.1"} {
		if err := d.CheckHost(h); !errors.Is(err, egress.ErrRefused) {
			t.Errorf("allowed 10/8, fe80::/10, 127.0.0.1: CheckHost(%q) = %v, want refused", h, err)
		}
	}
	a, _ = egress.ParseAllow("localhost")
	if err := egress.NewDialer(egress.Config{Allow: a}).CheckHost("LOCALHOST."); err != nil {
		t.Errorf("localhost allowed by name: %v", err)
	}
}
