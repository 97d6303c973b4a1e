package report

import (
	"net/netip"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/m365tap/m365tap/rules"
)

// Aggregate accumulates records. The zero value is ready to use; it is not
// safe for concurrent use (the Collector locks around it).
type Aggregate struct {
	// Rules, when set, files each host under the set rules.ReportRule
	// picks among every set that matches it (the Common set before a
	// SharePoint one); without it a host is filed under the rule the tap
	// chose, as its events say.
	Rules *rules.Set
	// Names maps a PC's address to the name shown beside it
	// (clients.names).
	Names map[string]string

	hosts   map[string]*hostAgg // by host; "" gathers the exchanges no rule matched
	causes  map[string]*causeAgg
	clients map[string]*clientAgg // by address, without the port

	first, last time.Time // bound the exchanges seen
	exchanges   int
	failed      int
	active      int // exchanges written by the active probe (probe_check)
	passive     int // every other exchange: a client's
	ncsiPassive int // clients' requests for an NCSI probe path
	// Clients' exchanges that went out with the tap's own credentials
	// (parent_auth "tap"), NCSI probe requests among them.
	tapAuth, tapAuthNCSI int
	// The PC's PAC (parent.pac): the last loaded, and failures to load.
	pac, pacSHA string
	pacFailed   int

	// From the start records: the last one wins.
	listen, version, parent, rulesVersion string
	expressRoute                          *bool
	starts                                int
	startTime                             time.Time
}

// hostAgg is one row of the report: every exchange with one host.
type hostAgg struct {
	host string
	port int // the first port seen, to match the host against Rules
	// The tap's rule for the host, from the latest exchange that had one.
	ruleID, source, area string
	ruleIDs              string
	required, probe      bool
	probeCheck           bool // seen by the active probe only, no rule (the DNS probe)

	exchanges, ok, failed int
	outcomes              map[string]int
	last                  Failure // valid when hasLast
	hasLast               bool
	cause                 string
	causeTime             time.Time

	// When: first exchange, first and last failure, last success.
	firstSeen, firstFail, lastFail, lastOK time.Time

	routes [numRoutes]struct{ ok, failed int }
	// requiredEP marks the endpoints of the article's §1 list.
	requiredEP bool
	// noRoute counts failures other than a parent's 407, which says
	// nothing about whether there is a route.
	noRoute int

	// pcs counts, per PC, its ok and failed exchanges with the host.
	pcs map[string]*pcCount
	// issuer is the certificate issuer a failed handshake showed, when the
	// tap could read it: the latest.
	issuer string
	// issuers are every issuer failed handshakes showed, with where each
	// was seen, so that PCs behind different devices are told apart.
	issuers []*issuerSeen
	// The active probe's checks of the host: how many, how many failed,
	// the latest outcome.
	checks, checksFailed int
	checkLast            string
	checkLastTime        time.Time
}

type pcCount struct{ ok, failed int }

// issuerSeen is one issuer of rejected certificates for one host: the PCs
// that were shown it, whether the active probe was, and whether the
// probe's roots trust its chain.
type issuerSeen struct {
	name    string
	pcs     map[string]bool
	probe   bool
	trusted *bool
}

// maxIssuers bounds the issuers kept per host; a path has one or two
// inspecting devices, not dozens.
const maxIssuers = 8

// noteIssuer files a failed handshake's issuer under the PC (or the active
// probe) that was shown it.
func (h *hostAgg) noteIssuer(r *Record, pc string) {
	h.issuer = r.TLSIssuer
	var is *issuerSeen
	for _, x := range h.issuers {
		if x.name == r.TLSIssuer {
			is = x
		}
	}
	if is == nil {
		if len(h.issuers) >= maxIssuers {
			return
		}
		is = &issuerSeen{name: r.TLSIssuer, pcs: map[string]bool{}}
		h.issuers = append(h.issuers, is)
	}
	switch {
	case r.ProbeCheck != "":
		is.probe = true
		if r.TLSTrusted != nil {
			is.trusted = r.TLSTrusted
		}
	case pc != "":
		is.pcs[pc] = true
	}
}

// causeAgg is one cause, by host.
type causeAgg struct {
	exchanges int
	hosts     map[string]*causeHost
}

// causeHost is one cause on one host.
type causeHost struct {
	exchanges, active int
	routes            map[string]int
	rules             map[string]bool
	// pcs counts the PCs' exchanges that had the cause.
	pcs map[string]int
}

// clientAgg is one PC.
type clientAgg struct {
	exchanges, failed int
	ncsi, ncsiFailed  int
	failedHosts       map[string]int
	causes            map[string]int
	first, last       time.Time
}

