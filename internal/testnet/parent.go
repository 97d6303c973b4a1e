package testnet

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// ParentMode selects how a Parent treats requests.
type ParentMode int

const (
	// ParentForward forwards absolute-form HTTP requests and tunnels
	// CONNECT requests.
	ParentForward ParentMode = iota
	// ParentAuth407 answers 407 with Proxy-Authenticate: Basic realm="corp"
	// unless the request carries Basic credentials for User and Pass, and
	// forwards those that do.
	ParentAuth407
	// ParentDeny403 answers 403 to every request.
	ParentDeny403
	// ParentSlow reads each request and never answers, until the client
	// goes away or the test ends.
	ParentSlow
)

// String names the mode as it reads in a test name.
func (m ParentMode) String() string {
	switch m {
	case ParentForward:
		return "forward"
	case ParentAuth407:
		return "auth407"
	case ParentDeny403:
		return "deny403"
	case ParentSlow:
		return "slow"
	default:
		return fmt.Sprintf("ParentMode(%d)", int(m))
	}
}

// ParentRealm is the realm ParentAuth407 challenges with.
const ParentRealm = "corp"

// ParentOptions configures a Parent.
type ParentOptions struct {
	// Mode is the behaviour; the zero value is ParentForward.
	Mode ParentMode
	// User and Pass are the only credentials ParentAuth407 accepts; other
	// modes ignore them. Empty values are compared like any other, so the
	// zero value accepts only "Basic " + base64(":").
	User, Pass string
	// Dial opens every upstream connection, for CONNECT and plain HTTP
	// alike, so a test can map names such as login.microsoftonline.com:443
	// to loopback fixtures. Nil dials the address as given, with a 5 s
	// timeout.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// parentDialTimeout bounds an upstream dial when ParentOptions.Dial is nil.
const parentDialTimeout = 5 * time.Second

// Parent is a real HTTP forward proxy on loopback, standing in for the
// corporate proxy m365tap chains to.
type Parent struct {
	opts      ParentOptions
	ln        net.Listener
	srv       *http.Server
	transport *http.Transport
	ctx       context.Context // canceled at cleanup; releases ParentSlow handlers and tunnel dials
	cancel    context.CancelFunc
	served    chan struct{} // closed when srv.Serve has returned

	// wg counts server connections (through ConnState), handlers, and
	// tunnel copiers. Every Add happens while the count is already above
	// zero or before Serve returns, which is what lets cleanup Wait safely.
	wg sync.WaitGroup

	mu       sync.Mutex
	requests int
	lastAuth string
	targets  []string
	tunnels  map[net.Conn]struct{}
	closed   bool
}

// NewParent starts a forward proxy on 127.0.0.1.
func NewParent(t testing.TB, opts ParentOptions) *Parent {
	t.Helper()
	switch opts.Mode {
	case ParentForward, ParentAuth407, ParentDeny403, ParentSlow:
	default:
		t.Fatalf("testnet: parent: unknown mode %v", opts.Mode)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testnet: parent: listen: %v", err)
	}
	p := &Parent{
		opts:    opts,
		ln:      ln,
		served:  make(chan struct{}),
		tunnels: make(map[net.Conn]struct{}),
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.transport = &http.Transport{
		// Never the environment's proxy: the parent is the last hop.
		Proxy:               nil,
		DialContext:         p.dial,
		ForceAttemptHTTP2:   false,
		DisableCompression:  true, // pass bodies through as the origin sent them
		TLSHandshakeTimeout: 5 * time.Second,
		IdleConnTimeout:     30 * time.Second,
	}
	p.srv = &http.Server{
		Handler:           http.HandlerFunc(p.serve),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          testLogger(t),
		ConnState: func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				p.wg.Add(1)
			case http.StateHijacked, http.StateClosed:
				p.wg.Done()
			}
		},
	}
	go func() {
		defer close(p.served)
		_ = p.srv.Serve(ln)
	}()
	t.Cleanup(p.close)
	return p
}

// Addr is the host:port the proxy listens on.
func (p *Parent) Addr() string { return p.ln.Addr().String() }

// URL is the proxy's URL, for http.ProxyURL.
func (p *Parent) URL() *url.URL { return &url.URL{Scheme: "http", Host: p.Addr()} }

// Requests is the number of requests the proxy has received, in any mode,
// answered or not.
func (p *Parent) Requests() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requests
}

// LastProxyAuthorization is the Proxy-Authorization header of the most
// recent request, empty if it had none.
func (p *Parent) LastProxyAuthorization() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastAuth
}

// Targets lists the requests' targets in arrival order: host:port for
// CONNECT, the absolute URL otherwise.
func (p *Parent) Targets() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.targets...)
}

func (p *Parent) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if p.opts.Dial != nil {
		return p.opts.Dial(ctx, network, addr)
	}
	d := net.Dialer{Timeout: parentDialTimeout}
	return d.DialContext(ctx, network, addr)
}

