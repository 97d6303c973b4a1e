package proxy_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/m365tap/m365tap/proxy"
)

// closingOrigin answers one request per connection, keep-alive in its
// words, and then closes the connection after linger: an origin whose idle
// timeout is shorter than the client's pause. It counts connections.
func closingOrigin(t *testing.T, linger time.Duration) (addr string, conns *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns = new(atomic.Int32)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				r, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				body := r.Method + " " + r.URL.Path
				head := "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
				if r.Method == http.MethodHead {
					body = ""
				}
				io.WriteString(c, head+body)
				time.Sleep(linger)
			}()
		}
	}()
	return ln.Addr().String(), conns
}

// TestPooledConnectionClosedWhileIdle: the origin closes a kept-alive
// connection while it idles in the pool. A client that pauses longer than
// the origin's idle timeout gets its next requests answered through the tap
// exactly as it does without it: GET is sent again on a new connection (as
// net/http's Transport and WinINET do), and a POST without a body never goes
// out on the dead connection.
func TestPooledConnectionClosedWhileIdle(t *testing.T) {
	methods := []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodDelete}
	for _, viaTap := range []bool{false, true} {
		name := "direct"
		if viaTap {
			name = "via tap"
		}
		t.Run(name, func(t *testing.T) {
			addr, conns := closingOrigin(t, 50*time.Millisecond)
			tr := &http.Transport{}
			var h *harness
			if viaTap {
				h = newHarness(t, proxy.Options{})
				tr.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: h.addr})
			}
			t.Cleanup(tr.CloseIdleConnections)
			client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			for _, m := range methods {
				req, _ := http.NewRequest(m, "http://"+addr+"/x", nil)
				resp, err := client.Do(req)
				if err != nil {
					t.Fatalf("%s: %v", m, err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || (m != http.MethodHead && string(b) != m+" /x") {
					t.Fatalf("%s: %d %q", m, resp.StatusCode, b)
				}
				time.Sleep(150 * time.Millisecond) // the origin closes meanwhile
			}
			if got := conns.Load(); got != int32(len(methods)) {
				t.Fatalf("origin saw %d connections, want %d", got, len(methods))
			}
			if !viaTap {
				return
			}
			for i, ev := range h.waitEvents(len(methods)) {
				want(t, ev, map[string]any{"method": methods[i], "outcome": "ok", "status": float64(200), "dest_ip": "127.0.0.1"})
			}
		})
	}
}

// TestPooledConnectionReuse: requests in a row reuse one connection to the
// origin, and concurrent ones use one each, as through the Transport.
func TestPooledConnectionReuse(t *testing.T) {
	var conns atomic.Int32
	origin := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go origin.Serve(ln)
	t.Cleanup(func() { origin.Close() })
	h := newHarness(t, proxy.Options{})
	client := h.client()
	client.Transport.(*http.Transport).DisableKeepAlives = false
	const n = 20
	for range n {
		resp, err := client.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if got := conns.Load(); got != 1 {
		t.Fatalf("origin saw %d connections for %d sequential requests, want 1", got, n)
	}
	ev := h.waitEvents(n)
	reused := 0
	for _, e := range ev {
		if e["reused"] == true {
			reused++
		}
	}
	if reused != n-1 {
		t.Fatalf("%d events say reused, want %d", reused, n-1)
	}
}
