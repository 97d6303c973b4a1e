package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/m365tap/m365tap/internal/winetest"
)

// TestWineEndToEnd runs the tap's Windows build under wine as a user would
// on the PC itself: it forwards a request, logs a refused connection as
// connect_refused and a reset as connection_reset (Windows' own socket
// codes, issue 12), and on SIGINT (wine's Ctrl-C) it exits 0 with the log
// flushed: start, the exchanges, the session report, stop. What wine
// cannot show (Ctrl-Break, closing the console window) is listed in the
// README as checked on Windows only.
func TestWineEndToEnd(t *testing.T) {
	p := winetest.Open(t)
	exe := winetest.BuildWindows(t, ".")

	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "origin hello") }))
	t.Cleanup(origin.Close)
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	refusedAddr := closed.Addr().String()
	closed.Close()
	resetter, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resetter.Close() })
	go func() {
		for {
			c, err := resetter.Accept()
			if err != nil {
				return
			}
			c.Read(make([]byte, 4096))
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}()

	cmd := p.Command(exe)
	cmd.Env = p.Env("M365TAP_LISTEN=127.0.0.1:0")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	addr := waitListening(t, stderr)
	proxyURL, _ := url.Parse("http://" + addr)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}, Timeout: 20 * time.Second}

	for _, tc := range []struct {
		url     string
		status  int
		outcome string
	}{
		{origin.URL + "/", 200, ""},
		{"http://" + refusedAddr + "/", 502, "connect_refused"},
		{"http://" + resetter.Addr().String() + "/", 502, "connection_reset"},
	} {
		resp, err := client.Get(tc.url)
		if err != nil {
			t.Fatalf("GET %s through the tap: %v", tc.url, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || resp.Header.Get("X-M365tap-Outcome") != tc.outcome {
			t.Errorf("GET %s: %d %q (outcome header %q), want %d %q", tc.url, resp.StatusCode, body,
				resp.Header.Get("X-M365tap-Outcome"), tc.status, tc.outcome)
		}
	}

	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("tap under wine did not exit 0 on SIGINT: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("tap under wine did not exit within 30 s of SIGINT")
	}
	var msgs, outcomes []string
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("stdout line is not JSON: %q", line)
		}
		msgs = append(msgs, m["msg"].(string))
		if o, ok := m["outcome"].(string); ok {
			outcomes = append(outcomes, o)
		}
	}
	if got := strings.Join(msgs, ","); got != "start,exchange,exchange,exchange,report,stop" {
		t.Errorf("records %s, want start, three exchanges, report, stop (flushed on exit)", got)
	}
	if got := strings.Join(outcomes, ","); got != "ok,connect_refused,connection_reset" {
		t.Errorf("outcomes %s, want ok, connect_refused, connection_reset", got)
	}
}