// maxHosts bounds each set of host names the aggregate keeps, so a tap
// that runs for weeks in front of a failing parent (every browsed host then
// has a cause) keeps bounded memory. Hosts beyond it are counted in the
// no-rule row, not named. maxClients bounds the PCs the same way: an
// office's central tap sees hundreds, not tens of thousands.
const (
	maxHosts   = 4096
	maxClients = 16384
)

const (
	routeNone = iota
	routeDirect
	routeParent
	numRoutes
)

func routeIndex(s string) int {
	switch s {
	case "direct":
		return routeDirect
	case "parent":
		return routeParent
	}
	return routeNone
}

// clientAddress is the PC of a record: its address without the port; ""
// for the active probe, which is the tap itself. It is a substring of
// r.Client, so the per-event path does not allocate; only an IPv4-mapped
// IPv6 address is rewritten (to its IPv4 form, as the PC is known).
func clientAddress(r *Record) string {
	if r.Client == "" || r.ProbeCheck != "" {
		return ""
	}
	host := r.Client
	if i := strings.LastIndexByte(host, ':'); i > 0 && !strings.HasSuffix(host[:i], ":") {
		if host[0] == '[' && host[i-1] == ']' {
			host = host[1 : i-1]
		} else if !strings.Contains(host[:i], ":") {
			host = host[:i]
		}
	}
	if strings.HasPrefix(host, "::ffff:") {
		if a, err := netip.ParseAddr(host); err == nil {
			return a.Unmap().String()
		}
	}
	return host
}

