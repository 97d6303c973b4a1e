package testnet

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// noProxyClient is a plain client that never consults the environment's
// proxy settings, so a test cannot leave loopback by accident.
func noProxyClient(t *testing.T, timeout time.Duration) *http.Client {
	t.Helper()
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: timeout}
}

func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	must(t, err)
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isReset accepts both faces of a RST: ECONNRESET on connect or read, and
// EPIPE on a write made after it arrived.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func TestClosedRefuses(t *testing.T) {
	t.Parallel()
	addr := Closed(t)
	for range 3 {
		start := time.Now()
		_, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("dial %s: %v, want ECONNREFUSED", addr, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("refusal took %v, want it immediate", d)
		}
	}
	// The port stays reserved: nothing else in the binary can listen on it.
	if ln, err := net.Listen("tcp", addr); err == nil {
		ln.Close()
		t.Errorf("listen on %s succeeded, want the port held", addr)
	}
}

func TestBlackholeNeverAnswers(t *testing.T) {
	t.Parallel()
	s := Blackhole(t)

	t.Run("raw read times out", func(t *testing.T) {
		c := dial(t, s.Addr())
		_, err := c.Write([]byte("hello"))
		must(t, err)
		must(t, c.SetReadDeadline(time.Now().Add(100*time.Millisecond)))
		if _, err := c.Read(make([]byte, 1)); !isTimeout(err) {
			t.Fatalf("read: %v, want a timeout", err)
		}
	})
	t.Run("TLS handshake times out", func(t *testing.T) {
		d := &net.Dialer{Timeout: 5 * time.Second, Deadline: time.Now().Add(150 * time.Millisecond)}
		_, err := tls.DialWithDialer(d, "tcp", s.Addr(), &tls.Config{ServerName: "login.test"})
		if !isTimeout(err) {
			t.Fatalf("handshake: %v, want a timeout", err)
		}
	})
	// The kernel completes a handshake before the fixture accepts it.
	WaitFor(t, func() bool { return s.Accepted() == 2 }, 5*time.Second)
	if s.Bytes() != 0 || s.Sent() != 0 {
		t.Errorf("Bytes() = %d, Sent() = %d, want a blackhole to neither read nor write", s.Bytes(), s.Sent())
	}
}

func TestSilentReadsButNeverAnswers(t *testing.T) {
	t.Parallel()
	s := Silent(t)

	c := dial(t, s.Addr())
	req := "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
	_, err := io.WriteString(c, req)
	must(t, err)
	WaitFor(t, func() bool { return s.Bytes() == int64(len(req)) }, 5*time.Second)
	must(t, c.SetReadDeadline(time.Now().Add(100*time.Millisecond)))
	if _, err := c.Read(make([]byte, 1)); !isTimeout(err) {
		t.Fatalf("read: %v, want a timeout", err)
	}

	if _, err := noProxyClient(t, 200*time.Millisecond).Get("http://" + s.Addr() + "/"); !isTimeout(err) {
		t.Fatalf("GET: %v, want a timeout", err)
	}
	if s.Sent() != 0 {
		t.Errorf("Sent() = %d, want 0", s.Sent())
	}
}

