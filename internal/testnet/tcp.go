package testnet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Server is a raw TCP fixture on loopback: Blackhole, Silent, Reset, Echo,
// Sink, Source and Serve differ only in what they do with each accepted
// connection. Its counters let a test check what reached the far side of
// the proxy under test.
type Server struct {
	ln     net.Listener
	handle func(*Server, *net.TCPConn)
	done   chan struct{} // closed at cleanup; handlers that hold a conn wait on it

	accepted atomic.Int64
	received atomic.Int64
	sent     atomic.Int64

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func newServer(t testing.TB, kind string, handle func(*Server, *net.TCPConn)) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testnet: %s: listen: %v", kind, err)
	}
	s := &Server{
		ln:     ln,
		handle: handle,
		done:   make(chan struct{}),
		conns:  make(map[net.Conn]struct{}),
	}
	s.wg.Add(1)
	go s.acceptLoop()
	t.Cleanup(s.close)
	return s
}

// Addr is the host:port the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Accepted is the number of connections the server has accepted.
func (s *Server) Accepted() int { return int(s.accepted.Load()) }

// Bytes is the number of bytes the server has read from clients, over all
// connections. For Sink it is everything that arrived; for Blackhole it
// stays zero, because a blackhole never reads.
func (s *Server) Bytes() int64 { return s.received.Load() }

// Sent is the number of bytes the server has written to clients.
func (s *Server) Sent() int64 { return s.sent.Load() }

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			// The listener only fails for good once it is closed; anything
			// else (EMFILE, ECONNABORTED) is worth another try after a pause
			// rather than a silent end to the fixture.
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-s.done:
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		s.accepted.Add(1)
		if !s.track(c) {
			return
		}
		go func() {
			defer s.wg.Done()
			defer s.untrack(c)
			s.handle(s, c.(*net.TCPConn))
		}()
	}
}

// track registers c so cleanup can close it, and reserves a slot in the
// WaitGroup under the same lock that cleanup takes, so no handler starts
// after cleanup has begun waiting.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = c.Close()
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	_ = c.Close()
}

