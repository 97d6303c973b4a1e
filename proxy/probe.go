package proxy

// The active probe: what `m365tap probe` and probes.interval run. Every
// check goes out through the same dialer, resolver, transport and error
// classification as the traffic the tap forwards, is matched against the
// same rules and cause table, and is logged as an "exchange" event with a
// probe_check field, so a check and a real client's exchange to the same
// host read the same way.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/m365tap/m365tap/rules"
)

// CheckKind is what an active check does. String is the probe_check value
// in the log.
type CheckKind uint8

const (
	// CheckWeb GETs a probe rule's path over plain HTTP and expects 200
	// with the rule's text, as NCSI's web probe does.
	CheckWeb CheckKind = iota + 1
	// CheckDNSA asks for the A record of NCSIDNSHost and expects NCSIDNSv4.
	CheckDNSA
	// CheckDNSAAAA asks for the AAAA record of NCSIDNSHost and expects NCSIDNSv6.
	CheckDNSAAAA
	// CheckTLS opens a TCP connection and completes a TLS handshake with the
	// host as server name, verifying its certificate.
	CheckTLS
)

func (k CheckKind) String() string {
	switch k {
	case CheckWeb:
		return "web"
	case CheckDNSA:
		return "dns_a"
	case CheckDNSAAAA:
		return "dns_aaaa"
	case CheckTLS:
		return "tls"
	}
	return "check(" + strconv.Itoa(int(k)) + ")"
}

// NCSI's DNS probe, as Windows' NlaSvc defaults define it
// (ActiveDnsProbeHost, ActiveDnsProbeContent and its IPv6 sibling).
const NCSIDNSHost = "dns.msftncsi.com"

var (
	NCSIDNSv4 = netip.MustParseAddr("131.107.255.255")
	NCSIDNSv6 = netip.MustParseAddr("fd3e:4f5a:5b81::1")
)

// ncsiCurrentPath is the web probe path of Windows 10 v1607 and later. The
// built-in probes with another path serve only older Windows, so they are
// checked but not required.
const ncsiCurrentPath = "/connecttest.txt"

// Check is one active check on one route.
type Check struct {
	Kind CheckKind
	// Host is the name checked: the probe or endpoint host, or NCSIDNSHost.
	Host string
	// Port is the TCP port: the probe rule's port for CheckWeb, 443 for
	// CheckTLS. DNS checks ignore it.
	Port int
	// Path is the probe path CheckWeb requests.
	Path string
	// Route is RouteDirect or RouteParent; RouteParent without a parent
	// proxy, and any route of a DNS check, is taken as RouteDirect.
	Route Route
	// RootCAs verify CheckTLS certificates; nil means the system roots.
	RootCAs *x509.CertPool

	parent *parentProxy // RouteParent through the PAC's proxy; nil: parent.url's
}

// Result is what one check found. The same facts are in its event.
type Result struct {
	Check   Check
	Outcome rules.Outcome
	// Err is the raw error, as in the event's error field; "" for ok.
	Err string
	// Rule is the rule that matched the host, nil when none did (always for
	// DNS checks).
	Rule *rules.Rule
	// Cause is the article cause of a failure, nil when none applies.
	Cause *rules.Cause
	// UpstreamStatus is the origin's (or parent's) status for CheckWeb and
	// the parent's answer to CONNECT for CheckTLS through the parent.
	UpstreamStatus int
	// Answer is what came back when it did not match: the start of a probe
	// body, or the addresses a DNS query returned.
	Answer string
	// DestIP is the address connected to (direct route only).
	DestIP netip.Addr
	// TLSVersion is the negotiated version of a completed CheckTLS ("1.3").
	TLSVersion string
	// TLSIssuer is the issuer of the certificate CheckTLS was shown,
	// trusted or not.
	TLSIssuer string
	// Skipped is true when the check never ran because its context was
	// already done; such a check logs nothing.
	Skipped  bool
	Duration time.Duration
}

