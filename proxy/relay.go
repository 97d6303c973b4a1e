package proxy

import (
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

	"github.com/m365tap/m365tap/proxyauth"
	"github.com/m365tap/m365tap/rules"
	"github.com/m365tap/m365tap/upstream"
)

// Proxy authentication through the parent.
//
// The client's own Proxy-Authorization goes to the parent unchanged and the
// parent's 407 comes back unchanged ("relay"), because whatever works
// without the tap must work through it, and whatever fails must fail the
// same way. NTLM and Negotiate authenticate a connection, not a request, so
// a parent connection that carried a client's credentials or answered a
// 407 is pinned to that one client connection (as Squid pins a server
// connection to its client's, ConnStateData::pinConnection): the client's
// next leg, request or CONNECT goes out on it, nobody else's ever does, and
// it closes with the client connection. Exchanges without credentials keep
// the shared pool of net/http's Transport.

// ParentAuth says whose credentials an exchange carried to the parent.
type ParentAuth uint8

const (
	ParentAuthNone  ParentAuth = iota // no parent on this exchange's route
	ParentAuthRelay                   // the client's own, relayed unchanged (or none, as the client sent)
	ParentAuthTap                     // the tap's configured credentials (parent.auth)
)

func (a ParentAuth) String() string {
	switch a {
	case ParentAuthRelay:
		return "relay"
	case ParentAuthTap:
		return "tap"
	}
	return ""
}

// authFacts are an exchange's proxy-authentication fields.
type authFacts struct {
	mode    ParentAuth
	scheme  proxyauth.Scheme // the client's (relay) or the tap's scheme
	creds   bool             // the client sent a Proxy-Authorization
	ntlm    uint8            // NTLM message type the client sent last, if any
	offered string           // the parent's schemes from its last 407
	legs    int              // 407 rounds on this connection before the outcome
	user    string           // only kept with Options.LogUsers
	spn     string           // the client's Kerberos ticket's service name
	kerb    bool             // the client sent a Kerberos ticket
	pinned  bool
}

// tapCredentials wraps the configured credentials with what the parent said
// of them: once refused, they are not offered again until the configuration
// changes (a new Server), so a wrong password cannot lock the account out
// by being retried on every new connection.
type tapCredentials struct {
	c        proxyauth.Client
	rejected atomic.Bool
}

var errTapCredsRejected = errors.New("the parent proxy refused the tap's own credentials (parent.auth) earlier; they are not offered again until the configuration changes, so that retries cannot lock the account")

func (t *tapCredentials) start() (proxyauth.Handshake, error) {
	if t.rejected.Load() {
		return nil, errTapCredsRejected
	}
	return t.c.Start()
}

// pinState is the part of a client connection that belongs to the parent
// side: the pinned parent connection and a 407 whose event waits to learn
// whether it was one leg of a handshake.
type pinState struct {
	mu       sync.Mutex
	conn     *upstream.Conn
	parent   *parentProxy // conn's parent: a PAC can name another for the next request
	deferred *exchange
	closed   bool
	// client: the client sent credentials of its own on this connection.
	// Its later requests without a header ride on its own authenticated
	// parent connection and never get the tap's credentials instead.
	client bool
}

func (p *pinState) markClient() {
	p.mu.Lock()
	p.client = true
	p.mu.Unlock()
}

// clientAuthenticated reports a client connection whose client sent
// credentials of its own.
func (c *clientConn) clientAuthenticated() bool {
	if c == nil {
		return false
	}
	c.pins.mu.Lock()
	defer c.pins.mu.Unlock()
	return c.pins.client
}

// take returns the pinned connection to parent, or nil; a connection the
// parent closed while idle, or one to another parent, is dropped.
func (p *pinState) take(parent *parentProxy) *upstream.Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.conn
	if c != nil && (p.parent != parent || !c.Usable() || c.Dead()) {
		_ = c.Close()
		p.conn, c = nil, nil
	}
	return c
}

