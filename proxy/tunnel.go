package proxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/m365tap/m365tap/rules"
)

// tapConn is the upstream side of a CONNECT tunnel as goproxy sees it. It
// embeds the bare *net.TCPConn and overrides ReadFrom and WriteTo, which are
// what io.Copy calls on it in both directions: each first forwards the opening
// TLS records itself (so the observers can read them), then delegates to the
// TCPConn's own ReadFrom/WriteTo, which Linux serves with splice(2). It also
// implements CloseRead/CloseWrite so goproxy keeps its half-close path, and it
// emits the exchange once both directions ended and goproxy closed it.
type tapConn struct {
	*net.TCPConn
	ex     *exchange
	linger time.Duration
	idle   time.Duration // timeouts.tunnel_idle; 0: no idle bound

	// Idle tracking (unix ns of the last bytes moved, per direction).
	upActive, downActive atomic.Int64
	lingering            atomic.Bool // a side half-closed: the linger deadline rules
	idleClosed           atomic.Bool

	fromParent []byte // bytes the parent sent right behind its 200

	up   tlsObserver // client to upstream
	down tlsObserver // upstream to client

	upR, downR sockReader // reads the client's and the upstream's socket

	bytesUp, bytesDown int64
	errUp, errDown     error
	// resetBy is who reset the connection: resetUpstream | resetClient bits.
	resetBy   atomic.Int32
	firstByte time.Time

	dirs     atomic.Int32
	closed   atomic.Bool
	shutdown atomic.Bool
	once     sync.Once
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 4096); return &b }}

// ReadFrom carries client bytes to the upstream.
func (c *tapConn) ReadFrom(src io.Reader) (n int64, err error) {
	defer c.dirDone()
	early := c.ex.early
	c.ex.early = nil
	c.upR.init(src)
	n, eof, err := c.relayObserved(&c.up, &c.upR, early, c.TCPConn, c.ex.clientConn, nil)
	if err == nil && !eof {
		var m int64
		m, err = c.pump(&c.upActive, &c.downActive, c.ex.clientConn, &c.upR, func(lr *io.LimitedReader) (int64, error) {
			lr.R = src
			return c.TCPConn.ReadFrom(lr)
		})
		n += m
	}
	c.bytesUp, c.errUp = n, err
	c.noteReset(err)
	return n, err
}

// WriteTo carries upstream bytes to the client.
func (c *tapConn) WriteTo(dst io.Writer) (n int64, err error) {
	defer c.dirDone()
	early := c.fromParent
	c.fromParent = nil
	c.downR.init(c.TCPConn)
	n, eof, err := c.relayObserved(&c.down, &c.downR, early, dst, c.TCPConn, &c.firstByte)
	if err == nil && !eof {
		var m int64
		if rf, ok := dst.(io.ReaderFrom); ok {
			m, err = c.pump(&c.downActive, &c.upActive, c.TCPConn, &c.downR, func(lr *io.LimitedReader) (int64, error) {
				// dst's ReadFrom takes a LimitedReader around the bare
				// *net.TCPConn and still splices.
				lr.R = c.TCPConn
				return rf.ReadFrom(lr)
			})
		} else {
			m, err = c.TCPConn.WriteTo(dst)
		}
		if c.firstByte.IsZero() && m > 0 {
			c.firstByte = time.Now()
		}
		n += m
	}
	c.bytesDown, c.errDown = n, err
	c.noteReset(err)
	return n, err
}

// relayObserved forwards one direction through a small buffer while its
// observer still wants to see the bytes: first the early bytes that arrived
// with the CONNECT exchange, then reads from src. eof reports that src
// ended (cleanly) before the observer was done; the caller then has
// nothing left to splice.
func (c *tapConn) relayObserved(obs *tlsObserver, src *sockReader, early []byte, dst io.Writer,
	deadline interface{ SetReadDeadline(time.Time) error }, first *time.Time) (n int64, eof bool, err error) {
	if len(early) > 0 {
		if first != nil {
			*first = time.Now()
		}
		obs.feed(early)
		w, err := dst.Write(early)
		n += int64(w)
		if err != nil {
			return n, false, err
		}
	}
	if obs.done {
		return n, false, nil
	}
	for !obs.done {
		c.armIdle(deadline)
		bp, r, rerr := src.read()
		if r > 0 {
			if first != nil && first.IsZero() {
				*first = time.Now()
			}
			buf := *bp
			obs.feed(buf[:r])
			w, werr := dst.Write(buf[:r])
			n += int64(w)
			if werr != nil {
				bufPool.Put(bp)
				return n, false, werr
			}
		}
		bufPool.Put(bp)
		if rerr == io.EOF {
			return n, true, nil
		}
		if rerr != nil {
			return n, false, rerr
		}
	}
	return n, false, nil
}

