// Package upstream speaks HTTP/1.1 on connections its caller owns, on the
// tap's own goroutine. It exists for the exchanges net/http's Transport
// cannot carry faithfully, and for the common one it carries at too high a
// cost:
//
//   - To a parent proxy, for exchanges whose proxy authentication is bound
//     to the connection (NTLM, Negotiate) or must reach the parent
//     unchanged: the next leg of a handshake has to go out on the very
//     connection that answered 407, and that connection must never serve
//     anybody else. A Conn writes a CONNECT with the client's own headers,
//     or a plain request with Expect: 100-continue honoured; reads the
//     parent's answer; and reads a 407's body to its end, so the connection
//     stays usable for the next leg as the parent meant it. Handshake runs
//     the tap's own authentication (proxyauth.Client) over the same calls.
//   - To an origin or an anonymous parent, for plain requests without a
//     body: a Pool keeps idle connections per destination, and Send writes
//     the request and reads the answer without the Transport's two
//     goroutines per connection (see Pool).
//
// The package knows nothing of exchanges, logs or configuration: the proxy
// package decides which client connection a Conn belongs to (pinning), when
// it closes, and what each outcome means.
package upstream

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// MaxErrorBody bounds the body of a non-200 answer to CONNECT that is read
// into memory to be relayed. Parents' 407 and 403 pages are a few KiB; a
// longer one is cut and the connection is not reused.
const MaxErrorBody = 256 << 10

// ErrBodyNotSent is the error a request body's upload ends with when the
// parent gave its final answer before asking for the body (Expect:
// 100-continue): the connection cannot carry another request.
var ErrBodyNotSent = errors.New("upstream: parent answered before the request body was sent")

// Conn is one connection to the parent proxy. It is not safe for concurrent
// use: one exchange at a time, as on the client connection it belongs to.
type Conn struct {
	tcp *net.TCPConn
	br  *bufio.Reader
	bw  *bufio.Writer

	// usable is false once the connection cannot carry another request:
	// the parent asked to close, a body was cut, or an I/O error happened.
	usable bool
	// inUse is true while a response body is still being read.
	inUse bool
	// Legs counts the 407 answers this connection carried, for the
	// exchange that finally succeeds or fails on it.
	Legs int

	// A pooled connection (Pool.New) knows its pool and key; the rest is
	// the pool's bookkeeping, under the pool's lock.
	pool      *Pool
	key       PoolKey
	idle      bool
	since     time.Time
	timer     *time.Timer
	served    int
	aborted   atomic.Bool
	stopWatch func() bool // ends Send's watch of its context
}

func newWriter(c net.Conn) *bufio.Writer { return bufio.NewWriterSize(c, 4096) }

// NewConn wraps a connection to the parent.
func NewConn(c *net.TCPConn) *Conn {
	// The writer is made when a plain request needs it: a CONNECT is
	// written in one piece from a pooled buffer, so a tunnel carries no
	// idle 4 KiB writer.
	return &Conn{tcp: c, br: bufio.NewReaderSize(c, 4096), usable: true}
}

// TCP is the underlying connection.
func (c *Conn) TCP() *net.TCPConn { return c.tcp }

// Usable reports whether the connection can carry another request.
func (c *Conn) Usable() bool { return c.usable && !c.inUse }

// Close closes the connection.
func (c *Conn) Close() error {
	c.usable = false
	if c.timer != nil {
		c.timer.Stop()
	}
	return c.tcp.Close()
}

// Buffered returns the bytes the parent sent behind the last answer head,
// which belong to the tunnel after a 200 to CONNECT. The slice is a copy.
func (c *Conn) Buffered() []byte {
	n := c.br.Buffered()
	if n == 0 {
		return nil
	}
	b, _ := c.br.Peek(n)
	out := append([]byte(nil), b...)
	_, _ = c.br.Discard(n)
	return out
}

// Dead reports, without blocking, whether the parent closed or reset the
// idle connection (or sent bytes nobody asked for). A pinned connection is
// checked before it carries the client's next request.
func (c *Conn) Dead() bool {
	if !c.usable {
		return true
	}
	if c.br.Buffered() > 0 {
		return true // unsolicited bytes: the framing is lost
	}
	return peerClosed(c.tcp)
}