func (p *pinState) has() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conn != nil
}

// put pins c, a connection to parent, or closes it when the client
// connection is gone.
func (p *pinState) put(c *upstream.Conn, parent *parentProxy) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != nil && p.conn != c {
		_ = p.conn.Close()
	}
	if p.closed || !c.Usable() {
		_ = c.Close()
		p.conn = nil
		return
	}
	p.conn, p.parent = c, parent
}

// release forgets the pinned connection without closing it: a tunnel owns it now.
func (p *pinState) release(c *upstream.Conn) {
	p.mu.Lock()
	if p.conn == c {
		p.conn = nil
	}
	p.mu.Unlock()
}

// close ends the pin with its client connection, and returns a waiting 407
// event, which the caller writes.
func (p *pinState) close() *exchange {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.conn != nil {
		_ = p.conn.Close()
		p.conn = nil
	}
	d := p.deferred
	p.deferred = nil
	return d
}

// defer407 holds ex's event back: if the client answers on this connection
// with credentials, the 407 was a leg of the exchange that follows.
func (p *pinState) defer407(ex *exchange) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.deferred != nil {
		return false
	}
	p.deferred = ex
	return true
}

func (p *pinState) takeDeferred() *exchange {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.deferred
	p.deferred = nil
	return d
}

// inspectAuth notes what the client's Proxy-Authorization says, without
// keeping the token.
func (s *Server) inspectAuth(ex *exchange, value string) {
	ex.auth.creds = true
	if ex.cc != nil {
		ex.cc.pins.markClient()
	}
	c := proxyauth.Inspect(value)
	ex.auth.scheme = c.Scheme
	ex.auth.ntlm = c.NTLM
	if c.Kerberos {
		ex.auth.kerb = true
		ex.auth.spn = c.SPN
	}
	if s.opts.LogUsers && c.User != "" {
		ex.auth.user = sanitize(c.User)
	}
}

// carryLegs joins a waiting 407 to the exchange that answers it on the same
// connection: the 407 was a leg of a handshake, not a failure of its own.
// Without credentials in the new request, the 407 ended the client's
// attempt and is written as it was.
func (s *Server) carryLegs(cc *clientConn, ex *exchange, r *http.Request) {
	d := cc.pins.takeDeferred()
	if d == nil {
		return
	}
	// The next leg repeats the request the 407 answered, with
	// credentials; anything else is a request of its own.
	if r.Header.Get("Proxy-Authorization") == "" || r.Method != d.method || r.RequestURI != d.target {
		d.finish()
		return
	}
	ex.auth.legs = d.auth.legs
	if ex.auth.offered == "" {
		ex.auth.offered = d.auth.offered
	}
	// The leg's record is not written: one exchange, one event.
	s.inflight.Done()
}

// settle407 ends an exchange the parent answered 407 for. Its event waits
// while the client connection stays open, since the client may come back
// with the next leg; otherwise it is written now.
func (s *Server) settle407(ex *exchange, keepAlive bool) {
	s.explain407(ex)
	if cc := ex.cc; cc != nil && keepAlive && ex.auth.mode == ParentAuthRelay && cc.pins.defer407(ex) {
		return
	}
	ex.finish()
}

