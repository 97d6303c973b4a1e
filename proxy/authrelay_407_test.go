package proxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// testRelay407AsSent: the parent's 407 reaches the client as the parent
// sent it: status line, every Proxy-Authenticate value in its order, the
// body (Squid's error page) and keep-alive, so the client can answer on the
// same connection. Compared byte for byte with the same request straight
// to Squid, but for the time Squid writes into the page.
func testRelay407AsSent(t *testing.T, e *arEnv) {
	target, _ := url.Parse(e.secure.URL)
	for _, tc := range []struct {
		name string
		req  string
	}{
		{"GET", "GET " + e.plain.URL + "/as-sent HTTP/1.1\r\nHost: " + strings.TrimPrefix(e.plain.URL, "http://") + "\r\n\r\n"},
		{"CONNECT", "CONNECT " + target.Host + " HTTP/1.1\r\nHost: " + target.Host + "\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			direct := twice407(t, e.squid.Addr, tc.req)
			h := e.tap(t, nil)
			through := twice407(t, h.addr, tc.req)
			if direct != through {
				t.Errorf("the 407 differs:\n%s", lineDiff(direct, through))
			}
		})
	}
}

// squidTimes are the parts of Squid's answer that change from one request
// to the next: the Date header and the time on its error page.
var squidTimes = regexp.MustCompile(`(?m)^Date: .*$|[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT`)

// twice407 sends req twice on one connection and returns what came back
// for both, with the times blanked: the second answer proves the
// connection stayed open.
func twice407(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	var b strings.Builder
	for i := range 2 {
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer %d: %v (so far: %s)", i, err, b.String())
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("answer %d body: %v", i, err)
		}
		if resp.StatusCode != http.StatusProxyAuthRequired {
			t.Fatalf("answer %d: %s, want 407", i, resp.Status)
		}
		fmt.Fprintf(&b, "%s %s\n", resp.Proto, resp.Status)
		// Connection is hop-by-hop: what must match is whether the
		// connection stays open (close=), which the second answer proves.
		for _, k := range []string{"Proxy-Authenticate", "Content-Type", "Content-Length", "X-Squid-Error"} {
			for _, v := range resp.Header.Values(k) {
				fmt.Fprintf(&b, "%s: %s\n", k, v)
			}
		}
		fmt.Fprintf(&b, "close=%v\n%s\n", resp.Close, body)
	}
	return squidTimes.ReplaceAllString(b.String(), "<time>")
}

// lineDiff lists the lines that differ, "-" straight to Squid, "+"
// through the tap.
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out strings.Builder
	for i := range max(len(al), len(bl)) {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			fmt.Fprintf(&out, "line %d\n- %s\n+ %s\n", i+1, x, y)
		}
	}
	return out.String()
}
