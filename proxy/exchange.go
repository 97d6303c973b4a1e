package proxy

import (
	"bufio"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/m365tap/m365tap/pac"
	"github.com/m365tap/m365tap/rules"
)

// Route says how an exchange left the tap.
type Route uint8

const (
	RouteNone   Route = iota // never routed: denied or malformed before a route was chosen
	RouteDirect              // the tap resolved and dialled the destination itself
	RouteParent              // through the parent (corporate) proxy
)

func (r Route) String() string {
	switch r {
	case RouteDirect:
		return "direct"
	case RouteParent:
		return "parent"
	}
	return ""
}

// exchange is the record of one request or tunnel. The outer handler creates
// it, every later stage only writes facts into it, and finish emits it once.
type exchange struct {
	srv   *Server
	id    uint64
	start time.Time

	client    string
	method    string
	host      string // normalised destination host, no port
	port      int
	url       string // redacted, plain HTTP only
	userAgent string
	route     Route
	destIP    netip.Addr
	probe     bool // a request for the path of an NCSI-style probe rule
	reused    bool // plain HTTP served on a pooled upstream connection
	match     rules.Match
	// Scratch for rule_ids and dest_ip while the record is written: text
	// made in a stack buffer would escape through the encoder interface,
	// one allocation per event.
	ids        [64]byte
	ipText     [46]byte
	connecting bool // CONNECT
	tunnel     atomic.Bool

	outcome        rules.Outcome
	outcomeSet     bool
	err            string
	status         int // sent to the client
	upstreamStatus int
	bytesUp        int64
	bytesDown      int64
	dns            time.Duration
	connect        time.Duration
	ttfb           time.Duration
	hasDNS         bool
	hasConnect     bool
	hasTTFB        bool
	probeBody      string // first bytes of a mismatching probe body, sanitised
	tapFault       bool   // the failure is the tap's own (out of file descriptors): no article cause

	// Passive TLS observation of a tunnel.
	tlsSNI     string
	tlsVersion string
	tlsAlert   string
	// The leaf certificate the server side showed, TLS 1.2 and earlier.
	tlsIssuer, tlsSubject string
	// tlsTrusted: whether the chain the active probe was shown verified
	// against the system roots (or probe --ca-file); unknown for tunnels,
	// which see the leaf without its intermediates.
	tlsTrusted trust
	// tlsAlertClient: the alert was the client's (it refused what it was
	// shown), not the upstream's.
	tlsAlertClient bool

	// Plain HTTP plumbing, embedded so a request allocates one record.
	rw         responseWriter
	reqBody    countingBody
	respBody   upstreamBody
	respErr    error
	respDone   bool
	half       halfClose
	probeCheck bool
	probeBuf   []byte

	// The parent this exchange goes to (route parent): parent.url's, or
	// the one the PAC named (pacroute.go).
	parent *parentProxy
	// The PAC's decision, when a PAC is loaded.
	pac           bool
	pacResult     string
	pacErr        string
	pacElapsed    time.Duration
	pacEvaluated  bool // not from the cache: pacElapsed is its evaluation's
	pacHops       []pac.Hop
	pacFailedOver bool

	// Proxy authentication with the parent (relay.go).
	cc            *clientConn // the client connection, nil for the tap's own checks
	target        string      // the request target as sent, to recognise a handshake's next leg
	auth          authFacts
	got407        bool // the parent answered 407 and the client got it
	respClose     bool // the parent closed after its answer, so does the tap
	credsRejected bool // ... to credentials (a password or account problem)
	spnMismatch   bool // ... to a Kerberos ticket for another name than the parent's
	useTapCreds   bool // the tap's own traffic: its credentials go to the parent

	// CONNECT plumbing.
	pre         *net.TCPConn // a tunnel's parent connection, already answered 200 (relay.go)
	preEarly    []byte
	clientConn  net.Conn
	early       []byte // bytes the client sent together with the CONNECT head
	emptyReader bufio.Reader
	hijackRW    bufio.ReadWriter

	once sync.Once

	// The transport dials on a goroutine of its own, which net/http lets
	// outlive a canceled request (a later request may use the connection),
	// so the dial-phase fields (dns, connect, destIP and their flags) are
	// written under dialMu, and no longer once the event is written.
	dialMu sync.Mutex
	ended  bool
}