// OK reports whether the check passed.
func (r Result) OK() bool { return !r.Skipped && r.Outcome == rules.OK }

// ProbeTarget is one thing the active probe checks, on each of its routes.
type ProbeTarget struct {
	Kind CheckKind
	Host string
	Port int
	Path string
	// RuleID is the rule the target was taken from ("" for DNS checks).
	RuleID string
	// Required: a failure on Route fails the probe, unless Group says a
	// sibling passing is enough.
	Required bool
	// Group names targets that stand in for each other, as NCSI's IPv4 and
	// IPv6 probes do: one passing is enough. "" means the target stands alone.
	Group string
	// Route is the route the tap sends this traffic on.
	Route Route
	// Routes are the routes to check: direct, then the parent when one is
	// configured. DNS is never proxied, so DNS targets have direct only.
	Routes []Route
	// Parent is the parent checked on RouteParent: the proxy the PAC names
	// for this target, or parent.url's ("").
	Parent string
	// PACResult is what the PAC answered for the target ("" without one).
	PACResult string

	parent *parentProxy
}

// Check returns the check of t on route.
func (t ProbeTarget) Check(route Route, roots *x509.CertPool) Check {
	return Check{Kind: t.Kind, Host: t.Host, Port: t.Port, Path: t.Path, Route: route, RootCAs: roots, parent: t.parent}
}

// pacRoute puts the PAC's decision for t in it, as a client's exchange to
// the same host would get it: the route the tap takes, and the PAC's
// proxy to check the parent route through.
func (s *Server) pacRoute(t *ProbeTarget) {
	if s.opts.PAC == nil {
		return
	}
	ex := &exchange{srv: s, host: t.Host, port: t.Port, connecting: t.Kind == CheckTLS, probe: t.Kind == CheckWeb}
	ex.route = s.routeFor(t.Host, ex.probe)
	var u *url.URL
	if t.Kind == CheckWeb {
		u = &url.URL{Scheme: "http", Host: hostPortString(t.Host, t.Port), Path: t.Path}
		if t.Port == 80 {
			u.Host = t.Host
		}
	}
	s.routePAC(context.Background(), ex, u)
	if !ex.pac {
		return
	}
	t.PACResult, t.Route = ex.pacResult, ex.route
	if ex.route == RouteParent && ex.parent != nil && ex.parent != s.parent {
		t.parent, t.Parent = ex.parent, ex.parent.addr
		if !slices.Contains(t.Routes, RouteParent) {
			t.Routes = append(slices.Clip(t.Routes), RouteParent)
		}
	}
}

