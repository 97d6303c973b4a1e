package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elazarl/goproxy"
	"go.uber.org/zap"

	"github.com/m365tap/m365tap/internal/redact"
	"github.com/m365tap/m365tap/pac"
	"github.com/m365tap/m365tap/proxyauth"
	"github.com/m365tap/m365tap/rules"
	"github.com/m365tap/m365tap/upstream"
)

// Options configures a Server. The zero value of each field is documented;
// main fills them from the config package, which this package does not import.
type Options struct {
	// Parent is the corporate proxy; nil routes everything direct.
	// Credentials in its userinfo are the tap's own Basic credentials when
	// ParentAuth is nil; they are never added to client exchanges unless
	// ParentAuthClients is set.
	Parent *url.URL
	// ParentAuth are the tap's own credentials for the parent. They always
	// go with the tap's own traffic (the active probe); nil: none beyond
	// Parent's userinfo. Clients' own credentials are relayed regardless.
	ParentAuth proxyauth.Client
	// ParentAuthClients also uses ParentAuth for client exchanges that
	// carry no credentials of their own; false: never.
	ParentAuthClients bool
	// ParentAuthNCSI extends ParentAuthClients to NCSI probe requests,
	// which then no longer show the 407 NCSI itself would get; false: never.
	ParentAuthNCSI bool
	// PAC chooses each exchange's way out as the PC would with its PAC
	// (parent.pac): the first hop, DIRECT or PROXY host:port (a *pac.Live
	// or *pac.Engine). Nil: Parent and Bypass decide. When it fails (not
	// loaded, an evaluation error, an unusable hop), Parent and Bypass
	// decide that exchange and its event says why.
	PAC PACFinder
	// PACFailover tries the PAC's next PROXY hop when one cannot be
	// reached; false: the first hop only, as WinHTTP does.
	PACFailover bool
	// LogUsers logs the user name of a relayed Basic or NTLM credential
	// (proxy_auth_user); false: never, as a user name is personal data.
	LogUsers bool
	// Bypass are host patterns (name or *.suffix) that always go direct.
	Bypass []string
	// ProbesDirect sends NCSI probe traffic direct even with a parent.
	ProbesDirect bool
	// DNSServers are host:port of DNS servers; empty uses the system resolver.
	DNSServers []string
	// Hosts override DNS, like /etc/hosts. Keys are lower case without a trailing dot.
	Hosts map[string]netip.Addr
	// Timeouts; zero takes the default noted in brackets.
	DNSTimeout            time.Duration // [5s]
	ConnectTimeout        time.Duration // [10s]
	ResponseHeaderTimeout time.Duration // [30s] also bounds a parent's answer to CONNECT and the TLS handshake with an https:// origin
	IdleTimeout           time.Duration // [90s] idle keep-alive client connections
	ReadHeaderTimeout     time.Duration // [10s]
	TunnelLinger          time.Duration // [30s] after one side of a tunnel half-closed; without progress after a plain client half-closed
	TunnelIdle            time.Duration // [0: none] close a tunnel with no traffic either way this long
	// ExpressRoute: the customer uses ExpressRoute (changes the cause chosen).
	ExpressRoute bool
	// Language of cause titles and remedies in events.
	Language rules.Language
	// AllowPorts are the destination ports CONNECT may reach; empty allows 80 and 443.
	AllowPorts []int
	// Allow are the client networks served; empty serves loopback clients only.
	Allow []netip.Prefix
	// Users maps user names to password hashes (bcrypt, or Argon2id/Argon2i
	// PHC strings); non-empty makes clients authenticate with
	// Proxy-Authorization Basic. Empty: no authentication.
	Users map[string][]byte
	// MaxConns bounds concurrent client connections ([4096]); negative: no bound.
	MaxConns int
	// MaxConnsPerClient bounds them per client address ([256]); negative: no bound.
	MaxConnsPerClient int
	// RedactQuery are query keys whose values are replaced in logged URLs,
	// in addition to the built-in token and code keys.
	RedactQuery []string
	// Rules holds the current rule set; reloads swap it. Nil matches nothing.
	Rules *atomic.Pointer[rules.Set]
	// Log receives one "exchange" event per exchange. Nil discards.
	Log *zap.Logger
	// Debug receives goproxy's and net/http's own text, kept out of the event stream. Nil discards.
	Debug *zap.Logger
}

