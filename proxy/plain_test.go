package proxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/m365tap/m365tap/internal/testnet"
	"github.com/m365tap/m365tap/proxy"
)

// TestPlainOutcomes drives one plain-HTTP exchange per outcome through the
// tap with a real client, against real servers on loopback, and checks the
// client's answer and the whole event.
func TestPlainOutcomes(t *testing.T) {
	dns := testnet.NewDNS(t)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/503":
			http.Error(w, "down", http.StatusServiceUnavailable)
		default:
			io.WriteString(w, "hello")
		}
	}))
	t.Cleanup(origin.Close)
	op := port(origin.Listener.Addr().String())
	dns.SetA("origin.test", netip.MustParseAddr("127.0.0.1"))
	dns.SetRcode("nx.test", dnsmessage.RCodeNameError)
	dns.SetRcode("servfail.test", dnsmessage.RCodeServerFailure)
	dns.SetDrop("slow.test")
	closed := testnet.Closed(t)
	reset := testnet.Reset(t, testnet.ResetAfterRequest)
	silent := testnet.Silent(t)
	parent407 := testnet.NewParent(t, testnet.ParentOptions{Mode: testnet.ParentAuth407, User: "u", Pass: "p"})

	base := proxy.Options{
		DNSServers:            []string{dns.Addr()},
		DNSTimeout:            300 * time.Millisecond,
		ResponseHeaderTimeout: 500 * time.Millisecond,
		Hosts: map[string]netip.Addr{
			"closed.test": netip.MustParseAddr("127.0.0.1"),
			"reset.test":  netip.MustParseAddr("127.0.0.1"),
			"silent.test": netip.MustParseAddr("127.0.0.1"),
		},
	}
	cases := []struct {
		name    string
		url     string
		parent  string
		status  int
		outcome string
		class   string
		fields  map[string]any
	}{
		{name: "ok", url: "http://origin.test:" + op + "/", status: 200, outcome: "ok", class: "ok",
			fields: map[string]any{"upstream_status": 200, "bytes_down": 5, "route": "direct", "method": "GET", "host": "origin.test", "dest_ip": "127.0.0.1"}},
		{name: "http_error", url: "http://origin.test:" + op + "/503", status: 503, outcome: "http_error", class: "failed",
			fields: map[string]any{"upstream_status": 503}},
		{name: "dns_nxdomain", url: "http://nx.test/", status: 502, outcome: "dns_nxdomain", class: "failed",
			fields: map[string]any{"upstream_status": nil}},
		{name: "dns_failure", url: "http://servfail.test/", status: 502, outcome: "dns_failure", class: "failed"},
		{name: "dns_timeout", url: "http://slow.test/", status: 504, outcome: "dns_timeout", class: "failed"},
		{name: "connect_refused", url: "http://closed.test:" + port(closed) + "/", status: 502, outcome: "connect_refused", class: "failed"},
		{name: "connection_reset", url: "http://reset.test:" + port(reset.Addr()) + "/", status: 502, outcome: "connection_reset", class: "failed"},
		{name: "response_timeout", url: "http://silent.test:" + port(silent.Addr()) + "/", status: 504, outcome: "response_timeout", class: "failed"},
		{name: "parent_auth_required", url: "http://origin.test:" + op + "/", parent: "http://" + parent407.Addr(), status: 407, outcome: "parent_auth_required", class: "failed",
			fields: map[string]any{"route": "parent", "parent": parent407.Addr(), "upstream_status": 407}},
		{name: "parent_unreachable", url: "http://origin.test:" + op + "/", parent: "http://" + closed, status: 502, outcome: "parent_unreachable", class: "failed",
			fields: map[string]any{"route": "parent"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := base
			if tc.parent != "" {
				opts.Parent, _ = url.Parse(tc.parent)
			}
			h := newHarness(t, opts)
			resp, err := h.client().Get(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("client status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.outcome != "ok" && tc.outcome != "http_error" && tc.outcome != "parent_auth_required" {
				if got := resp.Header.Get("X-M365tap-Outcome"); got != tc.outcome {
					t.Errorf("X-M365tap-Outcome %q, want %q", got, tc.outcome)
				}
			}
			if tc.outcome == "parent_auth_required" && resp.Header.Get("Proxy-Authenticate") == "" {
				t.Error("parent's Proxy-Authenticate was not passed through")
			}
			ev := h.waitEvents(1)[0]
			want(t, ev, map[string]any{"outcome": tc.outcome, "class": tc.class, "status": tc.status, "msg": "exchange"})
			want(t, ev, tc.fields)
			if tc.outcome != "ok" && ev["error"] == nil {
				t.Errorf("failure event has no error text: %v", ev)
			}
			if ev["level"] != map[bool]string{true: "info", false: "warn"}[tc.outcome == "ok"] {
				t.Errorf("level %v for outcome %s", ev["level"], tc.outcome)
			}
		})
	}
}

