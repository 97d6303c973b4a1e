package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elazarl/goproxy"

	"github.com/m365tap/m365tap/proxyauth"
	"github.com/m365tap/m365tap/rules"
)

// onRequest runs inside goproxy for plain HTTP: strip hop-by-hop headers and
// route the round trip through roundTrip, which records what happened.
func (s *Server) onRequest(r *http.Request, ctx *goproxy.ProxyCtx) (*http.Request, *http.Response) {
	removeHopByHop(r.Header, isUpgrade(r.Header))
	// goproxy's KeepHeader is on, so its own header clean-up is skipped:
	// what it did besides keeping Proxy-Authorization is done here.
	r.RequestURI = ""
	delete(r.Header, "Proxy-Authenticate")
	if ex := exchangeFrom(r.Context()); ex == nil || ex.route != RouteParent {
		// Without a parent a credential has nowhere to go: an origin
		// must never see it.
		delete(r.Header, "Proxy-Authorization")
	}
	ctx.RoundTripper = s
	return r, nil
}

// RoundTrip implements goproxy.RoundTripper. Errors become a short response
// naming the outcome (502/504) instead of goproxy's 500 with raw error text.
// The upstream body is wrapped here, before goproxy sees the response, so
// goproxy keeps Content-Length (it drops it when a handler swaps the body).
func (s *Server) RoundTrip(r *http.Request, _ *goproxy.ProxyCtx) (*http.Response, error) {
	ex := exchangeFrom(r.Context())
	if ex == nil {
		return s.tr.RoundTrip(r)
	}
	if _, ok := r.Context().Value(exchangeKey{}).(*exchange); !ok {
		// The transport may dial on behalf of this request after it
		// ended (net/http lets a dial outlive its request), when the
		// client connection already serves its next request: the dial
		// must find this exchange, not the connection's current one.
		r = r.WithContext(context.WithValue(r.Context(), exchangeKey{}, ex))
	}
	resp, err := s.roundTrip(ex, r)
	if err != nil {
		o := classifyRoundTrip(err)
		if _, upErr := ex.reqBody.result(); upErr != nil || r.Context().Err() != nil {
			if o = uploadOutcome(upErr); o == rules.BadRequest {
				err = upErr
			}
		}
		status := clientStatus(o)
		var f *failure
		if errors.As(err, &f) {
			err = f.err
			if o == f.outcome && isTapFault(err) {
				status = f.status
			}
		}
		if ex.half.expired.Load() {
			err = s.halfClosedErr()
		}
		ex.fail(o, err)
		return outcomeResponse(r, o, status), nil
	}
	ex.ttfb, ex.hasTTFB = s.now().Sub(ex.start), true
	ex.half.gotHead(s.now())
	ex.upstreamStatus = resp.StatusCode
	code := resp.StatusCode
	switch {
	case code == http.StatusProxyAuthRequired && ex.route == RouteParent:
		// Settled when the exchange ends (settle407): the client may come
		// back on the same connection with the handshake's next leg.
		ex.got407 = true
		if ex.auth.legs == 0 {
			ex.auth.legs = 1 // the pool's 407 (a pinned one counts its own)
		}
		if ex.auth.offered == "" {
			ex.auth.offered = proxyauth.Offered(resp.Header.Values("Proxy-Authenticate"))
		}
		if resp.Close {
			ex.respClose = true
		}
	case ex.probe && code >= 300 && code < 400:
		ex.fail(rules.ProbeRedirect, errors.New("probe redirected to "+strconv.Quote(s.redactLocation(resp.Header.Get("Location")))))
	case code >= 400:
		ex.fail(rules.HTTPError, errors.New("upstream answered "+resp.Status))
	case ex.probe && code != http.StatusOK:
		ex.fail(rules.HTTPError, errors.New("probe answered "+resp.Status+", want 200"))
	case ex.probe:
		ex.probeCheck = true
	}
	if code == http.StatusSwitchingProtocols {
		// goproxy needs the body as the raw read-write stream for WebSocket.
		return resp, nil
	}
	removeHopByHop(resp.Header, false)
	ex.respBody = upstreamBody{rc: resp.Body, ex: ex}
	resp.Body = &ex.respBody
	return resp, nil
}