// PACFinder answers the PAC's decision for one destination.
type PACFinder interface {
	FindProxy(ctx context.Context, t pac.Target) (pac.Decision, error)
}

// Server is the tap. Serve it on a listener; Shutdown stops it and waits
// until every exchange has logged its event.
type Server struct {
	opts   Options
	log    *zap.Logger
	gp     *goproxy.ProxyHttpServer
	tr     *http.Transport
	pool   *upstream.Pool // bodyless plain requests (plainpool.go)
	certs  certCache      // names of TLS 1.2 leaf certificates seen lately
	dial   *dialer
	parent *parentProxy
	bypass hostPatterns
	ports  map[int]bool
	hs     *http.Server
	now    func() time.Time

	nextID   atomic.Uint64
	inflight sync.WaitGroup
	tunnels  tunnels
	forced   atomic.Bool
	// forcedCtx is canceled when forced is set: half-closed plain
	// requests, whose context net/http no longer cancels, watch it.
	forcedCtx    context.Context
	cancelForced context.CancelFunc
	limits       connLimiter
	auth         *authenticator
	tapAuth      *tapCredentials // nil: the tap holds no parent credentials
	pacParents   sync.Map        // host:port -> *parentProxy, the PAC's proxies
	redact       *redact.Redactor

	mu     sync.Mutex
	listen []netip.AddrPort // our own listeners, for loop detection
	local  map[netip.Addr]bool
	// serving counts Serve calls under way, whose accept loops may still
	// count a refused connection in inflight; stopping (under mu) keeps a
	// Serve that starts after Shutdown from adding to it.
	serving  sync.WaitGroup
	stopping bool
}