// ProbeTargets lists what the active probe checks with the rules now in
// force: every concrete host of every probe rule (the NCSI web probes and
// user probe rules) with its probe path; NCSI's DNS probe for A and AAAA;
// and a TLS handshake on port 443 with every concrete host (wildcards
// cannot be dialled) of the required Common sets and of user rules marked
// required that allow port 443.
//
// Requirements follow what Windows needs: the current NCSI web probes
// (/connecttest.txt) are required as a pair, since NCSI is satisfied by
// either its IPv4 or its IPv6 probe; the pre-v1607 probes (/ncsi.txt) are
// not required. The DNS probe is required, as a pair, only without a parent
// proxy: Windows uses it when it knows of no proxy, and otherwise decides on
// the web probe. Every TLS target is required on its own.
func (s *Server) ProbeTargets() []ProbeTarget {
	routes := []Route{RouteDirect}
	if s.parent != nil {
		routes = append(routes, RouteParent)
	}
	var web, endpoints []ProbeTarget
	seen := map[string]bool{}
	if set := s.rules(); set != nil {
		for _, r := range set.Rules() {
			kind := rules.KindOf(r)
			switch {
			case r.Probe != nil:
				port := 80
				if len(r.TCPPorts) > 0 {
					port = int(r.TCPPorts[0])
				}
				required, group := r.Required, ""
				if r.Source == rules.SourceNCSI {
					required = required && r.Probe.Path == ncsiCurrentPath
					group = "ncsi-web" + r.Probe.Path
				}
				for _, h := range concreteHosts(r.URLs) {
					key := "web " + h + ":" + strconv.Itoa(port) + r.Probe.Path
					if seen[key] {
						continue
					}
					seen[key] = true
					t := ProbeTarget{Kind: CheckWeb, Host: h, Port: port, Path: r.Probe.Path, RuleID: r.ID,
						Required: required, Group: group, Route: s.routeFor(h, true), Routes: routes}
					s.pacRoute(&t)
					web = append(web, t)
				}
			case (kind == rules.KindCommonRequired || kind == rules.KindUserRequired) && allowsPort(r, 443):
				for _, h := range concreteHosts(r.URLs) {
					if seen["tls "+h] {
						continue
					}
					seen["tls "+h] = true
					rid := r.ID
					if m := set.Match(h, 443); m.Rule != nil {
						rid = m.Rule.ID
					}
					t := ProbeTarget{Kind: CheckTLS, Host: h, Port: 443, RuleID: rid,
						Required: true, Route: s.routeFor(h, false), Routes: routes}
					s.pacRoute(&t)
					endpoints = append(endpoints, t)
				}
			}
		}
	}
	slices.SortStableFunc(endpoints, func(a, b ProbeTarget) int { return strings.Compare(a.Host, b.Host) })
	out := web
	for _, k := range []CheckKind{CheckDNSA, CheckDNSAAAA} {
		out = append(out, ProbeTarget{Kind: k, Host: NCSIDNSHost, Required: s.parent == nil, Group: "ncsi-dns",
			Route: RouteDirect, Routes: []Route{RouteDirect}})
	}
	return append(out, endpoints...)
}

// HostTarget is a TLS check on port 443 of host, a concrete name for a set
// the list names only by wildcard (*.officeapps.live.com): required when a
// required rule matches it, on the route and through the proxy the tap
// (and its PAC) would use for it.
func (s *Server) HostTarget(host string) ProbeTarget {
	host = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(host)), ".")
	routes := []Route{RouteDirect}
	if s.parent != nil {
		routes = append(routes, RouteParent)
	}
	t := ProbeTarget{Kind: CheckTLS, Host: host, Port: 443, Route: s.routeFor(host, false), Routes: routes}
	if set := s.rules(); set != nil {
		if m := set.Match(host, 443); m.Rule != nil {
			t.RuleID = m.Rule.ID
			for _, r := range m.All() {
				if k := rules.KindOf(r); k == rules.KindCommonRequired || k == rules.KindUserRequired {
					t.Required = true
				}
			}
		}
	}
	s.pacRoute(&t)
	return t
}

// ProbeChecks is every check of ProbeTargets on each of its routes, in order.
func (s *Server) ProbeChecks(roots *x509.CertPool) []Check {
	var out []Check
	for _, t := range s.ProbeTargets() {
		for _, r := range t.Routes {
			out = append(out, t.Check(r, roots))
		}
	}
	return out
}

func concreteHosts(urls []string) []string {
	var out []string
	for _, u := range urls {
		if u != "" && !strings.Contains(u, "*") {
			out = append(out, strings.TrimSuffix(strings.ToLower(u), "."))
		}
	}
	return out
}

func allowsPort(r *rules.Rule, port uint16) bool {
	return len(r.TCPPorts) == 0 || slices.Contains(r.TCPPorts, port)
}