// roundTrip chooses the connection a plain request leaves on: the client
// connection's pinned parent connection when credentials are involved (the
// client's, or the tap's), the shared pool otherwise.
func (s *Server) roundTrip(ex *exchange, r *http.Request) (*http.Response, error) {
	if ex.route != RouteParent {
		return s.sendPlain(ex, r)
	}
	ex.auth.mode = ParentAuthRelay
	v := r.Header.Get("Proxy-Authorization")
	if v != "" {
		s.inspectAuth(ex, v)
	}
	tap := false
	if v == "" && s.tapAuth != nil {
		if ex.useTapCreds {
			tap = true // the tap's own check: its credentials, even when refused before (the check says so)
		} else {
			tap = ex.cc != nil && s.tapForClient(ex) && !s.tapAuth.rejected.Load()
		}
	}
	if tap {
		ex.auth.mode, ex.auth.scheme = ParentAuthTap, s.tapAuth.c.Scheme()
	}
	if v == "" && !tap && !ex.cc.pinned() {
		return s.sendPlain(ex, r)
	}
	resp, err := s.pinnedRoundTrip(ex, r, tap)
	if err == nil && resp.Close {
		ex.respClose = true
	}
	return resp, err
}

// outcomeResponse is what the client gets when the tap could not get an
// answer: status by outcome, the outcome in a header, a one-line body.
func outcomeResponse(r *http.Request, o rules.Outcome, status int) *http.Response {
	body := "m365tap: " + o.String() + "\n"
	return &http.Response{
		Status:     strconv.Itoa(status) + " " + http.StatusText(status),
		StatusCode: status,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header: http.Header{
			"Content-Type":      {"text/plain; charset=utf-8"},
			"Content-Length":    {strconv.Itoa(len(body))},
			"X-M365tap-Outcome": {o.String()},
		},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       r,
	}
}

// hopByHop are the connection-scoped fields of RFC 9110 §7.6.1 plus the
// legacy ones proxies still see. Proxy-Authenticate stays: a parent's 407
// must reach the client as it was sent.
var hopByHop = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func removeHopByHop(h http.Header, upgrade bool) {
	for _, v := range h["Connection"] {
		for _, name := range strings.Split(v, ",") {
			name = textproto.TrimString(name)
			if name == "" || (upgrade && strings.EqualFold(name, "upgrade")) {
				continue
			}
			h.Del(name)
		}
	}
	for _, name := range hopByHop {
		if upgrade && (name == "Connection" || name == "Upgrade") {
			continue
		}
		delete(h, name)
	}
}

func isUpgrade(h http.Header) bool {
	for _, v := range h["Connection"] {
		for _, name := range strings.Split(v, ",") {
			if strings.EqualFold(textproto.TrimString(name), "upgrade") {
				return h.Get("Upgrade") != ""
			}
		}
	}
	return false
}

// countingBody counts request body bytes and remembers a client that went
// away mid-upload. The transport reads it on a goroutine of its own, which
// goes on when an early answer (a 413, a parent's 407) has already ended the
// exchange, so the counts are kept under mu and read through result.
type countingBody struct {
	rc  io.ReadCloser
	mu  sync.Mutex
	n   int64
	err error
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.mu.Lock()
	b.n += int64(n)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	b.mu.Unlock()
	return n, err
}

// result is what the body saw so far: the bytes read and the first error.
func (b *countingBody) result() (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n, b.err
}

func (b *countingBody) Close() error { return b.rc.Close() }

// upstreamBody watches the response body for a reset or timeout mid-stream
// and keeps the first bytes of an NCSI probe's answer.
type upstreamBody struct {
	rc io.ReadCloser
	ex *exchange
}

// probeKeep is how much of a probe body is kept to look for the expected text.
const probeKeep = 512

func (b *upstreamBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	ex := b.ex
	if ex.probeCheck && len(ex.probeBuf) < probeKeep && n > 0 {
		keep := min(n, probeKeep-len(ex.probeBuf))
		ex.probeBuf = append(ex.probeBuf, p[:keep]...)
	}
	if err == io.EOF {
		ex.respDone = true
	} else if err != nil && ex.respErr == nil {
		ex.respErr = err
	}
	return n, err
}

func (b *upstreamBody) Close() error { return b.rc.Close() }

// checkProbeBody applies the probe rule's expectation, as Windows does: the
// body must contain the expected text.
func (ex *exchange) checkProbeBody() {
	p := ex.match.Rule.Probe
	if bytes.Contains(ex.probeBuf, []byte(p.Content)) {
		return
	}
	ex.probeBody = printable(ex.probeBuf, 64)
	ex.fail(rules.ProbeContentMismatch, errors.New("probe body does not contain "+strconv.Quote(p.Content)))
}

// responseWriter records the status and bytes sent to the client. It keeps
// http.Hijacker (goproxy needs it for CONNECT and WebSocket) and flushes
// each write of a body without Content-Length so streams stay live.
type responseWriter struct {
	http.ResponseWriter
	ex          *exchange
	wroteHeader bool
	flush       bool
	writeErr    error
}

