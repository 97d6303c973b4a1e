package proxy_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/m365tap/m365tap/internal/testnet"
	"github.com/m365tap/m365tap/proxy"
)

// outcomeRow is the row of docs/events.md's outcome table for outcome.
func outcomeRow(t *testing.T, outcome string) string {
	t.Helper()
	doc, err := os.ReadFile("../docs/events.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?m)^\\| `" + regexp.QuoteMeta(outcome) + "` \\| .*$").Find(doc)
	if m == nil {
		t.Fatalf("docs/events.md has no row for outcome %q", outcome)
	}
	return string(m)
}

// TestIdleTunnelIsNotTLSFailure: a CONNECT to a required endpoint whose
// client sends nothing until timeouts.tunnel_idle closes the tunnel never
// showed a ClientHello; it is client_aborted, as docs/events.md's tunnel
// rule 2 says, with no article cause, not a tls_failure of the endpoint.
func TestIdleTunnelIsNotTLSFailure(t *testing.T) {
	ln := testnet.ListenWellKnown(t, 443)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// A TLS server: it waits for the ClientHello.
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	h := newHarness(t, proxy.Options{Hosts: map[string]netip.Addr{"login.microsoftonline.com": addrOf(t, ln.Addr().String())},
		AllowPorts: []int{443}, TunnelIdle: 300 * time.Millisecond})
	c, resp, br := rawConnect(t, h.addr, "login.microsoftonline.com:443", nil)
	if resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err == nil || isTimeoutErr(err) {
		t.Fatalf("the tap did not close the idle tunnel: %v", err)
	}
	ev := h.waitEvents(1)[0]
	want(t, ev, map[string]any{"outcome": "client_aborted", "class": "aborted", "bytes_up": 0, "status": 200})
	if ev["rule_id"] == nil {
		t.Errorf("the required endpoint was not recognised: %v", ev)
	}
	if ev["cause_id"] != nil {
		t.Errorf("cause %v for a tunnel the client never used", ev["cause_id"])
	}
	if e, _ := ev["error"].(string); !strings.Contains(e, "timeouts.tunnel_idle") {
		t.Errorf("error %q does not name the bound", e)
	}
	if row := outcomeRow(t, "client_aborted"); !strings.Contains(row, "timeouts.tunnel_idle") {
		t.Errorf("docs/events.md's client_aborted row does not mention the idle bound: %s", row)
	}
}

func isTimeoutErr(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestDocumentedRequestEdges: the cases where the docs and the code once
// disagreed (issue 15, point 6) end with the outcome and client status
// docs/events.md gives them, and the docs' row for that outcome describes
// the case (and no other row does).
func TestDocumentedRequestEdges(t *testing.T) {
	origin := testnet.NewHTTPOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	}))
	originAddr := origin.Listener.Addr().String()
	opts := func() proxy.Options {
		return proxy.Options{AllowPorts: []int{mustPort(originAddr)}, ReadHeaderTimeout: 400 * time.Millisecond}
	}
	// answer reads what the tap sends back until it closes (or 5 s).
	answer := func(c net.Conn) string {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, _ := io.ReadAll(c)
		return string(b)
	}
	cases := []struct {
		name    string
		send    func(c net.Conn)
		status  int    // what the client gets; 0: nothing
		outcome string // the event's
		phrase  string // in the docs' row of outcome, and of no other row
	}{
		{"partial head, then silence", func(c net.Conn) {
			io.WriteString(c, "GET http://"+originAddr+"/ HTTP/1.1\r\nHost: "+originAddr+"\r\n")
		}, 0, "bad_request", "nothing more within `timeouts.read_header`"},
		{"partial header fields, then close", func(c net.Conn) {
			io.WriteString(c, "GET http://"+originAddr+"/ HTTP/1.1\r\nHost: "+originAddr+"\r\n")
			c.(*net.TCPConn).CloseWrite()
		}, 400, "bad_request", "in the middle of a request head"},
		{"partial header fields, then reset", func(c net.Conn) {
			io.WriteString(c, "GET http://"+originAddr+"/ HTTP/1.1\r\nHost: "+originAddr+"\r\n")
			time.Sleep(100 * time.Millisecond) // read by the tap before the reset
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}, 0, "bad_request", "in the middle of a request head"},
		{"partial request line, then close", func(c net.Conn) {
			io.WriteString(c, "GET http://"+originAddr+"/ HT")
			c.(*net.TCPConn).CloseWrite()
		}, 400, "bad_request", "in the middle of a request head"},
		{"malformed chunked upload", func(c net.Conn) {
			io.WriteString(c, "POST http://"+originAddr+"/ HTTP/1.1\r\nHost: "+originAddr+"\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n")
		}, 400, "bad_request", "malformed chunked encoding"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, opts())
			c, err := net.Dial("tcp", h.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			tc.send(c)
			got := answer(c)
			status := 0
			if resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(got)), nil); err == nil {
				status = resp.StatusCode
			}
			if status != tc.status {
				t.Errorf("client got status %d, want %d: %q", status, tc.status, got)
			}
			ev := h.waitEvents(1)[0]
			want(t, ev, map[string]any{"outcome": tc.outcome})
			if tc.status != 0 {
				want(t, ev, map[string]any{"status": tc.status})
			}
			if row := outcomeRow(t, tc.outcome); !strings.Contains(row, tc.phrase) {
				t.Errorf("docs/events.md's %s row does not say %q: %s", tc.outcome, tc.phrase, row)
			}
			for _, other := range []string{"ok", "client_aborted", "bad_request", "connection_reset", "shutdown"} {
				if other != tc.outcome && strings.Contains(outcomeRow(t, other), tc.phrase) {
					t.Errorf("docs/events.md's %s row also claims %q", other, tc.phrase)
				}
			}
		})
	}
}

// TestHeaderLimitAsDocumented: a request head of exactly the size
// docs/events.md gives as the limit is served; one byte more is refused
// with 431 and a bad_request event.
func TestHeaderLimitAsDocumented(t *testing.T) {
	m := regexp.MustCompile("a head over ([0-9,]+) bytes").FindStringSubmatch(outcomeRow(t, "bad_request"))
	if m == nil {
		t.Fatal("docs/events.md's bad_request row gives no head limit in bytes")
	}
	limit, err := strconv.Atoi(strings.ReplaceAll(m[1], ",", ""))
	if err != nil {
		t.Fatal(err)
	}
	origin := testnet.NewHTTPOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	originAddr := origin.Listener.Addr().String()
	h := newHarness(t, proxy.Options{AllowPorts: []int{mustPort(originAddr)}})
	head := func(size int) string {
		start := "GET http://" + originAddr + "/ HTTP/1.1\r\nHost: " + originAddr + "\r\nConnection: close\r\nX-Pad: "
		end := "\r\n\r\n"
		return start + strings.Repeat("a", size-len(start)-len(end)) + end
	}
	for i, tc := range []struct {
		size    int
		status  int
		outcome string
	}{{limit, 200, "ok"}, {limit + 1, 431, "bad_request"}} {
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		req := head(tc.size)
		if len(req) != tc.size {
			t.Fatalf("head of %d bytes, want %d", len(req), tc.size)
		}
		io.WriteString(c, req)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%d bytes: %v", tc.size, err)
		}
		resp.Body.Close()
		c.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("a head of %d bytes: status %d, want %d", tc.size, resp.StatusCode, tc.status)
		}
		want(t, h.waitEvents(i + 1)[i], map[string]any{"outcome": tc.outcome})
	}
}
