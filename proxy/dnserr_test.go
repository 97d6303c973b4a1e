package proxy_test

import (
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/m365tap/m365tap/internal/testnet"
	"github.com/m365tap/m365tap/proxy"
)

// TestDNSErrorNamesServerAsked: with dns.servers, the event's error names
// the server the tap asked, not the resolv.conf server Go's resolver would
// put there (which was never asked), for every kind of DNS failure and for
// the active probe's DNS checks as well as clients' requests. A lookup
// that ran out of time, which Go reports without a server, names the
// servers asked too.
func TestDNSErrorNamesServerAsked(t *testing.T) {
	dns := testnet.NewDNS(t)
	dns.SetRcode("servfail.test", dnsmessage.RCodeServerFailure)
	dns.SetRcode("refused.test", dnsmessage.RCodeRefused)
	dns.SetRcode("nx.test", dnsmessage.RCodeNameError)
	dns.SetRcode("nodata.test", dnsmessage.RCodeSuccess)
	dns.SetDrop("slow.test")
	// A second server where nothing answers: queries to it fail at once
	// (ICMP port unreachable on loopback), and the resolver moves on.
	silent := deadUDP(t)

	cases := []struct {
		host    string
		servers []string
		outcome string
		want    string // the error's text after the host name
	}{
		{"servfail.test", []string{dns.Addr()}, "dns_failure", " on " + dns.Addr() + ": server misbehaving"},
		{"refused.test", []string{dns.Addr()}, "dns_failure", " on " + dns.Addr() + ": server misbehaving"},
		{"nx.test", []string{dns.Addr()}, "dns_nxdomain", " on " + dns.Addr() + ": no such host"},
		{"nodata.test", []string{dns.Addr()}, "dns_nxdomain", " on " + dns.Addr() + ": no such host"},
		{"slow.test", []string{dns.Addr()}, "dns_timeout", " on " + dns.Addr() + ": i/o timeout"},
		// Both servers were asked, in the order configured.
		{"servfail.test", []string{silent, dns.Addr()}, "dns_failure", " on " + silent + ", " + dns.Addr() + ": "},
	}
	resolvConf := systemServers()
	for _, tc := range cases {
		t.Run(tc.host, func(t *testing.T) {
			h := newHarness(t, proxy.Options{DNSServers: tc.servers, DNSTimeout: 500 * time.Millisecond})
			resp, err := h.client().Get("http://" + tc.host + "/")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			ev := h.waitEvents(1)[0]
			want(t, ev, map[string]any{"outcome": tc.outcome})
			e, _ := ev["error"].(string)
			if !strings.HasPrefix(e, "lookup "+tc.host+tc.want) {
				t.Errorf("error %q, want it to start %q", e, "lookup "+tc.host+tc.want)
			}
			// Server names as whole words: a test server on port 53133
			// is not resolv.conf's 127.0.0.1:53.
			named := strings.FieldsFunc(e, func(r rune) bool { return r == ' ' || r == ',' })
			for _, s := range resolvConf {
				if slices.Contains(named, s) || slices.Contains(named, s+":") {
					t.Errorf("error %q names resolv.conf's server %s, which was not asked", e, s)
				}
			}
		})
	}

	// The active probe's DNS check takes the same path.
	h := newHarness(t, proxy.Options{DNSServers: []string{dns.Addr()}})
	r := h.srv.Check(t.Context(), proxy.Check{Kind: proxy.CheckDNSA, Host: "servfail.test"})
	if !strings.HasPrefix(r.Err, "lookup servfail.test on "+dns.Addr()+": ") {
		t.Errorf("probe check error %q, want it to name %s", r.Err, dns.Addr())
	}
}

// deadUDP is a loopback UDP address where nothing listens.
func deadUDP(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().String()
	c.Close()
	return addr
}

// systemServers are the host:port forms of resolv.conf's name servers,
// which Go's resolver would name in its errors.
func systemServers() []string {
	// Go's defaults when resolv.conf names none.
	out := []string{"127.0.0.1:53", "[::1]:53"}
	if b, err := os.ReadFile("/etc/resolv.conf"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "nameserver" {
				out = append(out, net.JoinHostPort(f[1], "53"))
			}
		}
	}
	return out
}