func (w *responseWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	w.wroteHeader = true
	if code >= 200 || code == http.StatusSwitchingProtocols {
		w.ex.status = code
	}
	w.flush = w.Header().Get("Content-Length") == "" && code != http.StatusNoContent && code != http.StatusNotModified
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(p)
	w.ex.bytesDown += int64(n)
	if err != nil {
		if w.writeErr == nil {
			w.writeErr = err
		}
		return n, err
	}
	w.ex.half.progress(w.ex.srv.now)
	if w.flush {
		if f, ok := w.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
	}
	return n, nil
}

// ReadFrom lets io.Copy hand large bodies to net/http's own copy path when
// nothing needs flushing.
func (w *responseWriter) ReadFrom(src io.Reader) (int64, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	// A large pooled buffer: net/http's own copy moves 32 KiB per write,
	// which costs a large download about 40% more CPU per byte.
	bp := copyBufPool.Get().(*[]byte)
	n, err := io.CopyBuffer(writerOnly{w}, src, *bp)
	copyBufPool.Put(bp)
	return n, err
}

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

type writerOnly struct{ io.Writer }

func (w *responseWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack hands the client connection over. For CONNECT the bytes the client
// sent right behind the request head are taken out of the server's buffer
// and replayed by the tunnel itself, so goproxy sees a bare connection and
// the tunnel can stay on the splice path.
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("m365tap: connection cannot be hijacked")
	}
	c, rw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	ex := w.ex
	ex.clientConn = c
	if !ex.connecting {
		return c, rw, nil
	}
	if n := rw.Reader.Buffered(); n > 0 {
		b, _ := rw.Reader.Peek(n)
		ex.early = append([]byte(nil), b...)
	}
	ex.hijackRW = bufio.ReadWriter{Reader: &ex.emptyReader, Writer: rw.Writer}
	return c, &ex.hijackRW, nil
}

// redactLocation renders a redirect target for the log: a portal's login
// URL often carries a session token in its query.
func (s *Server) redactLocation(loc string) string {
	r, ok := s.redact.Location(loc)
	if !ok {
		return "(unparseable Location)"
	}
	return printable([]byte(r), 256)
}

// listener wraps accepted connections so the server can notice requests
// that never reach a handler (malformed heads that net/http answers itself).
type listener struct {
	net.Listener
	s *Server
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc, ok := c.(*net.TCPConn)
		if !ok {
			return c, nil
		}
		var ip netip.Addr
		if ap, err := netip.ParseAddrPort(tc.RemoteAddr().String()); err == nil {
			ip = ap.Addr().Unmap()
		}
		if reason, status := l.s.limits.acquire(ip); reason != "" {
			// Answered on its own goroutine: a flood must not stall Accept.
			// Counted here, before Accept runs again, so that Shutdown,
			// which waits for the accept loops to end first, also waits
			// for this event.
			l.s.inflight.Add(1)
			go l.s.refuseConn(tc, reason, status)
			continue
		}
		return &clientConn{TCPConn: tc, ip: ip, limits: &l.s.limits, srv: l.s}, nil
	}
}

// clientConn is a client connection. It embeds *net.TCPConn and does not
// override ReadFrom, so a tunnel writing to it still splices.
type clientConn struct {
	*net.TCPConn
	ip     netip.Addr
	limits *connLimiter
	closed atomic.Bool
	// readEOF: the client's side of the connection ended cleanly (a FIN),
	// which net/http reports only by canceling the request's context.
	readEOF atomic.Bool
	// pending: bytes of a request arrived (StateActive) but no handler ran
	// yet. A pending connection holds a place in the server's inflight
	// count, so that Shutdown also waits for the event of a head that
	// never completes, which is written only once the connection closes.
	pending atomic.Bool
	// status the server wrote itself while a request was pending.
	status atomic.Int32
	// waiting is since when the connection waits for a request head (unix
	// ns): net/http reports StateActive only once the head was read.
	waiting atomic.Int64
	current atomic.Pointer[exchange]
	// awaitingHead: the connection waits for a request head (between
	// requests), the only time proxyConnection10 looks at what it reads.
	awaitingHead atomic.Bool
	// pins is the parent side of this client connection (relay.go).
	pins pinState
	srv  *Server
}

// pinned reports a parent connection pinned to this client connection.
func (c *clientConn) pinned() bool { return c != nil && c.pins.has() }

// Close releases the connection's place in the limits exactly once, however
// many owners (net/http, goproxy, a tunnel) close it.
func (c *clientConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		if c.limits != nil {
			c.limits.release(c.ip)
		}
		// The pinned parent connection closes with its client's, and a
		// 407 that waited for a next leg that never came ended the
		// client's attempt.
		if d := c.pins.close(); d != nil {
			d.finish()
		}
	}
	return c.TCPConn.Close()
}

// CloseRead is what a tunnel calls once the client's FIN ended its
// direction: the read side is over already, and shutdown(SHUT_RD) after it
// changes nothing on the wire, so no system call is made.
func (c *clientConn) CloseRead() error { return nil }