// RunChecks runs checks with at most limit at a time (limit <= 0: 8) and
// returns their results in the order given. done, when not nil, is called
// once per result as it arrives, never concurrently. Checks not yet started
// when ctx ends are returned Skipped.
func (s *Server) RunChecks(ctx context.Context, checks []Check, limit int, done func(Result)) []Result {
	if limit <= 0 {
		limit = 8
	}
	out := make([]Result, len(checks))
	sem := make(chan struct{}, limit)
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	report := func(r Result) {
		if done != nil {
			mu.Lock()
			done(r)
			mu.Unlock()
		}
	}
	for i, c := range checks {
		started := false
		select {
		case sem <- struct{}{}:
			if started = ctx.Err() == nil; !started {
				<-sem
			}
		case <-ctx.Done():
		}
		if !started {
			out[i] = Result{Check: c, Outcome: rules.ClientAborted, Err: ctx.Err().Error(), Skipped: true}
			report(out[i])
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			out[i] = s.Check(ctx, c)
			report(out[i])
		}()
	}
	wg.Wait()
	return out
}

// Check runs one check and logs its event. A check whose context ends while
// it runs ends client_aborted, as a client that leaves does.
func (s *Server) Check(ctx context.Context, c Check) Result {
	c.Host = strings.TrimSuffix(strings.ToLower(c.Host), ".")
	if c.Route == RouteParent && s.parent == nil && c.parent == nil {
		c.Route = RouteDirect
	}
	ex := &exchange{srv: s, id: s.nextID.Add(1), start: s.now(), host: c.Host, route: c.Route}
	if c.Route == RouteParent {
		ex.parent = s.parent
		if c.parent != nil {
			ex.parent = c.parent
		}
	}
	ev := checkEvent{ex: ex, kind: c.Kind}
	res := Result{Check: c}
	switch c.Kind {
	case CheckWeb:
		ex.method, ex.port = http.MethodGet, c.Port
		s.matchCheck(ex, c.Path)
		s.checkWeb(ctx, ex, c)
	case CheckDNSA, CheckDNSAAAA:
		ex.route, res.Check.Route = RouteDirect, RouteDirect
		s.checkDNS(ctx, ex, c)
		// No rule covers the DNS probe's name; its failures are NCSI's and
		// take the cause a failing NCSI probe rule gets.
		ncsi := &rules.Rule{Source: rules.SourceNCSI, ServiceArea: "NCSI", Required: true, Probe: &rules.Probe{}}
		ev.cause = rules.CauseFor(ncsi, ex.outcome, s.opts.ExpressRoute)
		res.Cause = ev.cause
	case CheckTLS:
		ex.method, ex.port, ex.connecting = http.MethodConnect, c.Port, true
		s.matchCheck(ex, "")
		s.checkTLS(ctx, ex, c)
	default:
		ex.fail(rules.BadRequest, errors.New("unknown check "+c.Kind.String()))
	}
	if !ex.outcomeSet {
		ex.outcome, ex.outcomeSet = rules.OK, true
	}
	// A dial the transport still runs for a canceled check must not write
	// into the record from here on.
	ex.dialMu.Lock()
	ex.ended = true
	ex.dialMu.Unlock()
	res.Outcome, res.Err = ex.outcome, ex.err
	res.Rule = ex.match.Rule
	if c.Kind != CheckDNSA && c.Kind != CheckDNSAAAA {
		res.Cause = ex.cause()
	}
	res.UpstreamStatus, res.Answer, res.DestIP = ex.upstreamStatus, ex.probeBody, ex.destIP
	res.TLSVersion = ex.tlsVersion
	res.TLSIssuer = ex.tlsIssuer
	res.Duration = s.now().Sub(ex.start)

	lvl := zapcore.InfoLevel
	if ex.outcome != rules.OK {
		lvl = zapcore.WarnLevel
	}
	if ce := s.log.Check(lvl, "exchange"); ce != nil {
		ce.Write(zap.Inline(&ev))
	}
	return res
}

