package proxy_test

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/m365tap/m365tap/internal/testnet"
	"github.com/m365tap/m365tap/proxy"
)

// halfCloseOrigin serves the paths the half-close tests ask for.
func halfCloseOrigin(t *testing.T) string {
	origin := testnet.NewHTTPOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wait := func(d time.Duration) bool {
			select {
			case <-time.After(d):
				return true
			case <-r.Context().Done():
				return false
			}
		}
		switch r.URL.Path {
		case "/slow":
			if wait(300 * time.Millisecond) {
				io.WriteString(w, "hello")
			}
		case "/trickle":
			// Eight chunks 100 ms apart: longer in all than the linger,
			// never as long without a byte.
			for i := range 8 {
				if i > 0 && !wait(100*time.Millisecond) {
					return
				}
				io.WriteString(w, "chunk")
				w.(http.Flusher).Flush()
			}
		case "/stall":
			<-r.Context().Done()
		case "/later-stallbody":
			if !wait(200 * time.Millisecond) {
				return
			}
			fallthrough
		case "/stallbody":
			w.Header().Set("Content-Length", "1000000")
			w.Write(make([]byte, 64<<10))
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		default:
			io.WriteString(w, "hello")
		}
	}))
	return origin.Listener.Addr().String()
}

// TestPlainClientHalfClose: a client that sends its request and shuts down
// its write side (CloseWrite) still gets its answer, as any client would:
// the head within timeouts.response_header, however long the origin takes,
// and then the body as long as something reaches it within
// timeouts.tunnel_linger; past that the tap gives up and says why. A client
// that resets is gone at once, as before.
func TestPlainClientHalfClose(t *testing.T) {
	origin := halfCloseOrigin(t)
	const linger, header = 250 * time.Millisecond, time.Second
	cases := []struct {
		path     string
		reset    bool          // the client resets instead of half-closing
		close    bool          // the client closes for good (a FIN) instead of half-closing
		linger   time.Duration // timeouts.tunnel_linger; 0: 250ms
		status   int           // the client's; 0: none
		body     string
		outcome  string
		errHas   string
		maxDurMS float64 // the event's duration_ms at most; 0: any
	}{
		{path: "/", status: 200, body: "hello", outcome: "ok"},
		{path: "/slow", status: 200, body: "hello", outcome: "ok"},
		{path: "/trickle", status: 200, body: strings.Repeat("chunk", 8), outcome: "ok"},
		// No head: timeouts.response_header, as for any client.
		{path: "/stall", status: 504, body: "m365tap: response_timeout\n", outcome: "response_timeout"},
		// The body stops: the client gets what came.
		{path: "/stallbody", status: 200, outcome: "client_aborted",
			errHas: "client half-closed the connection and no response byte reached it within timeouts.tunnel_linger (250ms)"},
		// A reset is not a half-close: no waiting for the origin.
		{path: "/slow", reset: true, outcome: "client_aborted", maxDurMS: 250},
		// A client that closed for good sends the same FIN as a
		// half-close; it shows when the answer comes and meets a reset,
		// long before the linger.
		{path: "/later-stallbody", close: true, linger: time.Minute, outcome: "client_aborted", maxDurMS: 2000},
	}
	for _, tc := range cases {
		name := strings.TrimPrefix(tc.path, "/")
		if tc.reset {
			name += "_reset"
		}
		if tc.close {
			name += "_close"
		}
		t.Run(name, func(t *testing.T) {
			l := linger
			if tc.linger != 0 {
				l = tc.linger
			}
			h := newHarness(t, proxy.Options{TunnelLinger: l, ResponseHeaderTimeout: header})
			c := faultDial(t, h.addr)
			io.WriteString(c, "GET http://"+origin+tc.path+" HTTP/1.1\r\nHost: "+origin+"\r\n\r\n")
			switch {
			case tc.reset:
				time.Sleep(50 * time.Millisecond)
				faultAbort(c)
			case tc.close:
				time.Sleep(50 * time.Millisecond)
				c.Close()
			default:
				c.CloseWrite()
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				status, body := 0, []byte(nil)
				if err == nil {
					status = resp.StatusCode
					body, _ = io.ReadAll(resp.Body)
				}
				if status != tc.status {
					t.Errorf("client got status %d (%v), want %d", status, err, tc.status)
				}
				if tc.body != "" && string(body) != tc.body {
					t.Errorf("client got %q, want %q", body, tc.body)
				}
			}
			ev := h.waitEvents(1)[0]
			want(t, ev, map[string]any{"outcome": tc.outcome})
			if e, _ := ev["error"].(string); !strings.Contains(e, tc.errHas) {
				t.Errorf("error %q, want it to contain %q", e, tc.errHas)
			}
			if d, _ := ev["duration_ms"].(float64); tc.maxDurMS > 0 && d > tc.maxDurMS {
				t.Errorf("duration_ms %v, want at most %v", d, tc.maxDurMS)
			}
		})
	}
}

// TestPlainHalfCloseShutdown: Shutdown ends a half-closed client's request
// that is still waiting for its origin, and its event is written before
// Shutdown returns, though net/http has no request context left to cancel.
func TestPlainHalfCloseShutdown(t *testing.T) {
	origin := halfCloseOrigin(t)
	h := newHarness(t, proxy.Options{TunnelLinger: time.Minute})
	c := faultDial(t, h.addr)
	io.WriteString(c, "GET http://"+origin+"/stall HTTP/1.1\r\nHost: "+origin+"\r\n\r\n")
	c.CloseWrite()
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	h.shutdown(100 * time.Millisecond)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Shutdown took %v", d)
	}
	ev := h.log.events(t)
	if len(ev) != 1 {
		t.Fatalf("%d events when Shutdown returned, want 1: %v", len(ev), ev)
	}
	want(t, ev[0], map[string]any{"outcome": "shutdown"})
}