func orDefaultInt(n, def int) int {
	if n == 0 {
		return def
	}
	return n
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// New builds a Server.
func New(opts Options) *Server {
	opts.DNSTimeout = orDefault(opts.DNSTimeout, 5*time.Second)
	opts.ConnectTimeout = orDefault(opts.ConnectTimeout, 10*time.Second)
	opts.ResponseHeaderTimeout = orDefault(opts.ResponseHeaderTimeout, 30*time.Second)
	opts.IdleTimeout = orDefault(opts.IdleTimeout, 90*time.Second)
	opts.ReadHeaderTimeout = orDefault(opts.ReadHeaderTimeout, 10*time.Second)
	opts.TunnelLinger = orDefault(opts.TunnelLinger, 30*time.Second)
	if len(opts.AllowPorts) == 0 {
		opts.AllowPorts = []int{80, 443}
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.Debug == nil {
		opts.Debug = zap.NewNop()
	}
	if opts.Rules == nil {
		opts.Rules = new(atomic.Pointer[rules.Set])
	}
	s := &Server{
		opts:   opts,
		log:    opts.Log,
		parent: newParent(opts.Parent),
		bypass: compilePatterns(opts.Bypass),
		ports:  make(map[int]bool, len(opts.AllowPorts)),
		now:    time.Now,
	}
	s.forcedCtx, s.cancelForced = context.WithCancel(context.Background())
	for _, p := range opts.AllowPorts {
		s.ports[p] = true
	}
	s.limits = connLimiter{max: orDefaultInt(opts.MaxConns, 4096), perClient: orDefaultInt(opts.MaxConnsPerClient, 256), byClient: map[netip.Addr]int{}}
	s.auth = newAuthenticator(opts.Users)
	if s.parent != nil {
		if opts.ParentAuth == nil && opts.Parent.User != nil {
			pass, _ := opts.Parent.User.Password()
			opts.ParentAuth = proxyauth.NewBasic(opts.Parent.User.Username(), pass)
			s.opts.ParentAuth = opts.ParentAuth
		}
		if opts.ParentAuth != nil {
			s.tapAuth = &tapCredentials{c: opts.ParentAuth}
		}
	}
	s.redact = redact.New(opts.RedactQuery)
	s.dial = &dialer{
		resolver:       newResolver(opts.DNSServers),
		servers:        opts.DNSServers,
		hosts:          opts.Hosts,
		dnsTimeout:     opts.DNSTimeout,
		connectTimeout: opts.ConnectTimeout,
		headerTimeout:  opts.ResponseHeaderTimeout,
		parent:         s.parent,
		now:            s.now,
		self:           s.isSelfAddr,
	}
	s.tr = &http.Transport{
		// Routes come from the exchange, never from HTTP_PROXY.
		Proxy:       s.proxyFor,
		DialContext: s.dialForTransport,
		// Byte counts are wire bytes and clients get the body as sent.
		DisableCompression:    true,
		ResponseHeaderTimeout: opts.ResponseHeaderTimeout,
		// No response head can come before the handshake: an https://
		// origin that accepts and never finishes it would otherwise hold
		// the request until the client gave up, and no event until then.
		TLSHandshakeTimeout:   opts.ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       opts.IdleTimeout,
		// goproxy's default keeps 2 idle connections per host, which makes
		// every burst redial; a tap in front of a few M365 hosts wants many.
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 256,
	}
	s.pool = upstream.NewPool(s.tr.MaxIdleConnsPerHost, s.tr.MaxIdleConns, opts.IdleTimeout)
	gp := goproxy.NewProxyHttpServer()
	gp.Tr = s.tr
	gp.ConnectDial = nil // goproxy's default chains through HTTPS_PROXY
	gp.ConnectDialWithReq = s.connectDial
	gp.ConnectionErrHandler = s.connectError
	gp.KeepAcceptEncoding = true
	// Proxy-Authorization stays: with a parent it is the parent's, and
	// onRequest removes it where it is not (direct routes, the tap's own
	// access.users credential).
	gp.KeepHeader = true
	gp.KeepDestinationHeaders = true
	gp.Logger = debugLogger{opts.Debug}
	gp.OnRequest().DoFunc(s.onRequest)
	s.gp = gp
	s.hs = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: opts.ReadHeaderTimeout,
		IdleTimeout:       opts.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ConnState:         s.connState,
		ConnContext:       connContext,
		ErrorLog:          zap.NewStdLog(opts.Debug),
	}
	return s
}

// Serve accepts connections on l until Shutdown.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		_ = l.Close()
		return nil
	}
	s.serving.Add(1)
	if ap, err := netip.ParseAddrPort(l.Addr().String()); err == nil {
		s.listen = append(s.listen, ap)
	}
	s.mu.Unlock()
	defer s.serving.Done()
	err := s.hs.Serve(&listener{Listener: l, s: s})
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting, lets in-flight exchanges finish within grace,
// then closes what is left (those exchanges end as shutdown) and waits for
// every event to be written.
func (s *Server) Shutdown(grace time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	_ = s.hs.Shutdown(ctx)
	// Shutdown closed the listeners; once every accept loop has returned,
	// each connection it refused is counted in inflight (see
	// listener.Accept), and the wait below covers its event. A loop backing
	// off after an accept error (EMFILE) notices within a second.
	waitAtMost(&s.serving, 5*time.Second)
	for s.tunnels.len() > 0 && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	s.forced.Store(true)
	s.cancelForced()
	_ = s.hs.Close()
	s.tunnels.abortAll()
	waitAtMost(&s.inflight, 5*time.Second)
	s.tr.CloseIdleConnections()
	s.pool.CloseIdle(true)
}

// waitAtMost waits for wg, or until d has passed.
func waitAtMost(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// maxUserAgent bounds a client-chosen string in every event.
const maxUserAgent = 256

// maxSNI bounds the server name a ClientHello may carry (up to 64 KiB on
// the wire; a DNS name is at most 253 bytes).
const maxSNI = 256

func (s *Server) rules() *rules.Set { return s.opts.Rules.Load() }

func (s *Server) begin(r *http.Request) *exchange {
	s.inflight.Add(1)
	ex := &exchange{srv: s, id: s.nextID.Add(1), start: s.now(), client: r.RemoteAddr, method: r.Method}
	if ua := r.Header.Get("User-Agent"); len(ua) > maxUserAgent {
		ex.userAgent = ua[:maxUserAgent]
	} else {
		ex.userAgent = ua
	}
	return ex
}

// ServeHTTP is the outer handler: it owns the exchange record, validates and
// classifies the request, then hands it to goproxy.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ex := s.begin(r)
	cc, _ := r.Context().Value(connKey{}).(*clientConn)
	if cc != nil {
		s.settle(cc)
		cc.current.Store(ex)
		ex.cc = cc
		ex.target = r.RequestURI
		s.carryLegs(cc, ex, r)
	} else {
		r = r.WithContext(context.WithValue(r.Context(), exchangeKey{}, ex))
	}
	defer func() {
		if p := recover(); p != nil {
			ex.fail(rules.ConnectionReset, errorf("internal error: %v", p))
			ex.finish()
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.opts.Debug.Error("panic in handler", zap.Any("panic", p))
		}
	}()
	if !s.clientAllowed(r.RemoteAddr) {
		s.refuse(w, ex, rules.Denied, "client address is not in access.allow")
		return
	}
	if s.auth != nil {
		if reason := s.auth.check(r); reason != "" {
			w.Header().Set("Proxy-Authenticate", `Basic realm="m365tap"`)
			s.refuseStatus(w, ex, rules.Denied, http.StatusProxyAuthRequired, reason)
			return
		}
		// The credential was the tap's own (access.users): it goes no
		// further. Config refuses access.users with a parent unless the
		// tap authenticates to the parent itself (parent.auth.clients).
		delete(r.Header, "Proxy-Authorization")
	}
	if r.Method == http.MethodConnect {
		s.serveConnect(w, r, ex)
		return
	}
	s.servePlain(w, r, ex)
}