// explain407 writes the outcome of a 407 that ends an exchange, telling
// whether the client had sent credentials and, for Kerberos, whether the
// ticket named the parent.
func (s *Server) explain407(ex *exchange) {
	a := &ex.auth
	var b strings.Builder
	b.WriteString("parent proxy answered 407 Proxy Authentication Required")
	if a.offered != "" {
		b.WriteString(" (offers ")
		b.WriteString(a.offered)
		b.WriteByte(')')
	}
	switch {
	case a.mode == ParentAuthTap:
		b.WriteString(": the parent refused the tap's own ")
		b.WriteString(a.scheme.String())
		b.WriteString(" credentials (parent.auth); check that account")
		ex.credsRejected = true
	case !a.creds:
		b.WriteString("; the client sent no credentials")
		if ex.probe {
			b.WriteString(": NCSI runs as SYSTEM and cannot answer a 407, so Windows decides there is no internet")
		}
	case a.kerb && a.spn != "" && ex.parent != nil && !strings.EqualFold(a.spn, ex.parent.spn):
		b.WriteString("; the client's Kerberos ticket is for ")
		b.WriteString(a.spn)
		b.WriteString(" but the parent is ")
		b.WriteString(ex.parent.spn)
		b.WriteString(": the PC names its proxy by another name than the parent's; set the PC's proxy to the parent's host name and map that name to the tap's address")
		ex.spnMismatch = true
	case a.scheme == proxyauth.SchemeNegotiate && a.ntlm != 0 && ex.parent != nil:
		b.WriteString("; the client answered Negotiate with NTLM (it got no Kerberos ticket for ")
		b.WriteString(ex.parent.spn)
		b.WriteString(") and the parent refused it")
		ex.credsRejected = a.ntlm == 3
	case a.ntlm == 1:
		b.WriteString("; the client began NTLM authentication and did not complete it")
	default:
		b.WriteString("; the parent refused the client's ")
		b.WriteString(a.scheme.String())
		b.WriteString(" credentials: a wrong password or an account problem")
		ex.credsRejected = true
	}
	ex.fail(rules.ParentAuthRequired, errors.New(b.String()))
}

// pinFor returns the client connection's pinned parent connection, or
// dials a new one and pins it.
func (s *Server) pinFor(ctx context.Context, ex *exchange) (*upstream.Conn, error) {
	if cc := ex.cc; cc != nil {
		if c := cc.pins.take(ex.parent); c != nil {
			c.Legs = 0
			return c, nil
		}
	}
	tc, err := s.dial.dialParent(ctx, ex)
	if err != nil {
		return nil, err
	}
	return upstream.NewConn(tc), nil
}

// keepPin gives the connection back to the client connection's pin, or
// closes it when there is no client connection to belong to.
func (s *Server) keepPin(ex *exchange, c *upstream.Conn) {
	if ex.cc != nil {
		ex.cc.pins.put(c, ex.parent)
		return
	}
	_ = c.Close()
}

// pinnedRoundTrip sends a plain request on the client connection's own
// parent connection, with the client's credentials (relay) or the tap's.
func (s *Server) pinnedRoundTrip(ex *exchange, r *http.Request, tap bool) (*http.Response, error) {
	c, err := s.pinFor(r.Context(), ex)
	if err != nil {
		return nil, err
	}
	ex.auth.pinned = true
	deadline := func() time.Time { return s.now().Add(s.opts.ResponseHeaderTimeout) }
	var resp *http.Response
	if tap {
		hs, herr := s.tapAuth.start()
		if herr != nil {
			_ = c.Close()
			return nil, &failure{outcome: rules.ParentAuthRequired, status: http.StatusBadGateway, err: herr}
		}
		resp, err = c.RoundTripAuth(r, hs, time.Second, deadline)
	} else {
		resp, err = c.RoundTrip(r, time.Second, deadline())
	}
	if err != nil {
		_ = c.Close()
		if errors.Is(err, upstream.ErrBodyTooLarge) {
			return nil, &failure{outcome: rules.BadRequest, status: http.StatusRequestEntityTooLarge, err: err}
		}
		return nil, newFailure(classifyParentIO(err), err)
	}
	ex.auth.legs += c.Legs
	c.Legs = 0
	if resp.StatusCode == http.StatusProxyAuthRequired {
		ex.auth.offered = proxyauth.Offered(resp.Header.Values("Proxy-Authenticate"))
		if tap {
			s.tapAuth.rejected.Store(true)
		}
	}
	if resp.Body != nil && resp.Body != http.NoBody && resp.StatusCode != http.StatusProxyAuthRequired {
		// The pin is busy until the body is read; it goes back to the
		// client connection then (or is closed, if the body broke).
		resp.Body = &pinBody{ReadCloser: resp.Body, s: s, ex: ex, c: c}
	} else {
		s.keepPin(ex, c)
	}
	if !c.Usable() {
		// The parent closes its side: so does the tap, after this
		// answer, as the parent would have done to the client.
		resp.Close = true
	}
	return resp, nil
}