// matchCheck matches rules as classify does; the route was chosen by the
// caller, since the probe tries every route.
func (s *Server) matchCheck(ex *exchange, path string) {
	if set := s.rules(); set != nil {
		ex.match = set.Match(ex.host, ex.port)
	}
	r := ex.match.Rule
	ex.probe = r != nil && r.Probe != nil && !ex.connecting && strings.EqualFold(path, r.Probe.Path)
}

// checkEvent is a check's exchange event plus the probe_check field and,
// for DNS checks, the cause the exchange's own (rule-less) match cannot give.
type checkEvent struct {
	ex    *exchange
	kind  CheckKind
	cause *rules.Cause
}

func (e *checkEvent) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	if err := e.ex.MarshalLogObject(enc); err != nil {
		return err
	}
	if e.cause != nil {
		l := e.ex.srv.opts.Language
		enc.AddString("cause_id", e.cause.ID.String())
		enc.AddString("cause_title", e.cause.Title(l))
		enc.AddString("cause_remedy", e.cause.Remedy(l))
	}
	enc.AddString("probe_check", e.kind.String())
	return nil
}

// probeUserAgent is what NCSI is reported to send; filters that treat the
// probe specially then treat the check the same way.
const probeUserAgent = "Microsoft NCSI"

// checkWeb sends the probe request through the tap's own RoundTrip, which
// routes, dials and classifies it exactly as a client's request, then reads
// the body as the tap does when relaying it.
func (s *Server) checkWeb(ctx context.Context, ex *exchange, c Check) {
	u := &url.URL{Scheme: "http", Host: hostPortString(c.Host, c.Port), Path: c.Path}
	if c.Port == 80 {
		u.Host = c.Host
		if strings.Contains(c.Host, ":") {
			u.Host = "[" + c.Host + "]"
		}
	}
	ex.url = s.redact.URL(u)
	ex.userAgent = probeUserAgent
	req, err := http.NewRequestWithContext(context.WithValue(ctx, exchangeKey{}, ex), http.MethodGet, u.String(), nil)
	if err != nil {
		ex.fail(rules.BadRequest, err)
		return
	}
	req.Header.Set("User-Agent", probeUserAgent)
	req.Header.Set("Cache-Control", "no-cache")
	// NCSI closes after each probe; never leave a pooled connection behind.
	req.Close = true
	// The tap's own check carries its credentials, except an NCSI probe's:
	// NCSI runs as SYSTEM and sends none, so the check first asks as NCSI
	// does, then (below) with the credentials, to tell the two apart.
	ex.useTapCreds = ex.route == RouteParent && s.tapAuth != nil && !ex.probe
	resp, _ := s.RoundTrip(req, nil)
	if resp != nil && resp.Body != nil {
		n, _ := io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		if ex.upstreamStatus != 0 {
			// Not the tap's own one-line answer to a failure.
			ex.bytesDown = n
		}
		resp.Body.Close()
	}
	ex.dialMu.Lock()
	if !ex.hasConnect && ex.route == RouteDirect && ex.upstreamStatus != 0 {
		// Served on a pooled connection a client's request left behind.
		ex.reused = true
		ex.destIP, _ = s.dial.dests.lookup(ex.host, ex.port)
	}
	ex.dialMu.Unlock()
	s.endPlain(ex)
	if ex.got407 && !ex.outcomeSet {
		s.explain407(ex)
		if ex.probe && s.tapAuth != nil {
			s.probeWithTapCreds(ctx, ex, u)
		}
	}
}