func (s *Server) serveConnect(w http.ResponseWriter, r *http.Request, ex *exchange) {
	ex.connecting = true
	host, port, err := splitTarget(r.URL.Host, 0)
	if err != nil {
		s.refuse(w, ex, rules.BadRequest, "bad CONNECT target: "+err.Error())
		return
	}
	ex.host, ex.port = host, port
	if !s.ports[port] {
		s.refuse(w, ex, rules.Denied, "CONNECT port "+strconv.Itoa(port)+" is not in access.ports")
		return
	}
	if s.isSelf(host, port) {
		s.refuse(w, ex, rules.Denied, "request targets the tap itself")
		return
	}
	s.classify(ex, "")
	s.routePAC(r.Context(), ex, nil)
	if s.pacLoops(ex) {
		s.refuse(w, ex, rules.Denied, errPACLoop.Error())
		return
	}
	if ex.route == RouteParent {
		ex.auth.mode = ParentAuthRelay
		v := r.Header.Get("Proxy-Authorization")
		if v != "" {
			s.inspectAuth(ex, v)
		}
		tap := v == "" && s.tapForClient(ex) && !s.tapAuth.rejected.Load()
		if tap {
			ex.auth.mode, ex.auth.scheme = ParentAuthTap, s.tapAuth.c.Scheme()
		}
		// Every CONNECT to the parent goes out this way, not only those
		// with credentials: a 407 to an anonymous one must reach the
		// client whole and kept alive too, so that it can answer on the
		// same connection.
		if !s.relayConnect(w, r, ex, tap) {
			return // answered and logged (or its 407 waits for the next leg)
		}
	}
	ex.rw = responseWriter{ResponseWriter: w, ex: ex}
	s.gp.ServeHTTP(&ex.rw, r)
	if !ex.tunnel.Load() {
		ex.finish()
		return
	}
	// The tunnel lives on; net/http's response writer and its 4 KiB read
	// and write buffers must not live on with it in the exchange record.
	ex.rw.ResponseWriter = nil
	ex.hijackRW = bufio.ReadWriter{}
}