// Add accounts one record. Records other than "exchange" and "start" are
// ignored, so a whole log can be fed as it is.
func (a *Aggregate) Add(r *Record) {
	switch r.Msg {
	case "start":
		// The latest start record gives the settings, whatever order the
		// files are read in.
		if a.starts > 0 && r.Time.Before(a.startTime) {
			a.starts++
			return
		}
		a.starts++
		a.startTime = r.Time
		if r.Listen != "" {
			a.listen = r.Listen
		}
		a.version, a.parent, a.rulesVersion = r.Version, r.Parent, r.RulesVersion
		if r.ExpressRoute != nil {
			er := *r.ExpressRoute
			a.expressRoute = &er
		}
		return
	case "pac_loaded":
		a.pac, a.pacSHA = r.PAC, r.PACSHA256
		return
	case "pac_failed":
		a.pacFailed++
		if a.pac == "" {
			a.pac = r.PAC
		}
		return
	case "exchange":
	default:
		return
	}
	if r.ParentAuth == "tap" && r.ProbeCheck == "" {
		a.tapAuth++
		if r.Probe {
			a.tapAuthNCSI++
		}
	}
	if a.hosts == nil {
		a.hosts = map[string]*hostAgg{}
		a.causes = map[string]*causeAgg{}
		a.clients = map[string]*clientAgg{}
	}
	a.exchanges++
	if a.first.IsZero() || r.Time.Before(a.first) {
		a.first = r.Time
	}
	if r.Time.After(a.last) {
		a.last = r.Time
	}
	if r.ProbeCheck != "" {
		a.active++
	} else {
		a.passive++
		if r.Probe {
			a.ncsiPassive++
		}
	}
	failed := r.Class == rules.ClassFailed.String()
	ok := r.Outcome == rules.OK.String()
	if certificateRejected(r) {
		rc := *r // the caller's record stays as the tap wrote it
		rc.CauseID = rules.CauseTLSInspection.String()
		r = &rc
	}
	if failed {
		a.failed++
	}
	pc := clientAddress(r)

	key := ""
	if r.RuleID != "" || r.ProbeCheck != "" {
		key = r.Host
	}
	h := a.hosts[key]
	if h == nil && len(a.hosts) >= maxHosts {
		key, h = "", a.hosts[""]
	}
	if h == nil {
		h = &hostAgg{host: key, port: r.Port, outcomes: map[string]int{}, pcs: map[string]*pcCount{}}
		a.hosts[key] = h
	}
	if r.RuleID != "" {
		h.ruleID, h.source, h.area, h.required, h.ruleIDs = r.RuleID, r.RuleSource, r.ServiceArea, r.Required, r.RuleIDs
		h.probe = h.probe || r.RuleSource == rules.SourceNCSI.String() || r.Probe
	} else if key != "" && h.ruleID == "" {
		h.probeCheck = true
	}
	h.exchanges++
	if h.firstSeen.IsZero() || r.Time.Before(h.firstSeen) {
		h.firstSeen = r.Time
	}
	switch {
	case ok:
		h.ok++
		if r.Time.After(h.lastOK) {
			h.lastOK = r.Time
		}
	default:
		h.outcomes[r.Outcome]++
	}
	if failed {
		h.failed++
		if h.firstFail.IsZero() || r.Time.Before(h.firstFail) {
			h.firstFail = r.Time
		}
		if !r.Time.Before(h.lastFail) {
			h.lastFail = r.Time
		}
		if !h.hasLast || !r.Time.Before(h.last.Time) {
			h.last, h.hasLast = failureOf(r), true
		}
		if r.TLSIssuer != "" {
			h.noteIssuer(r, pc)
		}
	}
	if r.CauseID != "" && (h.cause == "" || !r.Time.Before(h.causeTime)) {
		h.cause, h.causeTime = r.CauseID, r.Time
	}
	if r.ProbeCheck != "" {
		h.checks++
		if failed {
			h.checksFailed++
		}
		if !r.Time.Before(h.checkLastTime) {
			h.checkLast, h.checkLastTime = r.Outcome, r.Time
		}
	}
	if key != "" {
		// A host whose winning rule is optional can still be required
		// through another matching rule; its failures' cause says so.
		h.requiredEP = h.requiredEP || requiredEndpoint(r)
		ri := routeIndex(r.Route)
		switch {
		case ok:
			h.routes[ri].ok++
		case failed:
			h.routes[ri].failed++
			if r.Outcome != rules.ParentAuthRequired.String() {
				h.noRoute++
			}
		}
	}
	if pc != "" && (ok || failed) {
		pcc := h.pcs[pc]
		if pcc == nil && len(h.pcs) < maxClients {
			pcc = new(pcCount)
			h.pcs[pc] = pcc
		}
		if pcc != nil {
			if ok {
				pcc.ok++
			} else {
				pcc.failed++
			}
		}
	}

	if r.CauseID != "" {
		c := a.causes[r.CauseID]
		if c == nil {
			c = &causeAgg{hosts: map[string]*causeHost{}}
			a.causes[r.CauseID] = c
		}
		c.exchanges++
		ch := c.hosts[r.Host]
		if ch == nil && len(c.hosts) >= maxHosts {
			ch = c.hosts[""]
		}
		if ch == nil {
			name := r.Host
			if len(c.hosts) >= maxHosts {
				name = ""
			}
			ch = &causeHost{routes: map[string]int{}, rules: map[string]bool{}, pcs: map[string]int{}}
			c.hosts[name] = ch
		}
		ch.exchanges++
		if r.RuleID != "" {
			ch.rules[r.RuleID] = true
		}
		if r.Route != "" {
			ch.routes[r.Route]++
		}
		if r.ProbeCheck != "" {
			ch.active++
		}
		if pc != "" && (len(ch.pcs) < maxClients || ch.pcs[pc] > 0) {
			ch.pcs[pc]++
		}
	}

	if pc != "" {
		cl := a.clients[pc]
		if cl == nil && len(a.clients) < maxClients {
			cl = &clientAgg{failedHosts: map[string]int{}, causes: map[string]int{}, first: r.Time}
			a.clients[pc] = cl
		}
		if cl != nil {
			cl.exchanges++
			if r.Time.Before(cl.first) {
				cl.first = r.Time
			}
			if r.Time.After(cl.last) {
				cl.last = r.Time
			}
			if r.Probe {
				cl.ncsi++
				if failed {
					cl.ncsiFailed++
				}
			}
			if failed {
				cl.failed++
				if len(cl.failedHosts) < maxHosts || cl.failedHosts[r.Host] > 0 {
					cl.failedHosts[r.Host]++
				}
			}
			if r.CauseID != "" {
				cl.causes[r.CauseID]++
			}
		}
	}
}

// certificateRejected: the PC refused the certificate a required endpoint
// was shown, which the tap's events may still file under
// required-endpoint-unreachable or expressroute-path: the host was reached,
// so the report names TLS inspection instead, before the ExpressRoute
// variant. An alert from the server is not the PC's refusal.
func certificateRejected(r *Record) bool {
	if r.Outcome != rules.TLSFailure.String() || !rules.CertificateRejected(r.TLSAlert) {
		return false
	}
	if r.TLSAlert != "encrypted" && !strings.HasPrefix(r.Error, "client ") {
		return false
	}
	switch r.CauseID {
	case rules.CauseRequiredEndpointUnreachable.String(), rules.CauseExpressRoutePath.String(), rules.CauseTLSInspection.String():
		return true
	}
	return false
}