func (p *Parent) close() {
	// Serve stops first so no handler starts; then tunnels, which
	// http.Server.Close neither closes nor waits for, are closed by hand.
	_ = p.srv.Close()
	p.mu.Lock()
	p.closed = true
	tunnels := make([]net.Conn, 0, len(p.tunnels))
	for c := range p.tunnels {
		tunnels = append(tunnels, c)
	}
	p.mu.Unlock()
	p.cancel()
	for _, c := range tunnels {
		_ = c.Close()
	}
	<-p.served
	p.wg.Wait()
	p.transport.CloseIdleConnections()
}

func (p *Parent) serve(w http.ResponseWriter, r *http.Request) {
	p.wg.Add(1)
	defer p.wg.Done()

	target := r.URL.String()
	if r.Method == http.MethodConnect {
		target = r.Host
	}
	p.mu.Lock()
	p.requests++
	p.lastAuth = r.Header.Get("Proxy-Authorization")
	p.targets = append(p.targets, target)
	p.mu.Unlock()

	switch p.opts.Mode {
	case ParentDeny403:
		http.Error(w, "forbidden by proxy policy", http.StatusForbidden)
		return
	case ParentSlow:
		select {
		case <-r.Context().Done():
		case <-p.ctx.Done():
		}
		// Dropping the connection without a response is the point: a
		// normal return would send an empty 200.
		panic(http.ErrAbortHandler)
	case ParentAuth407:
		if !p.authorized(r) {
			w.Header().Set("Proxy-Authenticate", `Basic realm="`+ParentRealm+`"`)
			http.Error(w, "proxy authentication required", http.StatusProxyAuthRequired)
			return
		}
	}

	if r.Method == http.MethodConnect {
		p.tunnel(w, r)
		return
	}
	if !r.URL.IsAbs() {
		http.Error(w, "a proxy request needs an absolute URL", http.StatusBadRequest)
		return
	}
	p.forward(w, r)
}

func (p *Parent) authorized(r *http.Request) bool {
	scheme, cred, ok := strings.Cut(r.Header.Get("Proxy-Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return false
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	return ok && user == p.opts.User && pass == p.opts.Pass
}

// hopHeaders apply to one connection only and must not be forwarded (RFC
// 9110 section 7.6.1), with the proxy-specific ones added.
var hopHeaders = []string{
	"Connection",
	"Keep-Alive",
	"Proxy-Authenticate",
	"Proxy-Authorization",
	"Proxy-Connection",
	"TE",
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
}

func removeHopHeaders(h http.Header) {
	for _, f := range h.Values("Connection") {
		for name := range strings.SplitSeq(f, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopHeaders {
		h.Del(name)
	}
}

func (p *Parent) forward(w http.ResponseWriter, r *http.Request) {
	out := r.Clone(r.Context())
	out.RequestURI = ""
	removeHopHeaders(out.Header)
	resp, err := p.transport.RoundTrip(out)
	if err != nil {
		http.Error(w, "parent proxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	removeHopHeaders(resp.Header)
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

func (p *Parent) tunnel(w http.ResponseWriter, r *http.Request) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "connection cannot be hijacked", http.StatusInternalServerError)
		return
	}
	// Not r.Context(): net/http cancels it when the client half-closes
	// after its CONNECT, which a client may do before the tunnel is up.
	ctx, cancel := context.WithTimeout(p.ctx, parentDialTimeout)
	up, err := p.dial(ctx, "tcp", r.Host)
	cancel()
	if err != nil {
		http.Error(w, "parent proxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	down, brw, err := hj.Hijack()
	if err != nil {
		_ = up.Close()
		return
	}
	if !p.track(down, up) {
		return
	}
	defer p.untrack(down, up)
	// The server may have left a header deadline on the connection.
	_ = down.SetDeadline(time.Time{})
	if _, err := down.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		return
	}
	// A client may send its first bytes (a TLS ClientHello) right behind the
	// CONNECT head, and net/http may already have buffered them.
	if n := brw.Reader.Buffered(); n > 0 {
		early, _ := brw.Reader.Peek(n)
		if _, err := up.Write(early); err != nil {
			return
		}
	}
	// The tunnel ends when both directions have, so a client that
	// half-closes still gets the rest of the answer.
	upstreamDone := make(chan struct{})
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(upstreamDone)
		pipe(up, down)
	}()
	pipe(down, up)
	<-upstreamDone
}

// pipe copies src to dst. On EOF it passes the half-close on (CloseWrite)
// so the other direction can still finish; on an error it closes both, as
// a reset on one side means the tunnel is over.
func pipe(dst, src net.Conn) {
	if _, err := io.Copy(dst, src); err != nil {
		_ = dst.Close()
		_ = src.Close()
		return
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		return
	}
	_ = dst.Close()
}

// track registers a tunnel's two ends for cleanup, or closes them if
// cleanup has already run.
func (p *Parent) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		for _, c := range conns {
			_ = c.Close()
		}
		return false
	}
	for _, c := range conns {
		p.tunnels[c] = struct{}{}
	}
	return true
}

func (p *Parent) untrack(conns ...net.Conn) {
	p.mu.Lock()
	for _, c := range conns {
		delete(p.tunnels, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}