func (s *Server) servePlain(w http.ResponseWriter, r *http.Request, ex *exchange) {
	if !r.URL.IsAbs() || r.URL.Host == "" {
		s.refuse(w, ex, rules.BadRequest, "not a proxy request: the request target must be an absolute URL")
		return
	}
	def := 80
	switch r.URL.Scheme {
	case "http":
	case "https":
		def = 443
	default:
		s.refuse(w, ex, rules.BadRequest, "unsupported URL scheme "+strconv.Quote(r.URL.Scheme))
		return
	}
	host, port, err := splitTarget(r.URL.Host, def)
	if err != nil {
		s.refuse(w, ex, rules.BadRequest, "bad request target: "+err.Error())
		return
	}
	ex.host, ex.port = host, port
	ex.url = s.redact.Request(r.RequestURI, r.URL)
	if s.isSelf(host, port) {
		s.refuse(w, ex, rules.Denied, "request targets the tap itself")
		return
	}
	s.classify(ex, r.URL.Path)
	s.routePAC(r.Context(), ex, r.URL)
	if s.pacLoops(ex) {
		s.refuse(w, ex, rules.Denied, errPACLoop.Error())
		return
	}
	ex.rw = responseWriter{ResponseWriter: w, ex: ex}
	ctx, done := s.upstreamContext(r, ex)
	out := r.WithContext(ctx)
	if r.Body != nil && r.Body != http.NoBody {
		// The counting body goes on the copy only: net/http inspects the
		// request it holds after the handler, and an unread
		// Expect: 100-continue body it does not recognise as such is
		// drained while the client waits for the 100 that never comes.
		ex.reqBody = countingBody{rc: r.Body}
		out.Body = &ex.reqBody
	}
	s.gp.ServeHTTP(&ex.rw, out)
	done()
	if ex.clientConn != nil {
		// goproxy returns from a WebSocket relay when one side ends but
		// leaves the hijacked client connection open; close it so the
		// other relay goroutine ends too.
		_ = ex.clientConn.Close()
	}
	ex.dialMu.Lock()
	if !ex.hasConnect && ex.route == RouteDirect && ex.upstreamStatus != 0 {
		// Served on a pooled connection: no dial, same destination.
		ex.reused = true
		ex.destIP, _ = s.dial.dests.lookup(ex.host, ex.port)
	}
	ex.dialMu.Unlock()
	ex.bytesUp, _ = ex.reqBody.result()
	s.endPlain(ex)
	if ex.got407 && !ex.outcomeSet {
		s.settle407(ex, !r.Close && !ex.respClose)
		return
	}
	ex.finish()
}

// endPlain settles a plain exchange's outcome from what the body copies saw.
func (s *Server) endPlain(ex *exchange) {
	_, upErr := ex.reqBody.result()
	switch {
	case ex.respErr != nil:
		o, err := rules.ConnectionReset, ex.respErr
		if isTimeout(err) {
			o = rules.ResponseTimeout
		}
		if ex.rw.writeErr != nil || errors.Is(err, context.Canceled) {
			o = rules.ClientAborted
		}
		if ex.half.expired.Load() {
			o, err = rules.ClientAborted, s.halfClosedErr()
		}
		ex.fail(o, err)
	case upErr != nil:
		ex.fail(uploadOutcome(upErr), upErr)
	case ex.rw.writeErr != nil:
		ex.fail(rules.ClientAborted, ex.rw.writeErr)
	case ex.probeCheck:
		ex.checkProbeBody()
	}
	if s.forced.Load() && (!ex.outcomeSet || ex.outcome == rules.ClientAborted) && !ex.respDone {
		ex.outcome, ex.outcomeSet = rules.Shutdown, true
	}
}

// classify matches rules and chooses the route. An exchange is checked as
// a probe only when it asks for the probe's own path: the same host also
// serves /redirect, which is meant to redirect.
func (s *Server) classify(ex *exchange, path string) {
	if set := s.rules(); set != nil {
		ex.match = set.Match(ex.host, ex.port)
	}
	r := ex.match.Rule
	ex.probe = r != nil && r.Probe != nil && !ex.connecting && strings.EqualFold(path, r.Probe.Path)
	ex.route = s.routeFor(ex.host, ex.probe)
	if ex.route == RouteParent {
		ex.parent = s.parent
	}
}

// routeFor is the route traffic to host takes; probe is a request for a
// probe rule's path. The active probe asks it too, to know which route
// counts.
func (s *Server) routeFor(host string, probe bool) Route {
	switch {
	case s.parent == nil, s.bypass.match(host),
		s.opts.ProbesDirect && probe:
		return RouteDirect
	}
	return RouteParent
}

// refuse answers a request the tap will not forward, and logs it.
func (s *Server) refuse(w http.ResponseWriter, ex *exchange, o rules.Outcome, reason string) {
	s.refuseStatus(w, ex, o, clientStatus(o), reason)
}

func (s *Server) refuseStatus(w http.ResponseWriter, ex *exchange, o rules.Outcome, status int, reason string) {
	ex.fail(o, errors.New(reason))
	ex.status = status
	writeOutcome(w, o, ex.status)
	ex.finish()
}

func writeOutcome(w http.ResponseWriter, o rules.Outcome, status int) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-M365tap-Outcome", o.String())
	h.Set("Connection", "close")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, "m365tap: "+o.String()+"\n")
}

