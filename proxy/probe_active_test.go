package proxy_test

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/m365tap/m365tap/internal/testnet"
	"github.com/m365tap/m365tap/proxy"
	"github.com/m365tap/m365tap/rules"
)

// addrOf is the address part of a listener's host:port.
func addrOf(t testing.TB, hostport string) netip.Addr {
	t.Helper()
	return netip.MustParseAddrPort(hostport).Addr()
}

func portOf(t testing.TB, hostport string) int {
	t.Helper()
	return int(netip.MustParseAddrPort(hostport).Port())
}

// TestCheck runs each kind of active check against loopback fixtures and
// compares the result with the event it logged: the same dialer, resolver,
// classification and cause table as the proxy's own exchanges.
func TestCheck(t *testing.T) {
	ca := testnet.NewCA(t)
	other := testnet.NewCA(t) // an inspecting device's CA, which the probe does not trust
	connectText := func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "Microsoft Connect Test") }

	type setup struct {
		opts  proxy.Options
		check proxy.Check
	}
	cases := []struct {
		name    string
		setup   func(t *testing.T) setup
		outcome string
		// event fields to check; nil means absent
		event map[string]any
	}{
		{"web direct ok", func(t *testing.T) setup {
			o := probeOrigin(t, connectText)
			return setup{proxy.Options{Hosts: hostsFor(o.Listener.Addr().String(), "www.msftconnecttest.com")},
				proxy.Check{Kind: proxy.CheckWeb, Host: "www.msftconnecttest.com", Port: 80, Path: "/connecttest.txt", Route: proxy.RouteDirect}}
		}, "ok", map[string]any{"method": "GET", "url": "http://www.msftconnecttest.com/connecttest.txt", "route": "direct",
			"upstream_status": 200, "bytes_down": 22, "rule_id": "ncsi-connecttest-v4", "probe": true, "cause_id": nil,
			"user_agent": "Microsoft NCSI", "client": ""}},
		{"web captive portal", func(t *testing.T) setup {
			o := probeOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "http://portal.test/", http.StatusFound)
			})
			return setup{proxy.Options{Hosts: hostsFor(o.Listener.Addr().String(), "ipv6.msftconnecttest.com")},
				proxy.Check{Kind: proxy.CheckWeb, Host: "ipv6.msftconnecttest.com", Port: 80, Path: "/connecttest.txt"}}
		}, "probe_redirect", map[string]any{"rule_id": "ncsi-connecttest-v6", "cause_id": "ncsi-no-internet", "upstream_status": 302}},
		{"web block page", func(t *testing.T) setup {
			o := probeOrigin(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<title>Blocked</title>") })
			return setup{proxy.Options{Hosts: hostsFor(o.Listener.Addr().String(), "www.msftncsi.com")},
				proxy.Check{Kind: proxy.CheckWeb, Host: "www.msftncsi.com", Port: 80, Path: "/ncsi.txt"}}
		}, "probe_content_mismatch", map[string]any{"probe_body": "<title>Blocked</title>", "cause_id": "ncsi-no-internet"}},
		{"web via a parent that demands credentials", func(t *testing.T) setup {
			o := probeOrigin(t, connectText)
			hosts := hostsFor(o.Listener.Addr().String(), "www.msftconnecttest.com")
			p := testnet.NewParent(t, testnet.ParentOptions{Mode: testnet.ParentAuth407, User: "u", Pass: "right", Dial: hostsDial(hosts)})
			pu := p.URL()
			pu.User = urlUser("u", "wrong")
			return setup{proxy.Options{Parent: pu, Hosts: hosts},
				proxy.Check{Kind: proxy.CheckWeb, Host: "www.msftconnecttest.com", Port: 80, Path: "/connecttest.txt", Route: proxy.RouteParent}}
		}, "parent_auth_required", map[string]any{"route": "parent", "upstream_status": 407, "cause_id": "ncsi-no-internet"}},
		{"web via a parent that forwards", func(t *testing.T) setup {
			o := probeOrigin(t, connectText)
			hosts := hostsFor(o.Listener.Addr().String(), "www.msftconnecttest.com")
			p := testnet.NewParent(t, testnet.ParentOptions{Dial: hostsDial(hosts)})
			return setup{proxy.Options{Parent: p.URL()},
				proxy.Check{Kind: proxy.CheckWeb, Host: "www.msftconnecttest.com", Port: 80, Path: "/connecttest.txt", Route: proxy.RouteParent}}
		}, "ok", map[string]any{"route": "parent", "dest_ip": nil}},

		{"dns both families", func(t *testing.T) setup {
			d := testnet.NewDNS(t)
			d.SetA(proxy.NCSIDNSHost, proxy.NCSIDNSv4, proxy.NCSIDNSv6)
			return setup{proxy.Options{DNSServers: []string{d.Addr()}}, proxy.Check{Kind: proxy.CheckDNSAAAA, Host: proxy.NCSIDNSHost}}
		}, "ok", map[string]any{"host": "dns.msftncsi.com", "method": "", "route": "direct", "probe_check": "dns_aaaa",
			"rule_id": nil, "cause_id": nil}},
		{"dns wrong answer", func(t *testing.T) setup {
			d := testnet.NewDNS(t)
			d.SetA(proxy.NCSIDNSHost, netip.MustParseAddr("10.9.8.7"))
			return setup{proxy.Options{DNSServers: []string{d.Addr()}}, proxy.Check{Kind: proxy.CheckDNSA, Host: proxy.NCSIDNSHost}}
		}, "probe_content_mismatch", map[string]any{"probe_body": "10.9.8.7", "cause_id": "ncsi-no-internet", "probe_check": "dns_a",
			"error": "dns.msftncsi.com A answered 10.9.8.7, want 131.107.255.255"}},
		{"dns no AAAA record", func(t *testing.T) setup {
			d := testnet.NewDNS(t)
			d.SetA(proxy.NCSIDNSHost, proxy.NCSIDNSv4)
			return setup{proxy.Options{DNSServers: []string{d.Addr()}}, proxy.Check{Kind: proxy.CheckDNSAAAA, Host: proxy.NCSIDNSHost}}
		}, "dns_nxdomain", map[string]any{"cause_id": "ncsi-no-internet"}},
		{"dns servfail", func(t *testing.T) setup {
			d := testnet.NewDNS(t)
			d.SetRcode(proxy.NCSIDNSHost, dnsmessage.RCodeServerFailure)
			return setup{proxy.Options{DNSServers: []string{d.Addr()}}, proxy.Check{Kind: proxy.CheckDNSA, Host: proxy.NCSIDNSHost}}
		}, "dns_failure", map[string]any{"cause_id": "ncsi-no-internet"}},

		{"tls direct ok", func(t *testing.T) setup {
			o := tlsOrigin443(t, ca, http.NotFoundHandler(), 0, "login.microsoftonline.com")
			return setup{proxy.Options{Hosts: hostsFor(o.Listener.Addr().String(), "login.microsoftonline.com")},
				proxy.Check{Kind: proxy.CheckTLS, Host: "login.microsoftonline.com", Port: 443, RootCAs: ca.Pool()}}
		}, "ok", map[string]any{"method": "CONNECT", "port": 443, "tls_sni": "login.microsoftonline.com", "tls_version": "1.3",
			"rule_id": "56", "probe_check": "tls", "url": nil, "status": nil, "tls_issuer": ca.Cert().Subject.String(), "tls_trusted": true}},
		// The probe refused the certificate: a device on the path showed
		// its own (TLS 1.3, which a PC's tunnel cannot show), named by
		// its issuer.
		{"tls certificate from another CA", func(t *testing.T) setup {
			o := tlsOrigin443(t, other, http.NotFoundHandler(), 0, "login.microsoftonline.com")
			return setup{proxy.Options{Hosts: hostsFor(o.Listener.Addr().String(), "login.microsoftonline.com")},
				proxy.Check{Kind: proxy.CheckTLS, Host: "login.microsoftonline.com", Port: 443, RootCAs: ca.Pool()}}
		}, "tls_failure", map[string]any{"tls_alert": "bad_certificate", "cause_id": "tls-inspection",
			"tls_issuer": other.Cert().Subject.String(), "tls_trusted": false}},
		// A trusted chain for another name: refused, but the chain itself
		// verifies against the roots, which an inspecting device's own CA
		// does not.
		{"tls trusted certificate for another name", func(t *testing.T) setup {
			o := tlsOrigin443(t, ca, http.NotFoundHandler(), 0, "graph.microsoft.com")
			return setup{proxy.Options{Hosts: hostsFor(o.Listener.Addr().String(), "login.microsoftonline.com")},
				proxy.Check{Kind: proxy.CheckTLS, Host: "login.microsoftonline.com", Port: 443, RootCAs: ca.Pool()}}
		}, "tls_failure", map[string]any{"tls_alert": "bad_certificate", "tls_issuer": ca.Cert().Subject.String(), "tls_trusted": true}},
		{"tls server alert", func(t *testing.T) setup {
			srv := httptest.NewUnstartedServer(http.NotFoundHandler())
			srv.Listener.Close()
			srv.Listener = listen443(t)
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Leaf(t, "graph.microsoft.com")}, MaxVersion: tls.VersionTLS12,
				ClientAuth: tls.RequireAnyClientCert}
			srv.Config.ErrorLog = quietLog()
			srv.StartTLS()
			t.Cleanup(srv.Close)
			return setup{proxy.Options{Hosts: hostsFor(srv.Listener.Addr().String(), "graph.microsoft.com")},
				proxy.Check{Kind: proxy.CheckTLS, Host: "graph.microsoft.com", Port: 443, RootCAs: ca.Pool()}}
		}, "tls_failure", map[string]any{"tls_alert": "handshake_failure", "error": "remote error: tls: handshake failure", "tls_version": nil,
			"tls_trusted": nil}},
		{"tls connect refused", func(t *testing.T) setup {
			ln := listen443(t)
			addr := ln.Addr().String()
			ln.Close()
			return setup{proxy.Options{Hosts: hostsFor(addr, "login.microsoftonline.com")},
				proxy.Check{Kind: proxy.CheckTLS, Host: "login.microsoftonline.com", Port: 443}}
		}, "connect_refused", map[string]any{"cause_id": "required-endpoint-unreachable", "tls_sni": nil, "tls_trusted": nil}},
		{"tls reset", func(t *testing.T) setup {
			s := testnet.Reset(t, testnet.ResetAfterRequest)
			return setup{proxy.Options{Hosts: hostsFor(s.Addr(), "reset.test")},
				proxy.Check{Kind: proxy.CheckTLS, Host: "reset.test", Port: portOf(t, s.Addr())}}
		}, "connection_reset", map[string]any{"rule_id": nil}},
		{"tls server never answers", func(t *testing.T) setup {
			s := testnet.Silent(t)
			return setup{proxy.Options{Hosts: hostsFor(s.Addr(), "silent.test"), ResponseHeaderTimeout: 200 * time.Millisecond},
				proxy.Check{Kind: proxy.CheckTLS, Host: "silent.test", Port: portOf(t, s.Addr())}}
		}, "tls_failure", map[string]any{"ttfb_ms": nil}},
		{"tls via a parent that forwards", func(t *testing.T) setup {
			o := tlsOrigin443(t, ca, http.NotFoundHandler(), 0, "login.microsoftonline.com")
			hosts := hostsFor(o.Listener.Addr().String(), "login.microsoftonline.com")
			p := testnet.NewParent(t, testnet.ParentOptions{Dial: hostsDial(hosts)})
			return setup{proxy.Options{Parent: p.URL()},
				proxy.Check{Kind: proxy.CheckTLS, Host: "login.microsoftonline.com", Port: 443, Route: proxy.RouteParent, RootCAs: ca.Pool()}}
		}, "ok", map[string]any{"route": "parent", "upstream_status": 200, "tls_version": "1.3", "dest_ip": nil}},
		{"tls via a parent that refuses", func(t *testing.T) setup {
			p := testnet.NewParent(t, testnet.ParentOptions{Mode: testnet.ParentDeny403})
			return setup{proxy.Options{Parent: p.URL()},
				proxy.Check{Kind: proxy.CheckTLS, Host: "login.microsoftonline.com", Port: 443, Route: proxy.RouteParent}}
		}, "http_error", map[string]any{"route": "parent", "upstream_status": 403, "cause_id": "required-endpoint-unreachable"}},
		{"tls via a parent that demands credentials", func(t *testing.T) setup {
			p := testnet.NewParent(t, testnet.ParentOptions{Mode: testnet.ParentAuth407})
			return setup{proxy.Options{Parent: p.URL()},
				proxy.Check{Kind: proxy.CheckTLS, Host: "login.microsoftonline.com", Port: 443, Route: proxy.RouteParent}}
		}, "parent_auth_required", map[string]any{"cause_id": "device-proxy-settings"}},
		{"parent route without a parent goes direct", func(t *testing.T) setup {
			o := tlsOrigin443(t, ca, http.NotFoundHandler(), 0, "login.microsoftonline.com")
			return setup{proxy.Options{Hosts: hostsFor(o.Listener.Addr().String(), "login.microsoftonline.com")},
				proxy.Check{Kind: proxy.CheckTLS, Host: "LOGIN.microsoftonline.com.", Port: 443, Route: proxy.RouteParent, RootCAs: ca.Pool()}}
		}, "ok", map[string]any{"route": "direct", "host": "login.microsoftonline.com"}},
	}
	doc, err := os.ReadFile("../docs/events.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_@.]+)` \\|").FindAllSubmatch(doc, -1) {
		documented[string(m[1])] = true
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			su := tc.setup(t)
			h := newHarness(t, su.opts)
			res := h.srv.Check(context.Background(), su.check)
			if res.Outcome.String() != tc.outcome {
				t.Errorf("outcome %s (%s), want %s", res.Outcome, res.Err, tc.outcome)
			}
			ev := h.waitEvents(1)[0]
			fields := map[string]any{"outcome": tc.outcome, "msg": "exchange"}
			if _, ok := tc.event["probe_check"]; !ok {
				fields["probe_check"] = map[proxy.CheckKind]string{proxy.CheckWeb: "web", proxy.CheckTLS: "tls",
					proxy.CheckDNSA: "dns_a", proxy.CheckDNSAAAA: "dns_aaaa"}[su.check.Kind]
			}
			for k, v := range tc.event {
				fields[k] = v
			}
			want(t, ev, fields)
			// The result says what the event says.
			cause := ""
			if res.Cause != nil {
				cause = res.Cause.ID.String()
			}
			if got, _ := ev["cause_id"].(string); got != cause {
				t.Errorf("result cause %q, event cause %q", cause, got)
			}
			if (res.Outcome == rules.OK) != (res.Err == "") || ev["error"] != nilIfEmpty(res.Err) {
				t.Errorf("result error %q, event error %v", res.Err, ev["error"])
			}
			for k := range ev {
				if !documented[k] {
					t.Errorf("event key %q is not documented in docs/events.md", k)
				}
			}
		})
	}
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// TestRunChecksBound: never more than the limit in flight, every result in
// the order given, and nothing run once the context is done.
func TestRunChecksBound(t *testing.T) {
	var cur, peak atomic.Int32
	srv := testnet.Serve(t, func(c *net.TCPConn) {
		n := cur.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		// Read the ClientHello, so that closing sends a FIN, not a
		// reset: no ServerHello, tls_failure.
		_, _ = c.Read(make([]byte, 4096))
		time.Sleep(40 * time.Millisecond)
		cur.Add(-1)
	})
	h := newHarness(t, proxy.Options{Hosts: hostsFor(srv.Addr(), "bound.test")})
	checks := make([]proxy.Check, 20)
	for i := range checks {
		checks[i] = proxy.Check{Kind: proxy.CheckTLS, Host: "bound.test", Port: portOf(t, srv.Addr())}
	}
	checks[7].Host = "unmapped.test" // the harness resolver refuses: a dns failure, in its place
	calls := 0
	res := h.srv.RunChecks(context.Background(), checks, 3, func(proxy.Result) { calls++ })
	if p := peak.Load(); p > 3 || p < 2 {
		t.Errorf("peak concurrency %d, want 3 at most (and some)", p)
	}
	if calls != 20 || len(res) != 20 {
		t.Fatalf("%d callbacks, %d results", calls, len(res))
	}
	for i, r := range res {
		want := "tls_failure"
		if i == 7 {
			want = "dns_failure"
		}
		if r.Outcome.String() != want || r.Check.Host != checks[i].Host {
			t.Errorf("result %d: %s %s, want %s", i, r.Check.Host, r.Outcome, want)
		}
	}
	h.waitEvents(20)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res = h.srv.RunChecks(ctx, checks[:2], 1, nil)
	if !res[0].Skipped || !res[1].Skipped || res[0].OK() {
		t.Errorf("checks ran after the context ended: %+v", res)
	}
	h.waitEvents(20)
}

