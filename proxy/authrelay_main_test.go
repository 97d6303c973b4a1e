package proxy_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/m365tap/m365tap/internal/testsquid"
	"github.com/m365tap/m365tap/proxy"
)

// The transparency tests of the relay (issue 11): each client runs once
// straight to a real Squid and once through the tap with that Squid as its
// parent, in the same test, and must get the same final statuses while
// Squid logs the same requests under the same users. One KDC and one Squid
// (offering Negotiate, NTLM and Basic, in that order) serve every case.

const (
	// arParent is the parent's host name; Squid holds a keytab for
	// HTTP/arParent. Clients reach it (or the tap) by this name through
	// their own name mapping (curl --resolve), never through DNS.
	arParent = "proxy.corp.test"
	arSPN    = "HTTP/" + arParent
	// arOffered is what Squid offers, in its order.
	arOffered = "negotiate,ntlm,basic"
)

var (
	arAlice   = testsquid.User{Name: "alice", Password: "Alice-pw-1"}
	arBob     = testsquid.User{Name: "bob", Password: "Bob-pw-2"}
	arMallory = testsquid.User{Name: "mallory", Password: "Mallory-pw-3"}
)

// arEnv is what every case shares.
type arEnv struct {
	kdc     *testsquid.KDC
	squid   *testsquid.Squid
	plain   *httptest.Server // http origin
	secure  *httptest.Server // https origin, reached by CONNECT
	handler http.Handler     // the origins' handler, for an origin of a case's own
	probe   *httptest.Server // the NCSI probe host on port 80
	probeIP netip.Addr
	// Kerberos credential caches: alice's, and mallory's (whose account
	// Squid refuses).
	aliceCC, malloryCC string
}

// TestAuthRelay runs every transparency case against one KDC and Squid.
func TestAuthRelay(t *testing.T) {
	e := newAREnv(t)
	t.Run("table", func(t *testing.T) { testRelayTable(t, e) })
	t.Run("digest", func(t *testing.T) { testRelayDigest(t, e) })
	t.Run("407 as sent", func(t *testing.T) { testRelay407AsSent(t, e) })
	t.Run("log users", func(t *testing.T) { testRelayLogUsers(t, e) })
	t.Run("kerberos naming", func(t *testing.T) { testRelayKerberosNaming(t, e) })
	t.Run("identity", func(t *testing.T) { testRelayIdentity(t, e) })
	t.Run("ncsi", func(t *testing.T) { testRelayNCSI(t, e) })
	t.Run("expect 100-continue", func(t *testing.T) { testRelayExpect(t, e) })
}

// newAREnv starts the origins, the KDC and Squid the cases share.
func newAREnv(t *testing.T) *arEnv {
	start := time.Now()
	e := &arEnv{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		io.WriteString(w, "hello from "+r.URL.Path)
	})
	e.handler = h
	e.plain = httptest.NewServer(h)
	t.Cleanup(e.plain.Close)
	e.secure = httptest.NewTLSServer(h)
	t.Cleanup(e.secure.Close)
	e.probe = probeOrigin(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "Microsoft Connect Test") })
	e.probeIP = netip.MustParseAddrPort(e.probe.Listener.Addr().String()).Addr()

	e.kdc = testsquid.StartKDC(t)
	e.kdc.AddUser(arAlice.Name, arAlice.Password)
	e.kdc.AddUser(arMallory.Name, arMallory.Password)
	// A service named after the address, as a client pointed at the tap by
	// address asks for: the ticket exists, but it is not the parent's.
	e.kdc.AddService("HTTP/127.0.0.1")
	e.squid = testsquid.Start(t, testsquid.Options{
		Auth:  testsquid.AuthAll,
		Users: []testsquid.User{arAlice, arBob, arMallory},
		KDC:   e.kdc, SPN: arSPN,
		Deny:  []string{arMallory.Name + "@" + e.kdc.Realm},
		Hosts: map[string]string{"www.msftconnecttest.com": e.probeIP.String()},
	})
	e.aliceCC = e.kdc.Kinit(arAlice.Name, arAlice.Password)
	e.malloryCC = e.kdc.Kinit(arMallory.Name, arMallory.Password)
	t.Logf("KDC and Squid ready in %v", time.Since(start).Round(time.Millisecond))
	return e
}