func (s *Server) clientAllowed(remote string) bool {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	if len(s.opts.Allow) == 0 {
		return ip.IsLoopback()
	}
	for _, p := range s.opts.Allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// isSelfAddr reports an address and port the tap itself listens on, as the
// dialer sees them after resolving: a listener on a wildcard address is
// every address of the machine (loopback, and each interface's, read once).
func (s *Server) isSelfAddr(ip netip.Addr, port int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.listen {
		if int(l.Port()) != port {
			continue
		}
		la := l.Addr().Unmap()
		switch {
		case la == ip:
			return true
		case la.IsUnspecified() && (ip.IsLoopback() || ip.IsUnspecified() || s.localAddrs()[ip]):
			return true
		}
	}
	return false
}

// localAddrs are the machine's interface addresses, read once; s.mu held.
func (s *Server) localAddrs() map[netip.Addr]bool {
	if s.local == nil {
		s.local = map[netip.Addr]bool{}
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if p, err := netip.ParsePrefix(a.String()); err == nil {
					s.local[p.Addr().Unmap()] = true
				}
			}
		}
	}
	return s.local
}

// isSelf reports a request aimed at one of our own listeners, which would
// loop through the tap until it ran out of sockets.
func (s *Server) isSelf(host string, port int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.listen {
		if int(l.Port()) != port {
			continue
		}
		if host == "localhost" {
			return true
		}
		ip, err := netip.ParseAddr(host)
		if err != nil {
			if a, ok := s.opts.Hosts[host]; ok {
				ip = a
			} else {
				continue
			}
		}
		ip = ip.Unmap()
		if ip == l.Addr().Unmap() || (l.Addr().IsUnspecified() && (ip.IsLoopback() || ip.IsUnspecified())) {
			return true
		}
	}
	return false
}

// proxyFor is the Transport's Proxy func: the exchange decided the route.
func (s *Server) proxyFor(r *http.Request) (*url.URL, error) {
	if ex := exchangeFrom(r.Context()); ex != nil && ex.route == RouteParent && ex.parent != nil {
		return ex.parent.url, nil
	}
	return nil, nil
}

// dialForTransport is the Transport's DialContext: the same dialer CONNECT uses.
func (s *Server) dialForTransport(ctx context.Context, _, addr string) (net.Conn, error) {
	ex := exchangeFrom(ctx)
	if ex != nil && ex.route == RouteParent {
		return s.dial.dialParent(ctx, ex)
	}
	host, port, err := splitTarget(addr, 0)
	if err != nil {
		return nil, newFailure(rules.BadRequest, err)
	}
	return s.dial.dialDirect(ctx, ex, host, port)
}

// connectDial is goproxy's ConnectDialWithReq: dial, then wrap the upstream
// in a tapConn that observes the handshake and emits the event at the end.
func (s *Server) connectDial(r *http.Request, _, _ string) (net.Conn, error) {
	ex := exchangeFrom(r.Context())
	if ex == nil {
		return nil, errors.New("m365tap: CONNECT without an exchange")
	}
	var (
		c     *net.TCPConn
		early []byte
		err   error
	)
	switch {
	case ex.pre != nil:
		// relayConnect already has the parent's 200 on the pinned connection.
		c, early = ex.pre, ex.preEarly
		ex.pre, ex.preEarly = nil, nil
	case ex.route == RouteParent:
		c, early, err = s.dial.connectViaParent(r.Context(), ex, hostPortString(ex.host, ex.port))
	default:
		c, err = s.dial.dialDirect(r.Context(), ex, ex.host, ex.port)
	}
	if err != nil {
		var f *failure
		if !errors.As(err, &f) {
			f = newFailure(classifyDial(err), err)
		}
		ex.fail(f.outcome, f.err)
		return nil, f
	}
	ex.status = http.StatusOK
	t := &tapConn{TCPConn: c, ex: ex, linger: s.opts.TunnelLinger, idle: s.opts.TunnelIdle, fromParent: early}
	t.up.init(true)
	t.down.init(false)
	ex.tunnel.Store(true)
	s.tunnels.add(t)
	return t, nil
}

func (s *Server) untrack(c *tapConn) { s.tunnels.remove(c) }