func (s *Server) close() {
	s.mu.Lock()
	s.closed = true
	conns := make([]net.Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	close(s.done)
	_ = s.ln.Close()
	for _, c := range conns {
		_ = c.Close()
	}
	s.wg.Wait()
}

// read and write count what crosses the socket; handlers use them instead
// of the conn so the counters cover every byte.
func (s *Server) read(c net.Conn, p []byte) (int, error) {
	n, err := c.Read(p)
	s.received.Add(int64(n))
	return n, err
}

func (s *Server) write(c net.Conn, p []byte) (int, error) {
	n, err := c.Write(p)
	s.sent.Add(int64(n))
	return n, err
}

// drain reads and discards until EOF or error.
func (s *Server) drain(c net.Conn) error {
	buf := make([]byte, 32<<10)
	for {
		if _, err := s.read(c, buf); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// requestLimit bounds how much readRequest takes in before giving up on
// finding the end of a header.
const requestLimit = 64 << 10

// requestSettle is how long readRequest waits for more bytes once some have
// arrived. Loopback delivers a client's first flight in well under this, and
// a non-HTTP first flight (a TLS ClientHello through a tunnel) has no blank
// line to wait for.
const requestSettle = 50 * time.Millisecond

// readRequest consumes a client's first flight: an HTTP request head, or
// whatever arrives before the client pauses. Resetting only after the
// client has finished writing makes its error land on the read of the
// response, the same phase every run.
func (s *Server) readRequest(c net.Conn) {
	var got []byte
	buf := make([]byte, 4096)
	for len(got) < requestLimit {
		n, err := s.read(c, buf)
		got = append(got, buf[:n]...)
		if err != nil || bytes.Contains(got, []byte("\r\n\r\n")) {
			break
		}
		_ = c.SetReadDeadline(time.Now().Add(requestSettle))
	}
	_ = c.SetReadDeadline(time.Time{})
}

// reset aborts c with a TCP RST instead of a FIN: SO_LINGER with a zero
// timeout makes close(2) discard the connection (RFC 9293 section 3.10.5,
// "abort"), so the peer sees ECONNRESET rather than a clean EOF.
func reset(c *net.TCPConn) {
	_ = c.SetLinger(0)
	_ = c.Close()
}

// Closed returns a loopback address on which nothing listens: a dial to it
// is refused at once with ECONNREFUSED.
//
// A port that is merely bound and released could be handed to the next
// listener in the same test binary. Instead the port is kept as the local
// end of an idle loopback connection for the life of the test: the kernel
// will not give it to a listener (the client socket has no SO_REUSEADDR),
// and as no socket listens on it, connection attempts are refused.
func Closed(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testnet: closed: listen: %v", err)
	}
	type result struct {
		c   net.Conn
		err error
	}
	accepted := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		accepted <- result{c, err}
	}()
	client, dialErr := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if dialErr != nil {
		// Without a client, the Accept above only ends when the listener
		// closes; with one, closing first would reset the queued connection.
		_ = ln.Close()
	}
	server := <-accepted
	_ = ln.Close()
	if dialErr != nil || server.err != nil {
		if client != nil {
			_ = client.Close()
		}
		if server.c != nil {
			_ = server.c.Close()
		}
		t.Fatalf("testnet: closed: hold port: dial: %v, accept: %v", dialErr, server.err)
	}
	t.Cleanup(func() {
		_ = client.Close()
		_ = server.c.Close()
	})
	return client.LocalAddr().String()
}

// Blackhole starts a server that accepts connections and then neither reads
// nor writes until cleanup: the peer's connect succeeds and everything after
// it (a TLS handshake, a request, a CONNECT) waits forever. It is how a
// firewall that drops packets after the handshake looks from the client.
func Blackhole(t testing.TB) *Server {
	t.Helper()
	return newServer(t, "blackhole", func(s *Server, _ *net.TCPConn) {
		<-s.done
	})
}

// Silent starts a server that accepts, reads everything the client sends
// and never answers, so a client waits for a response that never comes.
// Unlike Blackhole, a large request body does not stall in the client's
// send buffer: the wait is for the response, not for the upload.
func Silent(t testing.TB) *Server {
	t.Helper()
	return newServer(t, "silent", func(s *Server, c *net.TCPConn) {
		_ = s.drain(c)
		<-s.done
	})
}

// ResetMode says when a Reset server aborts its connections.
type ResetMode int

const (
	// ResetOnAccept aborts each connection as soon as it is accepted, before
	// reading anything. The kernel completes the handshake before accept,
	// so the client never sees ECONNREFUSED; it sees ECONNRESET from connect
	// itself (when the RST beats the runtime to the connect completion) or
	// from its first read, or EPIPE from a write after the RST.
	ResetOnAccept ResetMode = iota
	// ResetAfterRequest reads the client's first flight (an HTTP request
	// head, or whatever arrives before the client pauses) and then aborts.
	ResetAfterRequest
	// ResetMidResponse reads the request, writes a valid HTTP/1.1 200 head
	// announcing a 100000-byte body and MidResponseBodyBytes bytes of that
	// body, then aborts.
	ResetMidResponse
)

// MidResponseBodyBytes is how much body ResetMidResponse sends before the
// reset, so a test can check how far the client got.
const MidResponseBodyBytes = 1024

const midResponseHead = "HTTP/1.1 200 OK\r\n" +
	"Content-Type: application/octet-stream\r\n" +
	"Content-Length: 100000\r\n" +
	"\r\n"

// midResponseLinger holds the RST back until the client has had time to
// take the head and partial body off its receive queue. Linux delivers data
// queued before a RST, but not every TCP stack does, and without the pause
// such a client would see ResetAfterRequest instead.
const midResponseLinger = 50 * time.Millisecond

// String names the mode as it reads in a test name.
func (m ResetMode) String() string {
	switch m {
	case ResetOnAccept:
		return "reset_on_accept"
	case ResetAfterRequest:
		return "reset_after_request"
	case ResetMidResponse:
		return "reset_mid_response"
	default:
		return fmt.Sprintf("ResetMode(%d)", int(m))
	}
}

// Reset starts a server that aborts every connection with a TCP RST at the
// point mode names.
func Reset(t testing.TB, mode ResetMode) *Server {
	t.Helper()
	switch mode {
	case ResetOnAccept, ResetAfterRequest, ResetMidResponse:
	default:
		t.Fatalf("testnet: reset: unknown mode %v", mode)
	}
	return newServer(t, mode.String(), func(s *Server, c *net.TCPConn) {
		if mode == ResetOnAccept {
			reset(c)
			return
		}
		s.readRequest(c)
		if mode == ResetMidResponse {
			resp := make([]byte, 0, len(midResponseHead)+MidResponseBodyBytes)
			resp = append(resp, midResponseHead...)
			resp = append(resp, pattern(MidResponseBodyBytes)...)
			if _, err := s.write(c, resp); err == nil {
				select {
				case <-time.After(midResponseLinger):
				case <-s.done:
				}
			}
		}
		reset(c)
	})
}

// Echo starts a server that writes back everything it reads and honours
// half-close: when the client shuts down its write side, the server
// finishes echoing, then shuts down its own (CloseWrite), so the client
// reads every echoed byte followed by EOF. This is the behaviour a CONNECT
// tunnel must preserve end to end.
func Echo(t testing.TB) *Server {
	t.Helper()
	return newServer(t, "echo", func(s *Server, c *net.TCPConn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := s.read(c, buf)
			if n > 0 {
				if _, werr := s.write(c, buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					_ = c.CloseWrite()
				}
				return
			}
		}
	})
}