// fail records the first failure; later facts never overwrite the first cause.
func (ex *exchange) fail(o rules.Outcome, err error) {
	if ex.outcomeSet {
		return
	}
	ex.outcome, ex.outcomeSet = o, true
	if err != nil {
		ex.err = sanitize(err.Error())
		ex.tapFault = isTapFault(err)
	}
}

// finish emits the event exactly once.
func (ex *exchange) finish() {
	ex.once.Do(func() {
		ex.dialMu.Lock()
		ex.ended = true
		ex.dialMu.Unlock()
		ex.srv.emit(ex)
	})
}

// noteDNS records the lookup's duration, unless the event was written.
func (ex *exchange) noteDNS(d time.Duration) {
	ex.dialMu.Lock()
	if !ex.ended {
		ex.dns, ex.hasDNS = d, true
	}
	ex.dialMu.Unlock()
}

// noteConnect records a connect attempt's duration and, when valid, the
// address it reached, unless the event was written.
func (ex *exchange) noteConnect(d time.Duration, ip netip.Addr) {
	ex.dialMu.Lock()
	if !ex.ended {
		ex.connect, ex.hasConnect = d, true
		if ip.IsValid() {
			ex.destIP = ip
		}
	}
	ex.dialMu.Unlock()
}

// MarshalLogObject writes the event's flat snake_case fields. Keys live only
// here so that every format derives from one place; docs/events.md lists them.
func (ex *exchange) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddUint64("id", ex.id)
	enc.AddString("client", ex.client)
	enc.AddString("method", ex.method)
	enc.AddString("host", ex.host)
	if ex.port != 0 {
		enc.AddInt("port", ex.port)
	}
	if ex.url != "" {
		enc.AddString("url", ex.url)
	}
	if r := ex.route.String(); r != "" {
		enc.AddString("route", r)
	}
	if ex.route == RouteParent && ex.parent != nil {
		enc.AddString("parent", ex.parent.addr)
	}
	if ex.pac {
		enc.AddString("pac_result", ex.pacResult)
		if ex.pacEvaluated {
			enc.AddFloat64("pac_ms", ms(ex.pacElapsed))
		}
		if ex.pacErr != "" {
			enc.AddString("pac_error", ex.pacErr)
		}
		if ex.pacFailedOver {
			enc.AddBool("pac_failover", true)
		}
	}
	if ex.destIP.IsValid() {
		enc.AddByteString("dest_ip", ex.destIP.AppendTo(ex.ipText[:0]))
	}
	if ex.route == RouteParent {
		ex.marshalAuth(enc)
	}
	if ex.reused {
		enc.AddBool("reused", true)
	}
	enc.AddString("outcome", ex.outcome.String())
	enc.AddString("class", ex.outcome.Class().String())
	if ex.err != "" {
		enc.AddString("error", ex.err)
	}
	if ex.status != 0 {
		enc.AddInt("status", ex.status)
	}
	if ex.upstreamStatus != 0 {
		enc.AddInt("upstream_status", ex.upstreamStatus)
	}
	enc.AddInt64("bytes_up", ex.bytesUp)
	enc.AddInt64("bytes_down", ex.bytesDown)
	if ex.hasDNS {
		enc.AddFloat64("dns_ms", ms(ex.dns))
	}
	if ex.hasConnect {
		enc.AddFloat64("connect_ms", ms(ex.connect))
	}
	if ex.hasTTFB {
		enc.AddFloat64("ttfb_ms", ms(ex.ttfb))
	}
	enc.AddFloat64("duration_ms", ms(ex.srv.now().Sub(ex.start)))
	if ex.tlsSNI != "" {
		enc.AddString("tls_sni", ex.tlsSNI)
	}
	if ex.tlsVersion != "" {
		enc.AddString("tls_version", ex.tlsVersion)
	}
	if ex.tlsAlert != "" {
		enc.AddString("tls_alert", ex.tlsAlert)
	}
	if ex.tlsIssuer != "" {
		enc.AddString("tls_issuer", ex.tlsIssuer)
	}
	if ex.tlsSubject != "" {
		enc.AddString("tls_subject", ex.tlsSubject)
	}
	if ex.tlsTrusted != trustUnknown {
		enc.AddBool("tls_trusted", ex.tlsTrusted == trustYes)
	}
	if ex.probeBody != "" {
		enc.AddString("probe_body", ex.probeBody)
	}
	if ex.userAgent != "" {
		enc.AddString("user_agent", ex.userAgent)
	}
	ex.marshalRule(enc)
	return nil
}