func (c *clientConn) Read(p []byte) (int, error) {
	n, err := c.TCPConn.Read(p)
	if err == io.EOF {
		c.readEOF.Store(true)
	}
	if n > 0 && c.awaitingHead.Load() {
		proxyConnection10(p[:n])
	}
	return n, err
}

// proxyConnection10 lets an HTTP/1.0 client's "Proxy-Connection:
// keep-alive" count, as proxies honour it: net/http reads only Connection,
// and closes after every answer to an HTTP/1.0 request without it. NTLM
// and Negotiate need the connection kept (a parent offers Basic only on a
// closing one). The head is rewritten in place, name for name with the
// same length ("Connection:" and six spaces of optional whitespace), only
// in a read that holds the request line and the whole field, and only
// when the head has no Connection field of its own. Heads of HTTP/1.1
// requests are not scanned beyond their request line.
func proxyConnection10(b []byte) {
	eol := bytes.Index(b, crlf)
	if eol < 9 || !bytes.HasSuffix(b[:eol], http10) {
		return
	}
	end := bytes.Index(b, crlfcrlf)
	if end < 0 {
		return
	}
	head := b[eol : end+2] // from the first field's CRLF to the last field's
	at := -1
	for i := 0; i+2 < len(head); {
		j := bytes.Index(head[i+2:], crlf)
		if j < 0 {
			break
		}
		line := head[i+2 : i+2+j]
		switch {
		case len(line) > 11 && bytes.EqualFold(line[:11], []byte("connection:")):
			return
		case len(line) > 17 && bytes.EqualFold(line[:17], []byte("proxy-connection:")) &&
			bytes.Contains(bytes.ToLower(line[17:]), []byte("keep-alive")):
			at = i + 2
		}
		i += 2 + j
	}
	if at >= 0 {
		copy(head[at:at+17], "Connection:      ")
	}
}

var (
	crlf     = []byte("\r\n")
	crlfcrlf = []byte("\r\n\r\n")
	http10   = []byte(" HTTP/1.0")
)

func (c *clientConn) Write(p []byte) (int, error) {
	if c.pending.Load() && len(p) >= 12 && bytes.HasPrefix(p, []byte("HTTP/1.")) {
		if code, err := strconv.Atoi(string(p[9:12])); err == nil {
			c.status.Store(int32(code))
		}
	}
	return c.TCPConn.Write(p)
}

// connState turns a request that net/http rejected before any handler ran
// into its own bad_request event.
func (s *Server) connState(c net.Conn, state http.ConnState) {
	cc, ok := c.(*clientConn)
	if !ok {
		return
	}
	switch state {
	case http.StateNew, http.StateIdle:
		s.settle(cc)
		cc.waiting.Store(s.now().UnixNano())
		cc.awaitingHead.Store(true)
	case http.StateActive:
		cc.awaitingHead.Store(false)
		if !cc.pending.Swap(true) {
			s.inflight.Add(1)
		}
		cc.status.Store(0)
	case http.StateHijacked:
		s.settle(cc)
	case http.StateClosed:
		if cc.pending.Swap(false) {
			s.malformed(cc)
		}
	}
}

// settle ends a connection's pending state: a handler took the request
// (and holds an inflight place of its own) or there was none.
func (s *Server) settle(cc *clientConn) {
	if cc.pending.Swap(false) {
		s.inflight.Done()
	}
}

// malformed logs a request that net/http rejected; it takes over the
// pending connection's inflight place, which emit releases.
func (s *Server) malformed(cc *clientConn) {
	ex := &exchange{srv: s, id: s.nextID.Add(1), start: s.now(), client: cc.RemoteAddr().String()}
	status := int(cc.status.Load())
	ex.status = status
	switch {
	case status == 0 && s.forced.Load():
		ex.fail(rules.Shutdown, errors.New("connection closed by shutdown before a full request head arrived"))
	case status == 0 && s.now().Sub(time.Unix(0, cc.waiting.Load())) >= s.opts.ReadHeaderTimeout:
		// net/http closes silently when timeouts.read_header expires.
		ex.fail(rules.BadRequest, errors.New("request head not complete within timeouts.read_header ("+s.opts.ReadHeaderTimeout.String()+")"))
	case status == 0:
		ex.fail(rules.ClientAborted, errors.New("connection closed before a full request head arrived"))
	case status == http.StatusRequestHeaderFieldsTooLarge:
		ex.fail(rules.BadRequest, errors.New("request head larger than the limit"))
	default:
		ex.fail(rules.BadRequest, errors.New("malformed request: answered "+strconv.Itoa(status)+" "+http.StatusText(status)))
	}
	ex.finish()
}