// peerClosedDeadline is the portable peerClosed: a read with a deadline in
// the past (three system calls).
func peerClosedDeadline(tc *net.TCPConn) bool {
	_ = tc.SetReadDeadline(time.Now())
	var b [1]byte
	_, err := tc.Read(b[:])
	_ = tc.SetReadDeadline(time.Time{})
	if err == nil {
		return true // bytes nobody asked for
	}
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// Connect sends "CONNECT target" with the given header fields (the client's
// end-to-end fields and its Proxy-Authorization, or the tap's) and reads the
// answer head before deadline. A non-200 answer's body is read into the
// response (at most MaxErrorBody), so the caller can relay it and the
// connection can carry the next CONNECT when the parent keeps it open.
func (c *Conn) Connect(target string, h http.Header, deadline time.Time) (*http.Response, error) {
	_ = c.tcp.SetDeadline(deadline)
	defer func() { _ = c.tcp.SetDeadline(time.Time{}) }()
	b := headPool.Get().(*bytes.Buffer)
	b.Reset()
	b.WriteString("CONNECT ")
	b.WriteString(target)
	b.WriteString(" HTTP/1.1\r\nHost: ")
	b.WriteString(target)
	b.WriteString("\r\n")
	_ = h.WriteSubset(b, connectSkip) // a bytes.Buffer does not fail
	b.WriteString("\r\n")
	_, err := c.tcp.Write(b.Bytes())
	headPool.Put(b)
	if err != nil {
		c.usable = false
		return nil, err
	}
	req := &http.Request{Method: http.MethodConnect}
	resp, err := c.readFinal(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusOK {
		resp.Body = http.NoBody
		return resp, nil
	}
	c.slurp(resp)
	if resp.StatusCode == http.StatusProxyAuthRequired {
		c.Legs++
	}
	return resp, nil
}

var headPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// connectSkip are fields Connect writes itself or never sends upstream.
var connectSkip = map[string]bool{"Host": true, "Content-Length": true, "Transfer-Encoding": true}

// readFinal reads answer heads until a final one, skipping 1xx.
func (c *Conn) readFinal(req *http.Request) (*http.Response, error) {
	for {
		resp, err := http.ReadResponse(c.br, req)
		if err != nil {
			c.usable = false
			return nil, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			if resp.Close {
				c.usable = false
			}
			return resp, nil
		}
	}
}

// slurp reads a response body into memory, so the connection is ready for
// the next request and the body can be relayed whole.
func (c *Conn) slurp(resp *http.Response) {
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxErrorBody+1))
	_ = resp.Body.Close()
	if err != nil || len(body) > MaxErrorBody {
		c.usable = false
		if len(body) > MaxErrorBody {
			body = body[:MaxErrorBody]
		}
	}
	resp.Body = io.NopCloser(strings.NewReader(string(body)))
	resp.ContentLength = int64(len(body))
	if resp.Header != nil {
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	}
	resp.TransferEncoding = nil
}