// probeWithTapCreds asks for an NCSI probe that got 407 again, with the
// tap's credentials, and says in the check's error what that shows: a
// probe that passes only with credentials is still the article's §2 cause,
// because NCSI itself cannot give them.
func (s *Server) probeWithTapCreds(ctx context.Context, ex *exchange, u *url.URL) {
	tx := &exchange{srv: s, start: s.now(), host: ex.host, port: ex.port, route: RouteParent, parent: ex.parent, match: ex.match, probe: true, useTapCreds: true}
	req, err := http.NewRequestWithContext(context.WithValue(ctx, exchangeKey{}, tx), http.MethodGet, u.String(), nil)
	if err != nil {
		return
	}
	req.Header.Set("User-Agent", probeUserAgent)
	req.Close = true
	resp, _ := s.RoundTrip(req, nil)
	if resp != nil && resp.Body != nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}
	tx.dialMu.Lock()
	tx.ended = true
	tx.dialMu.Unlock()
	scheme := s.tapAuth.c.Scheme().String()
	switch {
	case tx.upstreamStatus >= 200 && tx.upstreamStatus < 300:
		ex.err += "; with the tap's own " + scheme + " credentials the probe passes: the parent demands authentication from NCSI, which runs as SYSTEM and cannot answer a 407, so Windows decides there is no internet even though authenticated traffic works"
	case tx.upstreamStatus == http.StatusProxyAuthRequired:
		ex.err += "; the tap's own " + scheme + " credentials were refused too"
	case tx.err != "":
		ex.err += "; with the tap's own " + scheme + " credentials: " + tx.err
	}
}

// checkDNS asks the tap's resolver for one address family of the DNS
// probe's name, honouring hosts overrides as every lookup of the tap does.
func (s *Server) checkDNS(ctx context.Context, ex *exchange, c Check) {
	network, want := "ip4", NCSIDNSv4
	if c.Kind == CheckDNSAAAA {
		network, want = "ip6", NCSIDNSv6
	}
	ips, err := s.dial.lookupFamily(ctx, ex, c.Host, network)
	if err != nil {
		var f *failure
		if errors.As(err, &f) {
			ex.fail(f.outcome, f.err)
		} else {
			ex.fail(classifyDNS(err), err)
		}
		if ctx.Err() != nil {
			ex.outcome = rules.ClientAborted
		}
		return
	}
	got := make([]string, len(ips))
	for i, ip := range ips {
		if ip.Unmap() == want {
			return
		}
		got[i] = ip.Unmap().String()
	}
	ex.probeBody = printable([]byte(strings.Join(got, ",")), 64)
	qtype := "A"
	if network == "ip6" {
		qtype = "AAAA"
	}
	ex.fail(rules.ProbeContentMismatch, errors.New(c.Host+" "+qtype+" answered "+strings.Join(got, ", ")+", want "+want.String()))
}

// lookupFamily is resolve for one address family.
func (d *dialer) lookupFamily(ctx context.Context, ex *exchange, host, network string) ([]netip.Addr, error) {
	if ip, ok := d.hosts[host]; ok {
		if ip.Is4() == (network == "ip4") {
			return []netip.Addr{ip}, nil
		}
		return nil, newFailure(rules.DNSNXDomain, errors.New("lookup "+host+": hosts override has no "+network+" address"))
	}
	return d.lookup(ctx, ex, host, network)
}

