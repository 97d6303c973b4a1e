package proxy_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/m365tap/m365tap/proxy"
)

// TestStreamingUploadChunkedAndContinue: a chunked upload with
// Expect: 100-continue streams through to the origin; the origin sees the
// body, the event counts the bytes, hop-by-hop headers do not travel.
func TestStreamingUploadChunkedAndContinue(t *testing.T) {
	var gotTE []string
	var gotHdr http.Header
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotTE, gotHdr = r.TransferEncoding, r.Header.Clone()
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%d", n)
	}))
	t.Cleanup(origin.Close)
	h := newHarness(t, proxy.Options{})
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < 64; i++ {
			pw.Write(bytes.Repeat([]byte("x"), 1024))
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", origin.URL+"/upload", pr)
	req.Header.Set("Expect", "100-continue")
	req.Header.Set("Connection", "X-Hop")
	req.Header.Set("X-Hop", "must not travel")
	req.Header.Set("Keep-Alive", "timeout=5")
	resp, err := h.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "65536" {
		t.Fatalf("origin read %s bytes", body)
	}
	if len(gotTE) == 0 || gotTE[0] != "chunked" {
		t.Errorf("upload was not streamed chunked: %v", gotTE)
	}
	if gotHdr.Get("X-Hop") != "" || gotHdr.Get("Keep-Alive") != "" {
		t.Errorf("hop-by-hop headers forwarded: %v", gotHdr)
	}
	want(t, h.waitEvents(1)[0], map[string]any{"outcome": "ok", "bytes_up": 65536, "method": "POST"})
}

// TestStreamingDownloadNoBuffering: a chunked response reaches the client
// piece by piece, before the origin has finished.
func TestStreamingDownloadNoBuffering(t *testing.T) {
	next := make(chan struct{})
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first;")
		w.(http.Flusher).Flush()
		<-next
		io.WriteString(w, "second")
	}))
	t.Cleanup(origin.Close)
	h := newHarness(t, proxy.Options{})
	resp, err := h.client().Get(origin.URL)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "first;" {
		t.Fatalf("first piece not delivered before the end: %q %v", buf, err)
	}
	close(next)
	rest, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(rest) != "second" {
		t.Fatalf("rest %q", rest)
	}
	want(t, h.waitEvents(1)[0], map[string]any{"outcome": "ok", "bytes_down": 12})
}

// TestNoTransparentDecompression: a gzip body passes as sent, so byte
// counts are wire bytes.
func TestNoTransparentDecompression(t *testing.T) {
	gz := []byte("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xcbH\xcd\xc9\xc9\x07\x00\x86\xa6\x106\x05\x00\x00\x00")
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept-Encoding") != "gzip" {
			t.Errorf("client's Accept-Encoding not forwarded: %q", r.Header.Get("Accept-Encoding"))
		}
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(gz)
	}))
	t.Cleanup(origin.Close)
	h := newHarness(t, proxy.Options{})
	req, _ := http.NewRequest("GET", origin.URL, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := h.client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(body, gz) {
		t.Fatalf("body changed in transit: %q", body)
	}
	want(t, h.waitEvents(1)[0], map[string]any{"bytes_down": len(gz)})
}

// TestWebSocketUpgrade: an Upgrade handshake and the frames after it pass
// through, and the exchange is logged once when it ends.
func TestWebSocketUpgrade(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "no upgrade header", 400)
			return
		}
		c, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		c.Write([]byte("echo:" + line))
	}))
	t.Cleanup(origin.Close)
	h := newHarness(t, proxy.Options{})
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	u := origin.URL + "/ws"
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", u, strings.TrimPrefix(origin.URL, "http://"))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	c.Write([]byte("hi\n"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, _ := io.ReadAll(br)
	if string(got) != "echo:hi\n" {
		t.Fatalf("frames after upgrade: %q", got)
	}
	c.Close()
	want(t, h.waitEvents(1)[0], map[string]any{"status": 101, "upstream_status": 101})
}

// TestConnectTimeout: an origin whose accept queue is full drops our SYN,
// exactly like a firewall that drops instead of rejecting.
func TestConnectTimeout(t *testing.T) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	// Backlog 0 leaves room for one queued connection; fill it and every
	// later SYN is dropped.
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := syscall.Getsockname(fd)
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	for i := 0; i < 3; i++ {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			t.Cleanup(func() { c.Close() })
		}
	}
	h := newHarness(t, proxy.Options{ConnectTimeout: 300 * time.Millisecond})
	resp, err := h.client().Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 504 {
		t.Errorf("status %d, want 504", resp.StatusCode)
	}
	want(t, h.waitEvents(1)[0], map[string]any{"outcome": "connect_timeout", "status": 504})
}