// TestProbeTargets: what the probe checks with the embedded rules.
func TestProbeTargets(t *testing.T) {
	parent := testnet.NewParent(t, testnet.ParentOptions{Mode: testnet.ParentDeny403})
	cases := []struct {
		name   string
		opts   proxy.Options
		routes int
		web    proxy.Route
		tls    proxy.Route
		dnsReq bool
	}{
		{"no parent", proxy.Options{}, 1, proxy.RouteDirect, proxy.RouteDirect, true},
		{"parent", proxy.Options{Parent: parent.URL()}, 2, proxy.RouteParent, proxy.RouteParent, false},
		{"parent, probes direct", proxy.Options{Parent: parent.URL(), ProbesDirect: true}, 2, proxy.RouteDirect, proxy.RouteParent, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.opts)
			targets := h.srv.ProbeTargets()
			count := map[proxy.CheckKind]int{}
			byHost := map[string]proxy.ProbeTarget{}
			for _, tg := range targets {
				count[tg.Kind]++
				if strings.Contains(tg.Host, "*") {
					t.Errorf("wildcard target %+v", tg)
				}
				if tg.Kind == proxy.CheckTLS || tg.Kind == proxy.CheckWeb {
					byHost[tg.Host] = tg
					if len(tg.Routes) != tc.routes {
						t.Errorf("%s: routes %v", tg.Host, tg.Routes)
					}
				} else if len(tg.Routes) != 1 || tg.Required != tc.dnsReq || tg.Group != "ncsi-dns" {
					t.Errorf("dns target %+v", tg)
				}
			}
			if count[proxy.CheckWeb] != 4 || count[proxy.CheckDNSA] != 1 || count[proxy.CheckDNSAAAA] != 1 || count[proxy.CheckTLS] != 82 {
				t.Errorf("targets per kind %v, want 4 web, 1+1 dns, 82 tls", count)
			}
			for host, want := range map[string]proxy.ProbeTarget{
				"www.msftconnecttest.com":   {Kind: proxy.CheckWeb, Port: 80, Path: "/connecttest.txt", RuleID: "ncsi-connecttest-v4", Required: true, Group: "ncsi-web/connecttest.txt", Route: tc.web},
				"ipv6.msftncsi.com":         {Kind: proxy.CheckWeb, Port: 80, Path: "/ncsi.txt", RuleID: "ncsi-msftncsi-v6", Required: false, Group: "ncsi-web/ncsi.txt", Route: tc.web},
				"login.microsoftonline.com": {Kind: proxy.CheckTLS, Port: 443, RuleID: "56", Required: true, Route: tc.tls},
				// An exact entry of SharePoint set 35 and of Common set 86:
				// checked because of 86, logged under the winner like the proxy does.
				"officeclient.microsoft.com": {Kind: proxy.CheckTLS, Port: 443, RuleID: "35", Required: true, Route: tc.tls},
			} {
				got := byHost[host]
				if got.Kind != want.Kind || got.Port != want.Port || got.Path != want.Path || got.RuleID != want.RuleID ||
					got.Required != want.Required || got.Group != want.Group || got.Route != want.Route {
					t.Errorf("%s = %+v, want %+v", host, got, want)
				}
			}
		})
	}
}

func urlUser(user, pass string) *url.Userinfo { return url.UserPassword(user, pass) }

// quietLog drops a fixture server's handshake errors, which these tests
// cause on purpose.
func quietLog() *log.Logger { return log.New(io.Discard, "", 0) }

// TestHostTarget: a concrete name for a set the list names only by
// wildcard is checked like the list's own hosts, and required when a
// required set matches it.
func TestHostTarget(t *testing.T) {
	h := newHarness(t, proxy.Options{})
	for _, tc := range []struct {
		host     string
		rule     string
		required bool
	}{
		{"www.office.com", "147", true},
		{"intranet.example", "", false},
	} {
		got := h.srv.HostTarget(tc.host)
		if got.Kind != proxy.CheckTLS || got.Port != 443 || got.RuleID != tc.rule || got.Required != tc.required || got.Route != proxy.RouteDirect {
			t.Errorf("HostTarget(%q) = %+v", tc.host, got)
		}
	}
}