// tap starts the tap with Squid as its parent, named as the PC knows it.
func (e *arEnv) tap(t *testing.T, mod func(*proxy.Options)) *harness {
	t.Helper()
	parent, _ := url.Parse("http://" + net.JoinHostPort(arParent, e.squid.Port()))
	opts := proxy.Options{
		Parent: parent,
		Hosts: map[string]netip.Addr{
			arParent:                  netip.MustParseAddr("127.0.0.1"),
			"www.msftconnecttest.com": e.probeIP,
		},
		AllowPorts: []int{80, 443, mustPort(e.secure.Listener.Addr().String())},
	}
	if mod != nil {
		mod(&opts)
	}
	return newHarness(t, opts)
}

func (e *arEnv) plainURLs(tag string, n int) []string {
	u := make([]string, n)
	for i := range u {
		u[i] = fmt.Sprintf("%s/%s/%d", e.plain.URL, tag, i)
	}
	return u
}

func (e *arEnv) secureURLs(tag string, n int) []string {
	return secureURLsOf(e.secure, tag, n)
}

func secureURLsOf(srv *httptest.Server, tag string, n int) []string {
	u := make([]string, n)
	for i := range u {
		u[i] = fmt.Sprintf("%s/%s/%d", srv.URL, tag, i)
	}
	return u
}

// arClient is one client: it sends its requests through the proxy at
// addr (host:port on 127.0.0.1) and returns the final status per URL.
type arClient func(t *testing.T, addr string) []int

// sameThroughTap runs c straight to Squid and then through a new tap,
// and requires the same final statuses and the same Squid log (method,
// target, status and user of every request, in order). It returns the
// tap's harness, for the events.
func (e *arEnv) sameThroughTap(t *testing.T, c arClient, mod func(*proxy.Options)) (*harness, []int) {
	t.Helper()
	return e.sameThroughTapMatching(t, c, mod, nil)
}

// sameThroughTapMatching is sameThroughTap comparing only the Squid
// entries keep accepts (nil: all), for cases that run in parallel and tell
// their requests apart by URL.
func (e *arEnv) sameThroughTapMatching(t *testing.T, c arClient, mod func(*proxy.Options), keep func(testsquid.Entry) bool) (*harness, []int) {
	t.Helper()
	if keep == nil {
		// Squid logs a tunnel when it ends: one of an earlier case may
		// still arrive. Let the log go quiet before this case's window.
		e.squid.Settle(t, e.squid.Mark(t))
	}
	mark := e.squid.Mark(t)
	direct := c(t, e.squid.Addr)
	directLog := e.squid.SettleMatching(t, mark, keep)

	h := e.tap(t, mod)
	mark = e.squid.Mark(t)
	through := c(t, h.addr)
	e.squid.SinceMatching(t, mark, len(directLog), 5*time.Second, keep)
	throughLog := e.squid.SettleMatching(t, mark, keep)

	if !slices.Equal(direct, through) {
		t.Errorf("final statuses: straight to Squid %v, through the tap %v", direct, through)
	}
	if a, b := logLines(directLog), logLines(throughLog); !slices.Equal(a, b) {
		t.Errorf("Squid's log differs.\nstraight to Squid:\n  %s\nthrough the tap:\n  %s",
			strings.Join(a, "\n  "), strings.Join(b, "\n  "))
	}
	return h, direct
}

// logLines is what must be equal in Squid's log with and without the
// tap: everything but the client's address.
func logLines(entries []testsquid.Entry) []string {
	s := make([]string, len(entries))
	for i, e := range entries {
		s[i] = e.String()
	}
	return s
}

// curlClient runs one curl with every URL (one keep-alive connection).
// With named, curl is pointed at the proxy by the parent's host name,
// mapped to 127.0.0.1 by curl itself (--resolve), as a hosts entry on the
// PC would.
func curlClient(env []string, named bool, args []string, urls []string) arClient {
	return func(t *testing.T, addr string) []int {
		t.Helper()
		_, port, _ := net.SplitHostPort(addr)
		host := "127.0.0.1"
		a := append([]string{"-k"}, args...)
		if named {
			host = arParent
			a = append(a, "--resolve", arParent+":"+port+":127.0.0.1")
		}
		a = append(a, "-v", "-x", "http://"+net.JoinHostPort(host, port))
		r := testsquid.Curl(t, env, a, urls...)
		t.Logf("curl via %s: %v", addr, r)
		// curl -v shows every leg's headers: printed only when the case
		// fails, to show where the two runs parted.
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("curl -v via %s:\n%s", addr, r.Stderr)
			}
		})
		return r.Codes
	}
}

