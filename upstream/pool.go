package upstream

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// Pool keeps idle connections for plain requests that carry no body and no
// credentials: the common case of a PC's plain HTTP (NCSI's probe, CRL and
// OCSP fetches, redirects to HTTPS). Such a request is written and its
// answer read on the calling goroutine, where net/http's Transport hands
// each request to a writer goroutine and each answer back from a reader
// goroutine: four goroutine switches and a dozen allocations per request
// that this path does not pay. Requests with a body, upgrades and https://
// targets stay on the Transport, which sends a body while it reads an early
// answer.
//
// Connections are keyed by where they lead: an origin (origin-form
// requests) or a parent proxy (absolute form, shared by every target, as
// the Transport shares them).
type Pool struct {
	mu      sync.Mutex
	idle    map[PoolKey][]*Conn
	n       int
	max     int // idle connections per key
	maxAll  int
	timeout time.Duration
	closed  bool
}

// PoolKey names where a pooled connection leads.
type PoolKey struct {
	Host  string
	Port  int
	Proxy bool // a parent proxy: requests go in absolute form
}

// NewPool makes a pool that keeps at most perKey idle connections per key
// and all in total, each for at most idle.
func NewPool(perKey, all int, idle time.Duration) *Pool {
	return &Pool{idle: map[PoolKey][]*Conn{}, max: perKey, maxAll: all, timeout: idle}
}

// Get takes the most recently used idle connection for k, or nil.
func (p *Pool) Get(k PoolKey) *Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.idle[k]
	if len(l) == 0 {
		return nil
	}
	c := l[len(l)-1]
	l[len(l)-1] = nil
	p.idle[k] = l[:len(l)-1]
	p.n--
	c.idle = false
	return c
}

// New wraps a freshly dialled connection to k; it joins the pool when its
// first answer has been read to its end.
func (p *Pool) New(tc *net.TCPConn, k PoolKey) *Conn {
	c := NewConn(tc)
	c.pool, c.key = p, k
	return c
}

// put gives c back, or closes it when the pool is full or closed.
func (p *Pool) put(c *Conn) {
	p.mu.Lock()
	if p.closed || len(p.idle[c.key]) >= p.max || p.n >= p.maxAll {
		p.mu.Unlock()
		_ = c.Close()
		return
	}
	c.idle, c.since = true, time.Now()
	p.idle[c.key] = append(p.idle[c.key], c)
	p.n++
	// One timer per connection, made once and reset on each return, so an
	// idle connection is closed after the idle timeout without a reaper and
	// without an allocation per request.
	if c.timer == nil {
		c.timer = time.AfterFunc(p.timeout, func() { p.expire(c) })
	} else {
		c.timer.Reset(p.timeout)
	}
	p.mu.Unlock()
}

// expire closes c if it is still idle and has been for the whole timeout
// (a timer that fires as c is taken and given back again sees a later
// since).
func (p *Pool) expire(c *Conn) {
	p.mu.Lock()
	if !c.idle || time.Since(c.since) < p.timeout {
		p.mu.Unlock()
		return
	}
	l := p.idle[c.key]
	for i, x := range l {
		if x == c {
			l = append(l[:i], l[i+1:]...)
			l = l[:len(l):len(l)]
			break
		}
	}
	if len(l) == 0 {
		delete(p.idle, c.key)
	} else {
		p.idle[c.key] = l
	}
	p.n--
	c.idle = false
	p.mu.Unlock()
	_ = c.Close()
}

// CloseIdle closes every idle connection and, with shut, every connection
// given back later.
func (p *Pool) CloseIdle(shut bool) {
	p.mu.Lock()
	idle := p.idle
	p.idle = map[PoolKey][]*Conn{}
	p.n = 0
	if shut {
		p.closed = true
	}
	p.mu.Unlock()
	for _, l := range idle {
		for _, c := range l {
			c.idle = false
			_ = c.Close()
		}
	}
}

// Idle reports how many connections wait in the pool.
func (p *Pool) Idle() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// ErrHeaderTimeout is what a request gets when no answer head came within
// its deadline; the words are the Transport's, so a log reads the same
// whichever path carried the request.
var ErrHeaderTimeout error = headerTimeout{}

type headerTimeout struct{}

func (headerTimeout) Error() string   { return "net/http: timeout awaiting response headers" }
func (headerTimeout) Timeout() bool   { return true }
func (headerTimeout) Temporary() bool { return true }

// Send writes r, which must carry no body, in origin form (or absolute form
// on a parent's connection) and returns the final answer, whose body must
// be read to its end or closed; the connection then goes back to its pool.
// The read of the head stops at headDeadline. ctx ending (the client went
// away, the tap stops) ends the wait for the head or the body at once, and
// the body's reads then fail with context.Canceled, as they would from the
// Transport.
func (c *Conn) Send(ctx context.Context, r *http.Request, headDeadline time.Time) (*http.Response, error) {
	if c.inUse {
		return nil, errors.New("upstream: connection busy")
	}
	c.stopWatch = context.AfterFunc(ctx, c.abort)
	resp, err := c.send(r, headDeadline)
	if err != nil {
		c.stopWatch()
		return nil, err
	}
	if !c.inUse {
		// No body to read (a 407's was read already): the connection is
		// free now.
		c.release()
	}
	return resp, nil
}

func (c *Conn) send(r *http.Request, headDeadline time.Time) (*http.Response, error) {
	_ = c.tcp.SetReadDeadline(headDeadline)
	if c.bw == nil {
		c.bw = newWriter(c.tcp)
	}
	var err error
	if c.key.Proxy {
		err = r.WriteProxy(c.bw)
	} else {
		err = r.Write(c.bw)
	}
	if err == nil {
		err = c.bw.Flush()
	}
	if err != nil {
		c.usable = false
		return nil, err
	}
	if r.Close {
		c.usable = false
	}
	resp, err := c.answer(r, nil)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) && !c.aborted.Load() {
			err = ErrHeaderTimeout
		}
		return nil, err
	}
	_ = c.tcp.SetReadDeadline(time.Time{})
	return resp, nil
}

// abort makes a Send waiting for its answer, or a read of its body, return
// at once.
func (c *Conn) abort() {
	c.aborted.Store(true)
	_ = c.tcp.SetReadDeadline(time.Unix(1, 0))
}

// Reused reports whether the connection carried an answer before.
func (c *Conn) Reused() bool { return c.served > 0 }

// release ends an answer on a pooled connection: back to the pool when the
// connection can carry another request, closed otherwise.
func (c *Conn) release() {
	if c.pool == nil {
		return
	}
	if c.stopWatch != nil {
		if !c.stopWatch() {
			c.usable = false // the abort ran, or is running: its deadline may land later
		}
		c.stopWatch = nil
	}
	c.served++
	if c.usable && !c.aborted.Load() {
		c.pool.put(c)
		return
	}
	_ = c.Close()
}