// noteReset finds out, while both sockets are still open, which peers
// reset: bit 1 the upstream, bit 2 the client.
func (c *tapConn) noteReset(err error) {
	if err == nil || !isReset(err) || c.resetBy.Load() != 0 {
		return
	}
	var by int32
	if receivedReset(c.TCPConn) {
		by |= resetUpstream
	}
	if cc, ok := c.ex.clientConn.(*clientConn); ok && receivedReset(cc.TCPConn) {
		by |= resetClient
	} else if tc, ok := c.ex.clientConn.(*net.TCPConn); ok && receivedReset(tc) {
		by |= resetClient
	}
	if by == 0 {
		by = resetUpstream // cannot tell: blame the path, not the client
	}
	c.resetBy.CompareAndSwap(0, by)
}

const (
	resetUpstream = 1
	resetClient   = 2
)

// armIdle bounds a read during the handshake: a handshake that stalls for
// timeouts.tunnel_idle is dead, whichever side it waits on.
func (c *tapConn) armIdle(src interface{ SetReadDeadline(time.Time) error }) {
	if c.idle > 0 && src != nil && !c.lingering.Load() {
		_ = src.SetReadDeadline(time.Now().Add(c.idle))
	}
}

// pumpChunk is the most one splice run may move before the idle clock is
// looked at again; big enough that the extra bookkeeping is noise.
const pumpChunk = 1 << 20

// pump copies one direction in runs of what the kernel has queued (see
// sockReader.queued): waiting happens outside splice(2), so an idle tunnel holds
// no pipe. Each run is still one splice. With timeouts.tunnel_idle set, a
// read deadline on the source bounds each wait: one that fires ends the
// tunnel only if the other direction was quiet too.
func (c *tapConn) pump(mine, other *atomic.Int64, deadline interface{ SetReadDeadline(time.Time) error }, src *sockReader,
	chunk func(*io.LimitedReader) (int64, error)) (int64, error) {
	var total int64
	lr := &io.LimitedReader{}
	mine.Store(time.Now().UnixNano())
	for {
		if c.idle > 0 && !c.lingering.Load() {
			_ = deadline.SetReadDeadline(time.Now().Add(c.idle))
		}
		q, err := src.queued(pumpChunk)
		if err == nil && q == 0 {
			return total, nil // EOF
		}
		var m int64
		if err == nil {
			lr.N = q
			m, err = chunk(lr)
			total += m
			if m > 0 {
				mine.Store(time.Now().UnixNano())
			}
		}
		switch {
		case err == nil && m == 0:
			return total, nil // EOF
		case err == nil:
			continue
		case isTimeout(err) && c.idle > 0 && !c.lingering.Load():
			if m > 0 || time.Since(time.Unix(0, other.Load())) < c.idle {
				continue
			}
			c.idleClosed.Store(true)
			return total, err
		}
		return total, err
	}
}

// CloseWrite is called when the client finished sending. The upstream may
// still answer, but not forever: a peer that never sends FIN would otherwise
// hold both sockets, since net/http clears all deadlines on hijack.
func (c *tapConn) CloseWrite() error {
	err := c.TCPConn.CloseWrite()
	c.lingering.Store(true)
	if c.linger > 0 {
		_ = c.TCPConn.SetReadDeadline(time.Now().Add(c.linger))
	}
	return err
}

// CloseRead is called when the upstream finished sending; the client gets
// the same linger to finish its side. The socket is not shut down for
// reading: the upstream's FIN already ended that direction, and
// shutdown(SHUT_RD) after it changes nothing on the wire, so the system
// call is saved.
func (c *tapConn) CloseRead() error {
	c.lingering.Store(true)
	if c.linger > 0 && c.ex.clientConn != nil {
		_ = c.ex.clientConn.SetReadDeadline(time.Now().Add(c.linger))
	}
	return nil
}

// Close may be called more than once by goproxy (on a copy error and again
// after both copies ended); the event waits for both directions.
func (c *tapConn) Close() error {
	err := c.TCPConn.Close()
	c.closed.Store(true)
	c.maybeFinish()
	return err
}

func (c *tapConn) dirDone() {
	c.dirs.Add(1)
	c.maybeFinish()
}

func (c *tapConn) maybeFinish() {
	if c.closed.Load() && c.dirs.Load() == 2 {
		c.once.Do(c.finish)
	}
}

// abort closes both sides of the tunnel at shutdown; the copies then end
// and the event is emitted with outcome shutdown.
func (c *tapConn) abort() {
	c.shutdown.Store(true)
	_ = c.TCPConn.Close()
	if c.ex.clientConn != nil {
		_ = c.ex.clientConn.Close()
	}
}

func (c *tapConn) finish() {
	ex := c.ex
	ex.srv.untrack(c)
	ex.bytesUp, ex.bytesDown = c.bytesUp, c.bytesDown
	if !c.firstByte.IsZero() {
		ex.ttfb, ex.hasTTFB = c.firstByte.Sub(ex.start), true
	}
	ex.tlsSNI = c.up.sni
	if len(ex.tlsSNI) > maxSNI {
		ex.tlsSNI = ex.tlsSNI[:maxSNI]
	}
	ex.tlsVersion = tlsVersionName(c.down.version)
	if c.down.leaf != nil {
		ex.tlsIssuer, ex.tlsSubject = ex.srv.certs.names(c.down.leaf)
		c.down.leaf = nil
	}
	o, err := c.verdict()
	if o == rules.OK && c.idleClosed.Load() {
		err = errors.New("closed after timeouts.tunnel_idle (" + c.idle.String() + ") without traffic")
	}
	ex.fail(o, err)
	ex.finish()
}