// goBasicClient is net/http's own client: Basic credentials in the proxy
// URL, keep-alive, plain requests and CONNECT alike.
func goBasicClient(user *url.Userinfo, urls []string) arClient {
	return func(t *testing.T, addr string) []int {
		t.Helper()
		pu := &url.URL{Scheme: "http", Host: addr, User: user}
		tr := &http.Transport{Proxy: http.ProxyURL(pu), MaxConnsPerHost: 1,
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr, Timeout: 15 * time.Second}
		var codes []int
		for _, u := range urls {
			resp, err := c.Get(u)
			switch {
			case err != nil && strings.Contains(err.Error(), "Proxy Authentication Required"):
				codes = append(codes, http.StatusProxyAuthRequired)
			case err != nil:
				t.Logf("GET %s via %s: %v", u, addr, err)
				codes = append(codes, 0)
			default:
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				codes = append(codes, resp.StatusCode)
			}
		}
		return codes
	}
}

// goConnClient drives a connection-bound handshake (NTLM, or Negotiate
// carrying NTLM) on one client connection: plain requests one after the
// other, or one CONNECT and the requests inside its TLS tunnel.
func goConnClient(cr *testsquid.Credentials, connect bool, urls []string) arClient {
	return func(t *testing.T, addr string) []int {
		t.Helper()
		c, err := testsquid.Dial(addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var codes []int
		if !connect {
			for _, u := range urls {
				resp, legs, err := c.Authenticate(func() *http.Request { return testsquid.Get(u) }, cr)
				if err != nil {
					t.Logf("GET %s via %s after legs %v: %v", u, addr, legs, err)
					codes = append(codes, 0)
					return codes
				}
				codes = append(codes, resp.StatusCode)
			}
			return codes
		}
		target, _ := url.Parse(urls[0])
		resp, legs, err := c.Authenticate(func() *http.Request { return testsquid.Connect(target.Host) }, cr)
		if err != nil {
			t.Logf("CONNECT via %s after legs %v: %v", addr, legs, err)
			return []int{0}
		}
		if resp.StatusCode != http.StatusOK {
			return []int{resp.StatusCode}
		}
		tc := c.TLS(&tls.Config{InsecureSkipVerify: true})
		defer tc.Close()
		br := bufio.NewReader(tc)
		for _, u := range urls {
			req := testsquid.Get(u)
			req.URL = &url.URL{Path: req.URL.Path}
			if err := req.Write(tc); err != nil {
				t.Logf("request in the tunnel via %s: %v", addr, err)
				return append(codes, 0)
			}
			resp, err := http.ReadResponse(br, req)
			if err != nil {
				t.Logf("answer in the tunnel via %s: %v", addr, err)
				return append(codes, 0)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes = append(codes, resp.StatusCode)
		}
		return codes
	}
}

// str is an event field as a string ("" when absent).
func str(ev map[string]any, k string) string {
	s, _ := ev[k].(string)
	return s
}

// relayEvents waits up to 5 s for n events and returns them; on a
// different count it fails the test showing what was logged, which
// harness.waitEvents's bare timeout does not.
func relayEvents(t *testing.T, h *harness, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(h.log.events(t)) < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	evs := h.log.events(t)
	if len(evs) != n {
		var b strings.Builder
		for _, ev := range evs {
			fmt.Fprintf(&b, "\n  %s %v status=%v upstream=%v outcome=%s legs=%v scheme=%s error=%q",
				str(ev, "method"), ev["url"], ev["status"], ev["upstream_status"], str(ev, "outcome"),
				ev["proxy_auth_legs"], str(ev, "proxy_auth_scheme"), str(ev, "error"))
		}
		t.Errorf("want %d events, got %d:%s", n, len(evs), b.String())
	}
	return evs
}