func TestResetModes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode ResetMode
		// wantHead: the client gets a 200 head before the reset.
		wantHead bool
	}{
		{ResetOnAccept, false},
		{ResetAfterRequest, false},
		{ResetMidResponse, true},
	}
	for _, tc := range tests {
		t.Run(tc.mode.String(), func(t *testing.T) {
			t.Parallel()
			s := Reset(t, tc.mode)
			resp, err := noProxyClient(t, 5*time.Second).Get("http://" + s.Addr() + "/")
			if !tc.wantHead {
				if !isReset(err) {
					t.Fatalf("GET: %v, want ECONNRESET or EPIPE", err)
				}
				return
			}
			must(t, err)
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.ContentLength != 100000 {
				t.Fatalf("head = %d with length %d, want 200 with 100000", resp.StatusCode, resp.ContentLength)
			}
			body, err := io.ReadAll(resp.Body)
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("body read: %v, want ECONNRESET", err)
			}
			if !bytes.Equal(body, Pattern(MidResponseBodyBytes)) {
				t.Errorf("got %d body bytes before the reset, want %d of Pattern", len(body), MidResponseBodyBytes)
			}
		})
	}

	t.Run("after request reads the request first", func(t *testing.T) {
		t.Parallel()
		s := Reset(t, ResetAfterRequest)
		c := dial(t, s.Addr())
		req := "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
		_, err := c.Write([]byte(req))
		must(t, err)
		must(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("read: %v, want ECONNRESET", err)
		}
		if s.Bytes() != int64(len(req)) {
			t.Errorf("Bytes() = %d, want the %d-byte request", s.Bytes(), len(req))
		}
	})

	t.Run("after request without a blank line", func(t *testing.T) {
		t.Parallel()
		// A TLS ClientHello has no blank line; the server still resets once
		// the client pauses.
		s := Reset(t, ResetAfterRequest)
		d := &net.Dialer{Timeout: 5 * time.Second, Deadline: time.Now().Add(5 * time.Second)}
		_, err := tls.DialWithDialer(d, "tcp", s.Addr(), &tls.Config{ServerName: "login.test"})
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("handshake: %v, want ECONNRESET", err)
		}
	})
}

func TestEchoHonoursHalfClose(t *testing.T) {
	t.Parallel()
	s := Echo(t)
	payload := Pattern(200 << 10) // larger than socket buffers, so echo and upload overlap
	c := dial(t, s.Addr())
	must(t, c.SetDeadline(time.Now().Add(10*time.Second)))

	writeErr := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		if err == nil {
			err = c.CloseWrite()
		}
		writeErr <- err
	}()
	got, err := io.ReadAll(c)
	must(t, err)
	must(t, <-writeErr)
	if !bytes.Equal(got, payload) {
		t.Fatalf("echoed %d bytes, want the %d sent, unchanged", len(got), len(payload))
	}
	WaitFor(t, func() bool { return s.Bytes() == int64(len(payload)) && s.Sent() == int64(len(payload)) }, 5*time.Second)
}

func TestSinkCounts(t *testing.T) {
	t.Parallel()
	s := Sink(t)
	const n = 300 << 10
	for range 2 {
		c := dial(t, s.Addr())
		_, err := c.Write(make([]byte, n))
		must(t, err)
		must(t, c.CloseWrite())
		// The sink closes once it has everything.
		must(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("read after upload: %v, want EOF", err)
		}
	}
	if s.Bytes() != 2*n || s.Accepted() != 2 {
		t.Errorf("Bytes() = %d over %d connections, want %d over 2", s.Bytes(), s.Accepted(), 2*n)
	}
}

func TestSourceWritesExactly(t *testing.T) {
	t.Parallel()
	for _, n := range []int64{0, 1, 251, 1 << 20} {
		s := Source(t, n)
		c := dial(t, s.Addr())
		must(t, c.SetDeadline(time.Now().Add(10*time.Second)))
		got, err := io.ReadAll(bufio.NewReader(c))
		must(t, err)
		if !bytes.Equal(got, Pattern(int(n))) {
			t.Errorf("Source(%d): read %d bytes, want %d of Pattern", n, len(got), n)
		}
	}
}

func TestFreeAddrIsListenable(t *testing.T) {
	t.Parallel()
	addr := FreeAddr(t)
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		// Another test took it between reservation and use; that is the
		// documented risk, not a failure of FreeAddr.
		t.Skip(err)
	}
	must(t, err)
	ln.Close()
}

func TestWaitFor(t *testing.T) {
	t.Parallel()
	start := time.Now()
	WaitFor(t, func() bool { return time.Since(start) > 30*time.Millisecond }, time.Second)

	ft := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		WaitFor(ft, func() bool { return false }, 20*time.Millisecond)
	}()
	<-done
	if !ft.failed {
		t.Error("WaitFor did not fail on a condition that never held")
	}
}

// fatalRecorder records Fatalf instead of ending the test, so WaitFor's
// failure path can be observed.
type fatalRecorder struct {
	testing.TB
	failed bool
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(string, ...any) {
	f.failed = true
	runtime.Goexit()
}
