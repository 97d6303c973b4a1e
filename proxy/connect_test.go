package proxy_test

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/m365tap/m365tap/internal/testnet"
	"github.com/m365tap/m365tap/proxy"
)

func okHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "secure hello") })
}

// tlsClient is a net/http client that tunnels HTTPS through the tap.
func tlsClient(h *harness, roots *testnet.CA, maxVersion uint16) *http.Client {
	u := &url.URL{Scheme: "http", Host: h.addr}
	cfg := &tls.Config{MaxVersion: maxVersion}
	if roots != nil {
		cfg.RootCAs = roots.Pool()
	}
	tr := &http.Transport{Proxy: http.ProxyURL(u), TLSClientConfig: cfg, DisableKeepAlives: true}
	h.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// TestConnectTLS covers tunnels with a real TLS handshake: completed in
// TLS 1.2 and 1.3, and rejected by the client (what a TLS-inspecting
// middlebox with an unknown CA looks like) in both versions.
func TestConnectTLS(t *testing.T) {
	ca := testnet.NewCA(t)
	cases := []struct {
		name       string
		trust      bool
		maxVersion uint16
		outcome    string
		version    string
		alert      any
		cause      any
	}{
		{"tls13 ok", true, tls.VersionTLS13, "ok", "1.3", nil, nil},
		{"tls12 ok", true, tls.VersionTLS12, "ok", "1.2", nil, nil},
		// The PC refused the certificate it was shown: what a TLS-inspecting
		// device on the path causes, not an unreachable endpoint.
		{"tls13 rejected cert", false, tls.VersionTLS13, "tls_failure", "1.3", "encrypted", "tls-inspection"},
		// Go's client reports an unknown authority as bad_certificate; OpenSSL
		// clients send unknown_ca. Either is plaintext in TLS 1.2.
		{"tls12 rejected cert", false, tls.VersionTLS12, "tls_failure", "1.2", "bad_certificate", "tls-inspection"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			origin := tlsOrigin443(t, ca, okHandler(), 0, "login.microsoftonline.com")
			h := newHarness(t, proxy.Options{Hosts: hostsFor(origin.Listener.Addr().String(), "login.microsoftonline.com")})
			var roots *testnet.CA
			if tc.trust {
				roots = ca
			}
			resp, err := tlsClient(h, roots, tc.maxVersion).Get("https://login.microsoftonline.com/")
			if tc.trust {
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			} else if err == nil {
				t.Fatal("client accepted an untrusted certificate")
			}
			ev := h.waitEvents(1)[0]
			want(t, ev, map[string]any{
				"method": "CONNECT", "outcome": tc.outcome, "status": 200, "route": "direct",
				"tls_sni": "login.microsoftonline.com", "tls_version": tc.version, "tls_alert": tc.alert,
				"rule_id": "56", "cause_id": tc.cause,
			})
			if tc.outcome == "ok" && (ev["bytes_up"].(float64) == 0 || ev["bytes_down"].(float64) == 0) {
				t.Errorf("no bytes counted: %v", ev)
			}
			// TLS 1.2 shows the leaf in clear: its issuer is the CA that
			// signed it (an inspecting device's, when one is on the path).
			// TLS 1.3 hides it.
			var issuer, subject any
			if tc.version == "1.2" {
				issuer, subject = ca.Cert().Subject.String(), origin.TLS.Certificates[0].Leaf.Subject.String()
			}
			want(t, ev, map[string]any{"tls_issuer": issuer, "tls_subject": subject})
		})
	}
}

// TestConnectDialFailures: CONNECT dial failures reach the client as a short
// answer naming the outcome, never the raw error. A parent's own answer
// reaches it as the parent sent it.
func TestConnectDialFailures(t *testing.T) {
	dns := testnet.NewDNS(t)
	dns.SetRcode("nx.test", dnsmessage.RCodeNameError)
	dns.SetDrop("slow.test")
	closed := testnet.Closed(t)
	parent407 := testnet.NewParent(t, testnet.ParentOptions{Mode: testnet.ParentAuth407, User: "u", Pass: "p"})
	parent403 := testnet.NewParent(t, testnet.ParentOptions{Mode: testnet.ParentDeny403})
	cases := []struct {
		name, target, parent string
		status               int
		outcome              string
		header               string // X-M365tap-Outcome: the tap's own answers only
	}{
		{"nxdomain", "nx.test:443", "", 502, "dns_nxdomain", "dns_nxdomain"},
		{"dns timeout", "slow.test:443", "", 504, "dns_timeout", "dns_timeout"},
		{"refused", "127.0.0.1:" + port(closed), "", 502, "connect_refused", "connect_refused"},
		{"parent 407", "example.test:443", "http://" + parent407.Addr(), 407, "parent_auth_required", ""},
		{"parent 403", "example.test:443", "http://" + parent403.Addr(), 403, "http_error", ""},
		{"parent down", "example.test:443", "http://" + closed, 502, "parent_unreachable", "parent_unreachable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := proxy.Options{DNSServers: []string{dns.Addr()}, DNSTimeout: 300 * time.Millisecond, AllowPorts: []int{443, mustPort(closed)}}
			if tc.parent != "" {
				opts.Parent, _ = url.Parse(tc.parent)
			}
			h := newHarness(t, opts)
			c, resp, _ := rawConnect(t, h.addr, tc.target, nil)
			body, _ := io.ReadAll(resp.Body)
			c.Close() // a client that gives up
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if got := resp.Header.Get("X-M365tap-Outcome"); got != tc.header {
				t.Errorf("header outcome %q, want %q", got, tc.header)
			}
			if bytes.Contains(body, []byte("127.0.0.1")) || bytes.Contains(body, []byte("dial")) {
				t.Errorf("internal error text leaked to the client: %q", body)
			}
			if tc.outcome == "parent_auth_required" && resp.Header.Get("Proxy-Authenticate") == "" {
				t.Error("parent's Proxy-Authenticate not passed through")
			}
			ev := h.waitEvents(1)[0]
			want(t, ev, map[string]any{"outcome": tc.outcome, "status": tc.status, "method": "CONNECT"})
			if tc.name == "refused" {
				// A failed connect names the address it tried (issue 13).
				want(t, ev, map[string]any{"dest_ip": "127.0.0.1"})
			}
		})
	}
}