// verdict decides a finished tunnel's outcome. Precedence: our own shutdown;
// then an alert seen in the handshake (a client that rejects a certificate
// sends its alert and closes, and closing with unread data makes the kernel
// send a reset: the alert is the cause, the reset its echo); then a reset;
// then what the TLS observers saw.
func (c *tapConn) verdict() (rules.Outcome, error) {
	if c.shutdown.Load() {
		return rules.Shutdown, errors.New("tunnel closed by shutdown")
	}
	if c.bytesUp == 0 && c.errUp == nil {
		// Whatever the upstream said when the client left, the client never
		// started: nothing here is the path's fault.
		return rules.ClientAborted, errors.New("client closed the tunnel without sending anything")
	}
	if c.bytesUp == 0 && (isTimeout(c.errUp) || isTimeout(c.errDown)) {
		// The tap's own bound ended a tunnel the client never used (either
		// direction's deadline may fire first; the other then sees its
		// socket closed): no ClientHello was seen, so nothing was tried on
		// the path, and the silence of the upstream (a TLS server waits for
		// the client) says nothing about it (issue 15).
		return rules.ClientAborted, errors.New("client sent nothing before the tap closed the tunnel after " + c.boundName())
	}
	if side, alert := c.noteAlert(); alert > 0 || (alert == 0 && !c.up.handshakeDone) {
		return rules.TLSFailure, errors.New(side + " sent TLS alert " + alertName(alert) + " during the handshake")
	}
	if !c.up.handshakeDone && !c.up.notTLS && (c.up.encryptedAlert || c.up.smallAppData) {
		c.ex.tlsAlert, c.ex.tlsAlertClient = "encrypted", true
		return rules.TLSFailure, errors.New("client ended the TLS handshake with an encrypted alert (certificate rejected?)")
	}
	if err := c.resetErr(); err != nil {
		completed := (c.up.handshakeDone || c.up.notTLS) && c.bytesDown > 0
		switch {
		case completed && c.resetBy.Load()&resetClient != 0:
			// A client that drops a finished exchange with unread data in
			// its buffer (a session ticket) resets instead of closing.
			return rules.OK, nil
		case completed && c.errDown == nil:
			// The upstream had already closed its side cleanly; the
			// client's last bytes (a close_notify) met a closed socket.
			return rules.OK, nil
		case c.resetBy.Load() == resetClient:
			return rules.ConnectionReset, errors.New("client reset the connection: " + err.Error())
		}
		return rules.ConnectionReset, err
	}
	switch {
	case c.up.notTLS, c.up.handshakeDone:
		return rules.OK, nil
	case c.up.seen > observeMaxBytes || c.up.records > observeMaxRecords:
		// Too long a handshake to follow; nothing says it failed.
		return rules.OK, nil
	case c.down.version == 0:
		return rules.TLSFailure, errors.New("TLS handshake did not complete: no ServerHello from upstream")
	}
	return rules.TLSFailure, errors.New("TLS handshake did not complete: client closed after the server's first flight")
}

// boundName names the deadline that ended a quiet tunnel: the linger after
// a side half-closed, or timeouts.tunnel_idle.
func (c *tapConn) boundName() string {
	if c.lingering.Load() {
		return "timeouts.tunnel_linger (" + c.linger.String() + ")"
	}
	return "timeouts.tunnel_idle (" + c.idle.String() + ")"
}

func (c *tapConn) resetErr() error {
	for _, err := range [...]error{c.errDown, c.errUp} {
		if err != nil && isReset(err) {
			return err
		}
	}
	return nil
}

// noteAlert records a plaintext alert seen in either direction, the
// upstream's first since it usually explains the client's.
func (c *tapConn) noteAlert() (side string, alert int) {
	switch {
	case c.down.alert >= 0:
		side, alert = "upstream", c.down.alert
	case c.up.alert >= 0:
		side, alert = "client", c.up.alert
		c.ex.tlsAlertClient = true
	default:
		return "", -1
	}
	c.ex.tlsAlert = alertName(alert)
	return side, alert
}

// tunnels tracks live tunnels, which http.Server.Shutdown neither sees nor waits for.
type tunnels struct {
	mu  sync.Mutex
	set map[*tapConn]struct{}
}

func (t *tunnels) add(c *tapConn) {
	t.mu.Lock()
	if t.set == nil {
		t.set = make(map[*tapConn]struct{})
	}
	t.set[c] = struct{}{}
	t.mu.Unlock()
}

func (t *tunnels) remove(c *tapConn) {
	t.mu.Lock()
	delete(t.set, c)
	t.mu.Unlock()
}

func (t *tunnels) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.set)
}

func (t *tunnels) abortAll() {
	t.mu.Lock()
	list := make([]*tapConn, 0, len(t.set))
	for c := range t.set {
		list = append(list, c)
	}
	t.mu.Unlock()
	for _, c := range list {
		c.abort()
	}
}

var _ net.Conn = (*tapConn)(nil)