// connectError is goproxy's ConnectionErrHandler: the client gets a short
// answer naming the outcome, never the raw error with internal addresses.
func (s *Server) connectError(w io.Writer, ctx *goproxy.ProxyCtx, err error) {
	var f *failure
	if !errors.As(err, &f) {
		f = newFailure(classifyDial(err), err)
	}
	ex := exchangeFrom(ctx.Req.Context())
	if ex != nil {
		ex.fail(f.outcome, f.err)
		ex.status = f.status
	}
	body := "m365tap: " + f.outcome.String() + "\n"
	var b strings.Builder
	b.WriteString("HTTP/1.1 ")
	b.WriteString(strconv.Itoa(f.status))
	b.WriteByte(' ')
	b.WriteString(http.StatusText(f.status))
	b.WriteString("\r\nContent-Type: text/plain; charset=utf-8\r\nX-M365tap-Outcome: ")
	b.WriteString(f.outcome.String())
	for _, v := range f.proxyAuthenticate {
		b.WriteString("\r\nProxy-Authenticate: ")
		b.WriteString(strings.Map(headerSafe, v))
	}
	b.WriteString("\r\nConnection: close\r\nContent-Length: ")
	b.WriteString(strconv.Itoa(len(body)))
	b.WriteString("\r\n\r\n")
	b.WriteString(body)
	_, _ = io.WriteString(w, b.String())
}

func headerSafe(r rune) rune {
	if r == '\r' || r == '\n' {
		return -1
	}
	return r
}

// exchange lookup: the per-connection record is found through the
// connection the server stored in the context, which costs no allocation
// per request; requests served without our listener carry it directly, and
// so do plain requests once RoundTrip hands them to the transport.
type (
	connKey     struct{}
	exchangeKey struct{}
)

func connContext(ctx context.Context, c net.Conn) context.Context {
	if cc, ok := c.(*clientConn); ok {
		return context.WithValue(ctx, connKey{}, cc)
	}
	return ctx
}

func exchangeFrom(ctx context.Context) *exchange {
	// A request's own exchange first: RoundTrip binds it for the
	// transport's dials, which can outlive the request.
	if ex, ok := ctx.Value(exchangeKey{}).(*exchange); ok {
		return ex
	}
	if cc, ok := ctx.Value(connKey{}).(*clientConn); ok {
		return cc.current.Load()
	}
	return nil
}

// splitTarget parses host[:port] into a normalised host and a port.
func splitTarget(hostport string, defPort int) (string, int, error) {
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		if defPort == 0 {
			return "", 0, err
		}
		host, portStr = strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]"), strconv.Itoa(defPort)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, errors.New("invalid port " + strconv.Quote(portStr))
	}
	host = strings.TrimRight(strings.ToLower(host), ".")
	if host == "" {
		return "", 0, errors.New("empty host")
	}
	for i := 0; i < len(host); i++ {
		if c := host[i]; c <= ' ' || c == 0x7f || c == '/' || c == '@' || c == '[' || c == ']' {
			return "", 0, errors.New("invalid host " + strconv.Quote(host))
		}
	}
	if strings.IndexByte(host, ':') >= 0 {
		// Only an IPv6 literal has a colon; anything else is a port that
		// did not parse ("a]b:80" reaches here whole when the URL has
		// no port of its own).
		if _, err := netip.ParseAddr(host); err != nil {
			return "", 0, errors.New("invalid host " + strconv.Quote(host))
		}
	}
	return host, port, nil
}

// hostPatterns are compiled parent.bypass entries: exact names and *.suffix.
type hostPatterns struct {
	exact    map[string]bool
	suffixes []string // ".example.com"
}

func compilePatterns(list []string) hostPatterns {
	p := hostPatterns{exact: map[string]bool{}}
	for _, s := range list {
		s = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
		switch {
		case strings.HasPrefix(s, "*."):
			p.suffixes = append(p.suffixes, s[1:])
		case strings.HasPrefix(s, "."):
			p.suffixes = append(p.suffixes, s)
		case s != "":
			p.exact[s] = true
		}
	}
	return p
}

func (p hostPatterns) match(host string) bool {
	if p.exact[host] {
		return true
	}
	for _, suf := range p.suffixes {
		if strings.HasSuffix(host, suf) {
			return true
		}
	}
	return false
}

// debugLogger adapts goproxy's Printf logging to a zap logger at debug level.
type debugLogger struct{ l *zap.Logger }

func (d debugLogger) Printf(format string, v ...any) {
	if ce := d.l.Check(zap.DebugLevel, "goproxy"); ce != nil {
		ce.Write(zap.String("text", strings.TrimSpace(errorf(format, v...).Error())))
	}
}

var _ = bufio.NewReader