func mustPort(addr string) int {
	ap := netip.MustParseAddrPort(addr)
	return int(ap.Port())
}

// TestConnectEarlyBytesAndHalfClose: bytes sent with the CONNECT head are
// not lost, and a client that half-closes still receives everything.
func TestConnectEarlyBytesAndHalfClose(t *testing.T) {
	echo := testnet.Echo(t)
	h := newHarness(t, proxy.Options{AllowPorts: []int{mustPort(echo.Addr())}})
	early := []byte("EARLY-BYTES|")
	c, resp, br := rawConnect(t, h.addr, echo.Addr(), early)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	payload := testnet.Pattern(50000)
	go func() {
		c.Write(payload)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	wantBytes := append(append([]byte(nil), early...), payload...)
	if !bytes.Equal(got, wantBytes) {
		t.Fatalf("echoed %d bytes, want %d", len(got), len(wantBytes))
	}
	c.Close()
	ev := h.waitEvents(1)[0]
	want(t, ev, map[string]any{"outcome": "ok", "bytes_up": len(wantBytes), "bytes_down": len(wantBytes)})
}

// TestConnectReset: an upstream that resets the tunnel gives connection_reset.
func TestConnectReset(t *testing.T) {
	srv := testnet.Reset(t, testnet.ResetAfterRequest)
	h := newHarness(t, proxy.Options{AllowPorts: []int{mustPort(srv.Addr())}})
	c, resp, br := rawConnect(t, h.addr, srv.Addr(), nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	c.Write([]byte("hello"))
	io.ReadAll(br)
	c.Close()
	want(t, h.waitEvents(1)[0], map[string]any{"outcome": "connection_reset"})
}

// TestConnectClientSendsNothing: a client that opens a tunnel and leaves.
func TestConnectClientSendsNothing(t *testing.T) {
	sink := testnet.Sink(t)
	h := newHarness(t, proxy.Options{AllowPorts: []int{mustPort(sink.Addr())}})
	c, resp, _ := rawConnect(t, h.addr, sink.Addr(), nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	c.Close()
	want(t, h.waitEvents(1)[0], map[string]any{"outcome": "client_aborted", "class": "aborted"})
}

// TestShutdownClosesTunnels: a tunnel still open when the tap stops gets its
// own shutdown event before Shutdown returns.
func TestShutdownClosesTunnels(t *testing.T) {
	echo := testnet.Echo(t)
	h := newHarness(t, proxy.Options{AllowPorts: []int{mustPort(echo.Addr())}})
	c, resp, br := rawConnect(t, h.addr, echo.Addr(), nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	c.Write([]byte("ping"))
	buf := make([]byte, 4)
	io.ReadFull(br, buf)
	h.shutdown(100 * time.Millisecond)
	ev := h.log.events(t)
	if len(ev) != 1 {
		t.Fatalf("want 1 event right after Shutdown, got %d", len(ev))
	}
	want(t, ev[0], map[string]any{"outcome": "shutdown", "class": "aborted", "bytes_up": 4})
}

// TestTunnelIdleTimeout: a tunnel with no traffic either way is closed after
// timeouts.tunnel_idle, while one that keeps talking stays open past it.
func TestTunnelIdleTimeout(t *testing.T) {
	echo := testnet.Echo(t)
	h := newHarness(t, proxy.Options{AllowPorts: []int{mustPort(echo.Addr())}, TunnelIdle: 300 * time.Millisecond})
	busy, resp, busyR := rawConnect(t, h.addr, echo.Addr(), nil)
	if resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	idle, resp, idleR := rawConnect(t, h.addr, echo.Addr(), []byte("x"))
	if resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	io.ReadFull(idleR, make([]byte, 1))
	buf := make([]byte, 4)
	for i := 0; i < 8; i++ { // 8 x 100ms: well past the idle bound
		busy.Write([]byte("ping"))
		if _, err := io.ReadFull(busyR, buf); err != nil {
			t.Fatalf("busy tunnel closed while in use: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idleR.ReadByte(); err == nil {
		t.Fatal("idle tunnel still open")
	}
	ev := h.waitEvents(1)[0]
	want(t, ev, map[string]any{"outcome": "ok", "bytes_up": 1, "bytes_down": 1})
	if !strings.Contains(ev["error"].(string), "tunnel_idle") {
		t.Errorf("error %v does not name the bound", ev["error"])
	}
	busy.Close()
}