// marshalAuth writes the proxy-authentication fields of an exchange that
// went to the parent. Never a token; a user name only with log.users.
func (ex *exchange) marshalAuth(enc zapcore.ObjectEncoder) {
	a := &ex.auth
	if a.mode == ParentAuthNone {
		a.mode = ParentAuthRelay
	}
	enc.AddString("parent_auth", a.mode.String())
	if s := a.scheme.String(); s != "" {
		enc.AddString("proxy_auth_scheme", s)
	}
	if a.offered != "" {
		enc.AddString("proxy_auth_offered", a.offered)
	}
	if a.legs > 0 {
		enc.AddInt("proxy_auth_legs", a.legs)
	}
	if a.user != "" {
		enc.AddString("proxy_auth_user", a.user)
	}
	if a.spn != "" {
		enc.AddString("proxy_auth_spn", a.spn)
	}
	if a.pinned {
		enc.AddBool("pinned", true)
	}
}

func (ex *exchange) marshalRule(enc zapcore.ObjectEncoder) {
	if r := ex.match.Rule; r != nil {
		enc.AddString("rule_id", r.ID)
		enc.AddByteString("rule_ids", ex.match.IDs(ex.ids[:0]))
		enc.AddString("rule_source", r.Source.String())
		enc.AddString("service_area", r.ServiceArea)
		enc.AddBool("required", r.Required)
		enc.AddBool("express_route", r.ExpressRoute)
		if r.Category != "" {
			enc.AddString("category", r.Category)
		}
		if ex.probe {
			enc.AddBool("probe", true)
		}
	}
	// The cause looks at every matched rule, not only the winner: a host
	// listed in an optional set and in a required Common one is required.
	// It also applies with no rule, when the parent proxy itself failed.
	c := ex.cause()
	if c == nil {
		return
	}
	enc.AddString("cause_id", c.ID.String())
	enc.AddString("cause_title", c.Title(ex.srv.opts.Language))
	enc.AddString("cause_remedy", c.Remedy(ex.srv.opts.Language))
}

// cause is the article's explanation of the outcome, if any. A failure of
// the tap's own resources has none: the article's causes blame the path.
func (ex *exchange) cause() *rules.Cause {
	if ex.tapFault {
		return nil
	}
	c, _ := ex.match.Cause(ex.outcome, ex.srv.opts.ExpressRoute)
	if c != nil && (c.ID == rules.CauseRequiredEndpointUnreachable || c.ID == rules.CauseExpressRoutePath) &&
		ex.outcome == rules.TLSFailure && ex.tlsAlertClient && rules.CertificateRejected(ex.tlsAlert) {
		// The endpoint was reached; the PC refused the certificate it was
		// shown, which a device inspecting TLS on the path presents: not
		// an unreachable host, nor an ExpressRoute routing question.
		c = rules.CauseByID(rules.CauseTLSInspection)
	}
	if c != nil && c.ID == rules.CauseDeviceProxySettings && (ex.credsRejected || ex.spnMismatch) {
		// The proxy address is right and the client answered its 407: the
		// account or the ticket's name is the problem, not the settings'
		// address (a probe keeps its §2 cause: NCSI's verdict is what
		// stops Office).
		c = rules.CauseByID(rules.CauseProxyCredentialsRejected)
	}
	return c
}

// ms renders a duration as milliseconds with microsecond resolution.
func ms(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}

func (s *Server) emit(ex *exchange) {
	if !ex.outcomeSet {
		ex.outcome = rules.OK
	}
	lvl := zapcore.InfoLevel
	if ex.outcome != rules.OK {
		lvl = zapcore.WarnLevel
	}
	if ce := s.log.Check(lvl, "exchange"); ce != nil {
		ce.Write(zap.Inline(ex))
	}
	s.inflight.Done()
}

func hostPortString(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}