// pinBody returns the pin to its client connection at the body's end.
type pinBody struct {
	io.ReadCloser
	s    *Server
	ex   *exchange
	c    *upstream.Conn
	once sync.Once
}

func (b *pinBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(func() { b.s.keepPin(b.ex, b.c) })
	return err
}

// relayConnect handles a CONNECT that goes to the parent on the client
// connection's own parent connection: its answer comes back to the client
// whole (a 407 with its body and every Proxy-Authenticate, kept alive as
// the parent keeps it), and a 200 makes the pinned connection the tunnel.
// It returns true when goproxy should now run the tunnel.
func (s *Server) relayConnect(w http.ResponseWriter, r *http.Request, ex *exchange, tap bool) bool {
	c, err := s.pinFor(r.Context(), ex)
	if err != nil {
		s.connectFailed(w, ex, err)
		return false
	}
	ex.auth.pinned = true
	h := make(http.Header, len(r.Header))
	for k, v := range r.Header {
		if !connectHopByHop[k] {
			h[k] = v
		}
	}
	start := s.now()
	deadline := start.Add(s.opts.ResponseHeaderTimeout)
	var resp *http.Response
	if tap {
		hs, herr := s.tapAuth.start()
		if herr != nil {
			_ = c.Close()
			s.connectFailed(w, ex, &failure{outcome: rules.ParentAuthRequired, status: http.StatusBadGateway, err: herr})
			return false
		}
		resp, err = c.ConnectAuth(hostPortString(ex.host, ex.port), h, hs, deadline)
	} else {
		resp, err = c.Connect(hostPortString(ex.host, ex.port), h, deadline)
	}
	if err != nil {
		_ = c.Close()
		s.connectFailed(w, ex, newFailure(classifyParentIO(err), errors.New("parent proxy: reading CONNECT answer: "+err.Error())))
		return false
	}
	ex.upstreamStatus = resp.StatusCode
	ex.auth.legs += c.Legs
	c.Legs = 0
	if resp.StatusCode == http.StatusOK {
		if cc := ex.cc; cc != nil {
			cc.pins.release(c)
		}
		ex.pre = c.TCP()
		ex.preEarly = c.Buffered()
		return true
	}
	// Relay the answer as the parent gave it.
	hdr := w.Header()
	for k, v := range resp.Header {
		if !responseHopByHop[k] {
			hdr[k] = v
		}
	}
	if _, ok := hdr["Content-Type"]; !ok {
		hdr["Content-Type"] = nil // no sniffed type the parent did not send
	}
	if _, ok := hdr["Date"]; !ok {
		hdr["Date"] = nil
	}
	keep := c.Usable()
	if !keep {
		hdr.Set("Connection", "close")
		_ = c.Close()
	} else {
		s.keepPin(ex, c)
	}
	ex.rw = responseWriter{ResponseWriter: w, ex: ex}
	ex.rw.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(&ex.rw, resp.Body)
	if resp.StatusCode == http.StatusProxyAuthRequired {
		ex.auth.offered = proxyauth.Offered(resp.Header.Values("Proxy-Authenticate"))
		if tap {
			s.tapAuth.rejected.Store(true)
		}
		s.settle407(ex, keep)
		return false
	}
	ex.fail(rules.HTTPError, errors.New("parent proxy answered CONNECT with "+resp.Status))
	ex.finish()
	return false
}