// Sink starts a server that reads and discards everything, counting it in
// Bytes, and closes each connection when the client has finished sending.
func Sink(t testing.TB) *Server {
	t.Helper()
	return newServer(t, "sink", func(s *Server, c *net.TCPConn) {
		_ = s.drain(c)
	})
}

// Source starts a server that writes n bytes of Pattern to every
// connection and then shuts down its write side, so the client reads
// exactly n bytes and EOF. It keeps reading until the client closes:
// closing with unread input would send a RST and could destroy the tail of
// the data in flight.
func Source(t testing.TB, n int64) *Server {
	t.Helper()
	if n < 0 {
		t.Fatalf("testnet: source: negative length %d", n)
	}
	return newServer(t, "source", func(s *Server, c *net.TCPConn) {
		// A whole number of periods, so the chunks join into one unbroken
		// Pattern.
		chunk := pattern(patternPeriod * 128)
		for left := n; left > 0; {
			m := min(left, int64(len(chunk)))
			if _, err := s.write(c, chunk[:m]); err != nil {
				return
			}
			left -= m
		}
		_ = c.CloseWrite()
		_ = s.drain(c)
	})
}

// Serve starts a server that runs handle on each connection, for a peer
// none of the others is: a parent or origin that answers what no real one
// would, or one a test watches connection by connection. The connection is
// closed when handle returns, and at cleanup, which waits for every
// handle to return: handle must return once its connection is closed. Bytes and Sent stay zero: handle has the connection
// itself, not the counting helpers. Nothing is logged through t, so a
// fuzz target may use it from its *testing.F.
func Serve(t testing.TB, handle func(c *net.TCPConn)) *Server {
	t.Helper()
	return newServer(t, "serve", func(_ *Server, c *net.TCPConn) { handle(c) })
}

// patternPeriod is prime and not a power of two, so a slice that is
// dropped, duplicated or shifted by a buffer-sized amount shows up as a
// mismatch.
const patternPeriod = 251

// Pattern returns the first n bytes Source writes and ResetMidResponse sends
// as body: byte i is i mod 251.
func Pattern(n int) []byte { return pattern(n) }

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % patternPeriod)
	}
	return b
}

// ListenWellKnown listens on a well-known port (80, 443) of a random 127/8
// address, so that Microsoft names mapped there by hosts overrides still
// match rules that list only those ports. Binding below 1024 needs root
// (CI runs as root); without it the test is skipped.
func ListenWellKnown(t testing.TB, port uint16) net.Listener {
	t.Helper()
	for range 20 {
		ip := netip.AddrFrom4([4]byte{127, byte(1 + rand.IntN(250)), byte(rand.IntN(256)), byte(2 + rand.IntN(250))})
		ln, err := net.Listen("tcp", netip.AddrPortFrom(ip, port).String())
		if err == nil {
			return ln
		}
		if errors.Is(err, syscall.EACCES) {
			t.Skip("binding a port below 1024 needs root")
		}
	}
	t.Fatalf("no free 127/8 address for port %d", port)
	return nil
}