// TestPlainParentForwards checks the plain path through a working parent
// with credentials: the parent sees Basic auth, the event says route parent
// and never carries the password.
func TestPlainParentForwards(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "via parent") }))
	t.Cleanup(origin.Close)
	parent := testnet.NewParent(t, testnet.ParentOptions{Mode: testnet.ParentAuth407, User: "alice", Pass: "s3cret"})
	pu, _ := url.Parse("http://alice:s3cret@" + parent.Addr())
	// Credentials in parent.url are the tap's own; they go with client
	// requests only when the tap is told to authenticate for clients.
	h := newHarness(t, proxy.Options{Parent: pu, ParentAuthClients: true})
	resp, err := h.client().Get(origin.URL + "/x?token=abc&keep=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "via parent" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	ev := h.waitEvents(1)[0]
	want(t, ev, map[string]any{"outcome": "ok", "route": "parent", "parent": parent.Addr(), "parent_auth": "tap", "proxy_auth_scheme": "basic"})
	if u := ev["url"].(string); !strings.Contains(u, "token=REDACTED") || !strings.Contains(u, "keep=1") {
		t.Errorf("url not redacted as expected: %s", u)
	}
	for _, line := range h.log.Writes() {
		if strings.Contains(string(line), "s3cret") {
			t.Fatalf("password in log: %s", line)
		}
	}
}

// TestPlainClientAbortMidBody: the client reads part of a streamed body and
// hangs up; the exchange ends as client_aborted, once.
func TestPlainClientAbortMidBody(t *testing.T) {
	release := make(chan struct{})
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10000000")
		w.Write(make([]byte, 64<<10))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); origin.Close() })
	h := newHarness(t, proxy.Options{})
	resp, err := h.client().Get(origin.URL)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadFull(resp.Body, make([]byte, 1000))
	resp.Body.Close()
	ev := h.waitEvents(1)[0]
	want(t, ev, map[string]any{"outcome": "client_aborted", "class": "aborted", "upstream_status": 200})
}

// TestPlainResetMidResponse: the origin resets after the head; the client
// sees a truncated body and the event says connection_reset.
func TestPlainResetMidResponse(t *testing.T) {
	srv := testnet.Reset(t, testnet.ResetMidResponse)
	h := newHarness(t, proxy.Options{})
	resp, err := h.client().Get("http://" + srv.Addr() + "/")
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	ev := h.waitEvents(1)[0]
	want(t, ev, map[string]any{"outcome": "connection_reset", "upstream_status": 200})
}

// TestBadRequests: requests the tap cannot forward get the right status and
// still one event each.
func TestBadRequests(t *testing.T) {
	cases := []struct {
		name, raw string
		status    int
		outcome   string
	}{
		{"garbage request line", "GARBAGE\r\n\r\n", 400, "bad_request"},
		{"origin form", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request"},
		{"bad scheme", "GET ftp://x/ HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request"},
		{"connect port not allowed", "CONNECT example.test:25 HTTP/1.1\r\nHost: example.test:25\r\n\r\n", 403, "denied"},
		{"connect without port", "CONNECT example.test HTTP/1.1\r\nHost: example.test\r\n\r\n", 400, "bad_request"},
		{"huge header", "GET http://x/ HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 80<<10) + "\r\n\r\n", 431, "bad_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, proxy.Options{})
			c, err := net.Dial("tcp", h.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprint(c, tc.raw)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
			}
			c.Close()
			ev := h.waitEvents(1)[0]
			want(t, ev, map[string]any{"outcome": tc.outcome, "status": tc.status})
		})
	}
}