// RoundTrip writes r to the parent in absolute form, with all its header
// fields (Proxy-Authorization included), and returns the parent's final
// answer. With Expect: 100-continue, the body is sent only once the parent
// asks for it; a final answer first (a 407) comes back at once, and the
// connection is then spent. expectWait bounds the wait for 100 Continue,
// after which the body is sent anyway (RFC 9110 section 10.1.1).
//
// The response body must be read to its end or closed before the next call;
// a 407's body is read here already, so that a handshake's next leg can
// follow at once.
func (c *Conn) RoundTrip(r *http.Request, expectWait time.Duration, headDeadline time.Time) (*http.Response, error) {
	if c.inUse {
		return nil, errors.New("upstream: connection busy")
	}
	// The deadline bounds the wait for the answer head, as the Transport's
	// ResponseHeaderTimeout does for pooled exchanges; a body's upload and
	// download are the client's and the origin's to pace.
	_ = c.tcp.SetReadDeadline(headDeadline)
	defer func() { _ = c.tcp.SetReadDeadline(time.Time{}) }()
	hasBody := r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
	expect := hasBody && strings.EqualFold(r.Header.Get("Expect"), "100-continue")
	if !expect {
		if err := c.write(r); err != nil {
			c.usable = false
			return nil, err
		}
		return c.answer(r, nil)
	}
	gate := &continueGate{ch: make(chan bool, 1)}
	body := r.Body
	r2 := *r
	r2.Body = &gatedBody{rc: body, gate: gate}
	werr := make(chan error, 1)
	go func() { werr <- c.write(&r2) }()
	timer := time.AfterFunc(expectWait, func() { gate.open(true) })
	resp, err := c.answer(r, gate)
	timer.Stop()
	if err != nil {
		gate.open(false)
		<-werr
		return nil, err
	}
	if !gate.opened() {
		// The final answer came before 100 Continue: the body stays
		// with the client and the connection is spent.
		gate.open(false)
		c.usable = false
	}
	if e := <-werr; e != nil && !errors.Is(e, ErrBodyNotSent) {
		c.usable = false
	}
	return resp, nil
}

// write sends r in absolute form. WriteProxy flushes only a writer it
// wrapped itself, and a *bufio.Writer it does not wrap.
func (c *Conn) write(r *http.Request) error {
	if c.bw == nil {
		c.bw = newWriter(c.tcp)
	}
	if err := r.WriteProxy(c.bw); err != nil {
		return err
	}
	return c.bw.Flush()
}

// answer reads the final answer to r. A 100 Continue opens gate.
func (c *Conn) answer(r *http.Request, gate *continueGate) (*http.Response, error) {
	for {
		resp, err := http.ReadResponse(c.br, r)
		if err != nil {
			c.usable = false
			return nil, err
		}
		if resp.StatusCode == http.StatusContinue && gate != nil {
			gate.open(true)
			continue
		}
		if resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue
		}
		if resp.Close {
			c.usable = false
		}
		if resp.StatusCode == http.StatusProxyAuthRequired {
			c.Legs++
			c.slurp(resp)
			return resp, nil
		}
		if resp.Body == http.NoBody {
			return resp, nil // nothing to read: the connection is free
		}
		c.inUse = true
		resp.Body = &body{rc: resp.Body, c: c}
		return resp, nil
	}
}

// body frees the connection for the next request once read to its end.
type body struct {
	rc   io.ReadCloser
	c    *Conn
	done bool
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && b.c.aborted.Load() {
		err = context.Canceled // the deadline was the abort's, not a timeout
	}
	if err != nil && !b.done {
		b.done = true
		b.c.inUse = false
		if err != io.EOF {
			b.c.usable = false
		}
		b.c.release()
	}
	return n, err
}

func (b *body) Close() error {
	if !b.done {
		// Closed before its end: what is left of it would be read as
		// the next answer.
		b.done = true
		b.c.inUse = false
		b.c.usable = false
		b.c.release()
	}
	return b.rc.Close()
}

// continueGate holds a request body back until the parent asks for it.
type continueGate struct {
	once sync.Once
	ch   chan bool
	mu   sync.Mutex
	ok   bool
	set  bool
}

func (g *continueGate) open(send bool) {
	g.once.Do(func() {
		g.mu.Lock()
		g.ok, g.set = send, true
		g.mu.Unlock()
		g.ch <- send
	})
}

func (g *continueGate) opened() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.set && g.ok
}

// gatedBody is the request body behind a gate. WriteProxy flushes the head
// before it reads the body (the body is not in memory), so the parent sees
// the head while the first Read waits here.
type gatedBody struct {
	rc     io.ReadCloser
	gate   *continueGate
	passed bool
}

func (b *gatedBody) Read(p []byte) (int, error) {
	if !b.passed {
		if !<-b.gate.ch {
			b.gate.ch <- false // later reads see the same verdict
			return 0, ErrBodyNotSent
		}
		b.passed = true
	}
	return b.rc.Read(p)
}

func (b *gatedBody) Close() error { return nil } // the client's body is the server's to close