// checkTLS dials as a CONNECT would (direct, or a CONNECT through the
// parent) and completes a TLS handshake.
func (s *Server) checkTLS(ctx context.Context, ex *exchange, c Check) {
	var (
		conn  *net.TCPConn
		early []byte
		err   error
	)
	if ex.route == RouteParent {
		conn, early, err = s.tapConnect(ctx, ex, hostPortString(c.Host, c.Port))
	} else {
		conn, err = s.dial.dialDirect(ctx, ex, c.Host, c.Port)
	}
	if err != nil {
		var f *failure
		if !errors.As(err, &f) {
			f = newFailure(classifyDial(err), err)
		}
		ex.fail(f.outcome, f.err)
		if ctx.Err() != nil {
			ex.outcome = rules.ClientAborted
		}
		return
	}
	defer conn.Close()
	ex.tlsSNI = c.Host
	cc := &checkConn{Conn: conn, ex: ex, early: early}
	tc := tls.Client(cc, &tls.Config{ServerName: c.Host, RootCAs: c.RootCAs})
	_ = conn.SetDeadline(s.now().Add(s.opts.ResponseHeaderTimeout))
	err = tc.HandshakeContext(ctx)
	// The certificate the tap was shown, whatever the version: in TLS 1.3
	// a PC's tunnel cannot show it, so the probe's is the one to compare
	// with (a TLS-inspecting device's own issuer, issue 13).
	var shown []*x509.Certificate
	var cve *tls.CertificateVerificationError
	switch {
	case err == nil:
		shown = tc.ConnectionState().PeerCertificates
	case errors.As(err, &cve):
		shown = cve.UnverifiedCertificates
	}
	if len(shown) > 0 {
		ex.tlsIssuer = printable([]byte(shown[0].Issuer.String()), maxCertName)
		ex.tlsSubject = printable([]byte(shown[0].Subject.String()), maxCertName)
		ex.tlsTrusted = chainTrust(err, shown, c.RootCAs)
	}
	if err == nil {
		ex.tlsVersion = tlsVersionName(tc.ConnectionState().Version)
		_ = tc.Close()
		return
	}
	switch o, alert := classifyHandshake(err); {
	case ctx.Err() != nil:
		ex.fail(rules.ClientAborted, err)
	default:
		// The probe is the client: a certificate it refused is refused
		// on the client's side, as a PC's would be.
		ex.tlsAlert, ex.tlsAlertClient = alert, cve != nil
		ex.fail(o, err)
	}
}

// trust is whether a certificate chain verified against the roots in use.
type trust uint8

const (
	trustUnknown trust = iota
	trustYes
	trustNo
)

// chainTrust says whether the chain shown to a check verifies against
// roots (nil: the system's), whatever name it was issued for: a handshake
// that failed only on the name was shown a trusted chain, which is not
// what a device inspecting TLS with its own CA shows.
func chainTrust(handshake error, shown []*x509.Certificate, roots *x509.CertPool) trust {
	if handshake == nil {
		return trustYes
	}
	inter := x509.NewCertPool()
	for _, c := range shown[1:] {
		inter.AddCert(c)
	}
	if _, err := shown[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter}); err != nil {
		return trustNo
	}
	return trustYes
}

// classifyHandshake maps a failed handshake as the tunnel verdict does: a
// reset is connection_reset, anything else (an alert, a certificate the
// tap rejects, a server that closes or never answers) tls_failure. The
// alert is the one the server sent, or bad_certificate, which crypto/tls
// sends when it rejects the server's certificate.
func classifyHandshake(err error) (rules.Outcome, string) {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "remote error" {
		// crypto/tls reports a received alert as an unexported uint8 type.
		if v := reflect.ValueOf(oe.Err); v.IsValid() && v.Kind() == reflect.Uint8 {
			return rules.TLSFailure, alertName(int(v.Uint()))
		}
		return rules.TLSFailure, ""
	}
	var cve *tls.CertificateVerificationError
	if errors.As(err, &cve) {
		return rules.TLSFailure, "bad_certificate"
	}
	if isReset(err) {
		return rules.ConnectionReset, ""
	}
	return rules.TLSFailure, ""
}

// checkConn counts a check's handshake bytes and its first byte back, and
// replays what a parent sent right behind its 200.
type checkConn struct {
	net.Conn
	ex    *exchange
	early []byte
}

func (c *checkConn) Read(p []byte) (int, error) {
	var (
		n   int
		err error
	)
	if len(c.early) > 0 {
		n = copy(p, c.early)
		c.early = c.early[n:]
	} else {
		n, err = c.Conn.Read(p)
	}
	if n > 0 {
		if !c.ex.hasTTFB {
			c.ex.ttfb, c.ex.hasTTFB = c.ex.srv.now().Sub(c.ex.start), true
		}
		c.ex.bytesDown += int64(n)
	}
	return n, err
}

func (c *checkConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.ex.bytesUp += int64(n)
	return n, err
}