// requiredEndpoint: the exchange is with an endpoint of the article's §1
// list, by its winning rule or by the cause the tap gave it (which looks at
// every matching rule).
func requiredEndpoint(r *Record) bool {
	switch r.CauseID {
	case rules.CauseRequiredEndpointUnreachable.String(), rules.CauseExpressRoutePath.String(), rules.CauseTLSInspection.String():
		return true
	}
	if r.RuleID == "" {
		return false
	}
	src, err := rules.ParseSource(r.RuleSource)
	if err != nil {
		return false
	}
	rule := rules.Rule{Source: src, ServiceArea: r.ServiceArea, Required: r.Required}
	if src == rules.SourceNCSI || r.Probe {
		rule.Probe = &rules.Probe{}
	}
	switch rules.KindOf(&rule) {
	case rules.KindCommonRequired, rules.KindUserRequired:
		return true
	}
	return false
}

// Failure is one failed exchange as the report shows it.
type Failure struct {
	Time       time.Time `json:"ts"`
	Host       string    `json:"host"`
	Port       int       `json:"port,omitempty"`
	Method     string    `json:"method,omitempty"`
	Route      string    `json:"route,omitempty"`
	Outcome    string    `json:"outcome"`
	Error      string    `json:"error,omitempty"`
	ProbeCheck string    `json:"probe_check,omitempty"`
	// Client is the PC's address; empty for the active probe.
	Client string `json:"client,omitempty"`
	DestIP string `json:"dest_ip,omitempty"`
	// PACResult is the PAC's answer behind the route taken.
	PACResult string `json:"pac_result,omitempty"`
}

func failureOf(r *Record) Failure {
	return Failure{Time: r.Time, Host: r.Host, Port: r.Port, Method: r.Method, Route: r.Route,
		Outcome: r.Outcome, Error: r.Error, ProbeCheck: r.ProbeCheck, Client: clientAddress(r), DestIP: r.DestIP,
		PACResult: r.PACResult}
}

// Collector is a zapcore.Core to tee onto the tap's event logger: it feeds
// every "exchange" and "start" record into an Aggregate as it is logged.
// It reads the event's fields through a picking ObjectEncoder, so each
// event costs one extra MarshalLogObject call into a pooled struct and a
// short critical section, and it never parses JSON. It accepts every level,
// whatever log.level filters out of the written log.
type Collector struct {
	st  *collectorState
	pre []zapcore.Field
}

type collectorState struct {
	mu  sync.Mutex
	agg Aggregate
}

// NewCollector returns an empty Collector.
func NewCollector() *Collector { return &Collector{st: &collectorState{}} }

var pickers = sync.Pool{New: func() any { return new(picker) }}

// Enabled accepts every level.
func (c *Collector) Enabled(zapcore.Level) bool { return true }

// With returns a Collector that reads fields before each record's own.
func (c *Collector) With(fields []zapcore.Field) zapcore.Core {
	pre := make([]zapcore.Field, 0, len(c.pre)+len(fields))
	return &Collector{st: c.st, pre: append(append(pre, c.pre...), fields...)}
}

// Check adds the Collector for the records it reads.
func (c *Collector) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if e.Message == "exchange" || e.Message == "start" {
		return ce.AddCore(e, c)
	}
	return ce
}

// Write picks the record's keys and adds it.
func (c *Collector) Write(e zapcore.Entry, fields []zapcore.Field) error {
	p := pickers.Get().(*picker)
	*p = picker{rec: Record{Msg: e.Message, Time: e.Time}}
	for i := range c.pre {
		c.pre[i].AddTo(p)
	}
	for i := range fields {
		fields[i].AddTo(p)
	}
	c.st.mu.Lock()
	c.st.agg.Add(&p.rec)
	c.st.mu.Unlock()
	*p = picker{}
	pickers.Put(p)
	return nil
}

// SetRules sets the rule set the summary files hosts with (Aggregate.Rules).
func (c *Collector) SetRules(s *rules.Set) {
	c.st.mu.Lock()
	c.st.agg.Rules = s
	c.st.mu.Unlock()
}

// SetNames sets the names the summary shows beside PCs' addresses
// (Aggregate.Names, clients.names).
func (c *Collector) SetNames(names map[string]string) {
	c.st.mu.Lock()
	c.st.agg.Names = names
	c.st.mu.Unlock()
}

// Sync has nothing to flush.
func (c *Collector) Sync() error { return nil }

// Summary summarises what was collected so far.
func (c *Collector) Summary(lang rules.Language) *Summary {
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	return c.st.agg.Summary(lang)
}

var _ zapcore.Core = (*Collector)(nil)