// TestSelfLoopDenied: a request for the tap's own address is refused.
func TestSelfLoopDenied(t *testing.T) {
	h := newHarness(t, proxy.Options{})
	resp, err := h.client().Get("http://" + h.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// The refused request is one event; the tap never served itself.
	want(t, h.waitEvents(1)[0], map[string]any{"outcome": "denied"})
}

// TestClientNotAllowed: a client outside access.allow is refused.
func TestClientNotAllowed(t *testing.T) {
	h := newHarness(t, proxy.Options{Allow: []netip.Prefix{netip.MustParsePrefix("10.9.9.0/24")}})
	resp, err := h.client().Get("http://example.test/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	want(t, h.waitEvents(1)[0], map[string]any{"outcome": "denied", "class": "denied"})
}

// TestSlowRequestHead: a client that never finishes its request head is cut
// off at timeouts.read_header and still leaves one event saying so.
func TestSlowRequestHead(t *testing.T) {
	h := newHarness(t, proxy.Options{ReadHeaderTimeout: 200 * time.Millisecond})
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "GET http://example.test/ HTTP/1.1\r\nHost: exa")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.Copy(io.Discard, c)
	ev := h.waitEvents(1)[0]
	want(t, ev, map[string]any{"outcome": "bad_request"})
	if !strings.Contains(ev["error"].(string), "timeouts.read_header") {
		t.Errorf("error %q does not name the bound", ev["error"])
	}
}

// TestPooledConnectionKeepsDestIP: exchanges on a reused upstream
// connection still name the address they went to.
func TestPooledConnectionKeepsDestIP(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "x") }))
	t.Cleanup(origin.Close)
	h := newHarness(t, proxy.Options{})
	c := h.client()
	c.Transport.(*http.Transport).DisableKeepAlives = false
	for i := 0; i < 2; i++ {
		resp, err := c.Get(origin.URL)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	ev := h.waitEvents(2)
	want(t, ev[0], map[string]any{"dest_ip": "127.0.0.1", "reused": nil})
	want(t, ev[1], map[string]any{"dest_ip": "127.0.0.1", "reused": true, "connect_ms": nil})
}

// TestShutdownInFlightPlain: an exchange that finishes within the grace
// period ends normally; one still waiting when the grace runs out ends as
// shutdown. Both are logged before Shutdown returns.
func TestShutdownInFlightPlain(t *testing.T) {
	release := make(chan struct{})
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/quick" {
			time.Sleep(100 * time.Millisecond)
			io.WriteString(w, "done")
			return
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); origin.Close() })
	h := newHarness(t, proxy.Options{ResponseHeaderTimeout: 10 * time.Second})
	errs := make(chan error, 2)
	for _, p := range []string{"/quick", "/stuck"} {
		go func(p string) {
			resp, err := h.client().Get(origin.URL + p)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			errs <- err
		}(p)
	}
	time.Sleep(50 * time.Millisecond) // both requests reach the origin
	h.shutdown(400 * time.Millisecond)
	ev := h.log.events(t)
	if len(ev) != 2 {
		t.Fatalf("want 2 events when Shutdown returns, got %d", len(ev))
	}
	got := map[string]string{}
	for _, e := range ev {
		got[e["url"].(string)[len(origin.URL):]] = e["outcome"].(string)
	}
	if got["/quick"] != "ok" || got["/stuck"] != "shutdown" {
		t.Fatalf("outcomes %v, want /quick ok and /stuck shutdown", got)
	}
	<-errs
	<-errs
}