// connectFailed answers a CONNECT that could not reach the parent.
func (s *Server) connectFailed(w http.ResponseWriter, ex *exchange, err error) {
	var f *failure
	if !errors.As(err, &f) {
		f = newFailure(classifyDial(err), err)
	}
	s.refuseStatus(w, ex, f.outcome, f.status, f.err.Error())
}

// Fields of a CONNECT or an answer that concern one connection only (RFC
// 9110 section 7.6.1) and never cross the tap. Proxy-Authorization and
// Proxy-Authenticate do: with a parent, they are the parent's.
var (
	connectHopByHop  = map[string]bool{"Connection": true, "Proxy-Connection": true, "Keep-Alive": true, "Te": true, "Trailer": true, "Upgrade": true, "Host": true}
	responseHopByHop = map[string]bool{"Connection": true, "Proxy-Connection": true, "Keep-Alive": true, "Te": true, "Trailer": true, "Upgrade": true, "Transfer-Encoding": true}
)

// tapConnect opens a tunnel for the tap's own check: through the parent,
// with the tap's credentials when it has any (a connection of its own,
// never a client's), or as before without.
func (s *Server) tapConnect(ctx context.Context, ex *exchange, target string) (*net.TCPConn, []byte, error) {
	if s.tapAuth == nil {
		return s.dial.connectViaParent(ctx, ex, target)
	}
	ex.auth.mode, ex.auth.scheme = ParentAuthTap, s.tapAuth.c.Scheme()
	hs, err := s.tapAuth.start()
	if err != nil {
		return nil, nil, newFailure(rules.ParentAuthRequired, err)
	}
	tc, err := s.dial.dialParent(ctx, ex)
	if err != nil {
		return nil, nil, err
	}
	c := upstream.NewConn(tc)
	deadline := s.now().Add(s.opts.ResponseHeaderTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	resp, err := c.ConnectAuth(target, http.Header{}, hs, deadline)
	if err != nil {
		_ = c.Close()
		return nil, nil, newFailure(classifyParentIO(err), errors.New("parent proxy: reading CONNECT answer: "+err.Error()))
	}
	ex.upstreamStatus, ex.auth.legs = resp.StatusCode, c.Legs
	c.Legs = 0
	switch resp.StatusCode {
	case http.StatusOK:
		return tc, c.Buffered(), nil
	case http.StatusProxyAuthRequired:
		_ = c.Close()
		ex.auth.offered = proxyauth.Offered(resp.Header.Values("Proxy-Authenticate"))
		s.tapAuth.rejected.Store(true)
		s.explain407(ex)
		return nil, nil, &failure{outcome: rules.ParentAuthRequired, status: http.StatusProxyAuthRequired, upstream: resp.StatusCode, err: errors.New(ex.err)}
	}
	_ = c.Close()
	return nil, nil, &failure{outcome: rules.HTTPError, status: resp.StatusCode, upstream: resp.StatusCode, err: errors.New("parent proxy answered CONNECT with " + resp.Status)}
}

// tapForClient says whether the tap's own credentials go on a client
// exchange that carries none: only when configured for clients, and for an
// NCSI probe only when configured for that separately, because a probe
// that passes only with the tap's credentials hides the article's cause §2.
func (s *Server) tapForClient(ex *exchange) bool {
	return s.tapAuth != nil && s.opts.ParentAuthClients && (!ex.probe || s.opts.ParentAuthNCSI) &&
		!ex.cc.clientAuthenticated()
}

// parentSPNOf is the service name a client's Kerberos ticket must carry for
// the parent: HTTP/ and the parent's host as configured.
func parentSPNOf(addr string) string {
	host := addr
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		if _, err := strconv.Atoi(addr[i+1:]); err == nil {
			host = addr[:i]
		}
	}
	return "HTTP/" + strings.Trim(host, "[]")
}
