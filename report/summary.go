package report

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/m365tap/m365tap/messages"
	"github.com/m365tap/m365tap/rules"
)

// Summary is the session's diagnosis. Its JSON form is the output of
// `m365tap report --format json` and the fields of the "report" record.
type Summary struct {
	Language string `json:"language"`
	// From and To bound the exchanges seen; absent when there were none.
	From *time.Time `json:"from,omitempty"`
	To   *time.Time `json:"to,omitempty"`
	// Settings are the tap's, from its start record.
	Settings Settings `json:"settings"`
	// Exchanges counts every exchange; Failed those of class failed.
	Exchanges int `json:"exchanges"`
	Failed    int `json:"failed"`
	// ProbeChecks counts the exchanges the active probe made.
	ProbeChecks int `json:"probe_checks"`
	// NCSIProbes counts clients' requests for an NCSI probe path.
	NCSIProbes int `json:"ncsi_probes"`
	// PCs counts the client addresses seen.
	PCs int `json:"pcs"`
	// Verdict lists the article causes that apply, most important first,
	// split by where they were seen: on every PC, on one, on some.
	Verdict []Finding `json:"verdict"`
	// Clients are the PCs, most failures first.
	Clients []ClientSummary `json:"clients"`
	// Endpoints are the hosts, required endpoints and probes first.
	Endpoints []EndpointSummary `json:"endpoints"`
	// Facts are what the events say only taken together.
	Facts []Fact `json:"facts"`
	// Notices qualify the whole report and come before the verdict: what
	// the tap did that a PC without it would not (it lent its own
	// credentials to the parent).
	Notices []Fact `json:"notices,omitempty"`
	// Article names the support article the causes come from.
	Article Article `json:"article"`
}

// Settings are the tap's settings for the session, as its start record
// says; empty when the log has no start record.
type Settings struct {
	Listen       string `json:"listen,omitempty"`
	Parent       string `json:"parent,omitempty"`
	ExpressRoute *bool  `json:"express_route,omitempty"`
	RulesVersion string `json:"rules_version,omitempty"`
	TapVersion   string `json:"tap_version,omitempty"`
	// PAC is parent.pac and the SHA-256 of the script last loaded; PACFailed
	// counts pac_failed records (the tap then routed without it).
	PAC       string `json:"pac,omitempty"`
	PACSHA256 string `json:"pac_sha256,omitempty"`
	PACFailed int    `json:"pac_failed,omitempty"`
}

// Article is the Microsoft Japan support article, by its title.
type Article struct {
	Title  string `json:"title"`
	Source string `json:"source"`
	Note   string `json:"note"`
}

// EndpointSummary is one host's line.
type EndpointSummary struct {
	// Host is "" for the line of the exchanges no rule matched.
	Host string `json:"host"`
	// RuleID is the set the host is filed under (rules.ReportRule);
	// TapRuleID the tap's winner when it differs.
	RuleID      string `json:"rule_id,omitempty"`
	TapRuleID   string `json:"tap_rule_id,omitempty"`
	RuleSource  string `json:"rule_source,omitempty"`
	ServiceArea string `json:"service_area,omitempty"`
	Required    bool   `json:"required"`
	Probe       bool   `json:"probe"`
	Exchanges   int    `json:"exchanges"`
	OK          int    `json:"ok"`
	Failed      int    `json:"failed"`
	// Outcomes counts every outcome other than ok.
	Outcomes map[string]int `json:"outcomes"`
	// CauseID is the cause of the latest exchange that had one.
	CauseID string `json:"cause_id,omitempty"`
	// PCsTried counts the PCs that exchanged with the host; PCsFailed
	// those with a failure, PCsOK those with a success. FailedPCs names
	// the failing ones.
	PCsTried  int      `json:"pcs_tried"`
	PCsFailed int      `json:"pcs_failed"`
	PCsOK     int      `json:"pcs_ok"`
	FailedPCs []string `json:"failed_pcs"`
	Timeline  Timeline `json:"timeline"`
	// ActiveChecks counts the active probe's checks of the host,
	// ActiveFailed the failed ones; ActiveLast is the latest outcome.
	ActiveChecks int    `json:"active_checks"`
	ActiveFailed int    `json:"active_failed"`
	ActiveLast   string `json:"active_last,omitempty"`
	// TLSIssuer is the issuer of the certificate a failed handshake showed
	// (the latest); TLSIssuers lists every one with where it was seen.
	TLSIssuer   string   `json:"tls_issuer,omitempty"`
	TLSIssuers  []Issuer `json:"tls_issuers,omitempty"`
	LastFailure *Failure `json:"last_failure,omitempty"`
}

// Issuer is one issuer of the certificates failed handshakes with a host
// showed.
type Issuer struct {
	Issuer string `json:"issuer"`
	// PCs were shown it; ActiveProbe says the tap's active probe was.
	PCs         []string `json:"pcs"`
	ActiveProbe bool     `json:"active_probe"`
	// Trusted is the probe's tls_trusted for it: whether its chain
	// verifies against the roots of the machine the tap runs on.
	Trusted *bool `json:"trusted,omitempty"`
}

// Timeline says when: the host's first exchange, first and last failure,
// last success.
type Timeline struct {
	FirstSeen    *time.Time `json:"first_seen,omitempty"`
	FirstFailure *time.Time `json:"first_failure,omitempty"`
	LastFailure  *time.Time `json:"last_failure,omitempty"`
	LastSuccess  *time.Time `json:"last_success,omitempty"`
}

// ClientSummary is one PC's line.
type ClientSummary struct {
	Address    string `json:"address"`
	Name       string `json:"name,omitempty"`
	Exchanges  int    `json:"exchanges"`
	Failed     int    `json:"failed"`
	NCSIProbes int    `json:"ncsi_probes"`
	NCSIFailed int    `json:"ncsi_failed"`
	// FailedHosts are the hosts it failed with, most failures first.
	FailedHosts []string `json:"failed_hosts"`
	// Causes are the causes its exchanges had, in verdict order.
	Causes []string  `json:"causes"`
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
}

// Scope says where a cause was seen, which is the article's first
// question: many PCs (look at the shared path) or a specific PC (look at
// that PC).
type Scope string

const (
	ScopeAll    Scope = "all_pcs"   // every PC that tried the host failed, and more than one did
	ScopeSome   Scope = "some_pcs"  // several PCs failed, others reached the host
	ScopeSingle Scope = "single_pc" // one PC failed while the others reached the host
	ScopeOnePC  Scope = "one_pc"    // only one PC tried the host: no comparison possible
	ScopeTap    Scope = "tap"       // only the tap's active probe saw it
)

var scopeOrder = []Scope{ScopeAll, ScopeSome, ScopeSingle, ScopeOnePC, ScopeTap}

// Finding is one article cause that applies, on one scope.
type Finding struct {
	CauseID   string `json:"cause_id"`
	Section   string `json:"section"`
	Title     string `json:"title"`
	Remedy    string `json:"remedy"`
	Reference string `json:"reference"`
	Scope     Scope  `json:"scope"`
	// Where is the scope as a sentence: where to look first.
	Where string `json:"where"`
	// PCsTried counts the PCs that tried the finding's hosts, PCsFailed
	// those that failed; PCs names the failing ones.
	PCsTried  int      `json:"pcs_tried"`
	PCsFailed int      `json:"pcs_failed"`
	PCs       []string `json:"pcs"`
	// Exchanges counts the exchanges that had this cause, ProbeChecks
	// those of them the active probe made.
	Exchanges   int            `json:"exchanges"`
	ProbeChecks int            `json:"probe_checks"`
	Hosts       []string       `json:"hosts"`
	RuleIDs     []string       `json:"rule_ids"`
	Routes      map[string]int `json:"routes,omitempty"`
}

// Fact is a finding of the report itself.
type Fact struct {
	// ID is stable: no_traffic, no_ncsi_probe, parent_only, all_required_failed.
	ID   string `json:"id"`
	Text string `json:"text"`
}

// causePriority orders the verdict. A failing NCSI probe comes first: while
// Windows reports no internet, Office does not try any endpoint. A broken
// parent proxy comes next, since every exchange through it fails whatever
// the endpoint. Then the endpoints themselves, and the ExpressRoute
// refinement of the same finding. Causes not listed follow in CauseID
// order.
var causePriority = []rules.CauseID{
	rules.CauseNCSINoInternet,
	rules.CauseDeviceProxySettings,
	rules.CauseProxyCredentialsRejected,
	// The host was reached and its certificate refused: a named device to
	// change, before the reachability of the other endpoints.
	rules.CauseTLSInspection,
	rules.CauseRequiredEndpointUnreachable,
	rules.CauseExpressRoutePath,
}

func verdictOrder() []rules.CauseID {
	out := slices.Clone(causePriority)
	for _, c := range rules.Causes() {
		if !slices.Contains(out, c.ID) {
			out = append(out, c.ID)
		}
	}
	return out
}

// Summary builds the diagnosis of what was added so far, with its texts in
// lang.
func (a *Aggregate) Summary(lang rules.Language) *Summary {
	p := messages.For(lang)
	s := &Summary{
		Language:    lang.String(),
		Exchanges:   a.exchanges,
		Failed:      a.failed,
		ProbeChecks: a.active,
		NCSIProbes:  a.ncsiPassive,
		PCs:         len(a.clients),
		Settings: Settings{Listen: a.listen, Parent: a.parent, ExpressRoute: a.expressRoute,
			RulesVersion: a.rulesVersion, TapVersion: a.version, PAC: a.pac, PACSHA256: a.pacSHA, PACFailed: a.pacFailed},
		Endpoints: []EndpointSummary{},
		Clients:   []ClientSummary{},
		Verdict:   []Finding{},
		Facts:     []Fact{},
		Article:   Article{Title: p.T("article.title", nil), Source: p.T("article.source", nil), Note: p.T("article.note", nil)},
	}
	if a.exchanges > 0 {
		from, to := a.first.UTC(), a.last.UTC()
		s.From, s.To = &from, &to
	}
	for _, h := range a.hosts {
		s.Endpoints = append(s.Endpoints, a.endpoint(h))
	}
	slices.SortFunc(s.Endpoints, func(x, y EndpointSummary) int {
		return cmp.Or(
			cmp.Compare(b2i(!x.Required && !x.Probe), b2i(!y.Required && !y.Probe)),
			cmp.Compare(y.Failed, x.Failed),
			cmp.Compare(y.Exchanges, x.Exchanges),
			// The no-rule line last among equals.
			cmp.Compare(b2i(x.Host == ""), b2i(y.Host == "")),
			strings.Compare(x.Host, y.Host))
	})
	order := verdictOrder()
	for addr, c := range a.clients {
		cs := ClientSummary{Address: addr, Name: a.Names[addr], Exchanges: c.exchanges, Failed: c.failed,
			NCSIProbes: c.ncsi, NCSIFailed: c.ncsiFailed, FailedHosts: byCount(c.failedHosts), Causes: []string{},
			From: c.first.UTC(), To: c.last.UTC()}
		for _, id := range order {
			if c.causes[id.String()] > 0 {
				cs.Causes = append(cs.Causes, id.String())
			}
		}
		s.Clients = append(s.Clients, cs)
	}
	slices.SortFunc(s.Clients, func(x, y ClientSummary) int {
		return cmp.Or(cmp.Compare(y.Failed, x.Failed), cmp.Compare(y.Exchanges, x.Exchanges), compareAddrs(x.Address, y.Address))
	})
	for _, id := range order {
		c := a.causes[id.String()]
		cause := rules.CauseByID(id)
		if c == nil || cause == nil {
			continue
		}
		s.Verdict = append(s.Verdict, a.findings(id, cause, c, p)...)
	}
	s.Facts = a.facts(p)
	if a.tapAuth > 0 {
		id := "tap_authenticated"
		if a.tapAuthNCSI > 0 {
			id = "tap_authenticated_ncsi"
		}
		s.Notices = append(s.Notices, Fact{ID: id, Text: p.T("notice."+id,
			messages.Args{"Count": a.tapAuth, "NCSI": a.tapAuthNCSI})})
	}
	return s
}

func (a *Aggregate) endpoint(h *hostAgg) EndpointSummary {
	e := EndpointSummary{Host: h.host, RuleID: h.ruleID, RuleSource: h.source, ServiceArea: h.area,
		Required: h.requiredEP || (h.required && h.ruleID != ""), Probe: h.probe, Exchanges: h.exchanges, OK: h.ok,
		Failed: h.failed, Outcomes: map[string]int{}, CauseID: h.cause, FailedPCs: []string{}, TLSIssuer: h.issuer,
		ActiveChecks: h.checks, ActiveFailed: h.checksFailed, ActiveLast: h.checkLast}
	if h.probe {
		e.Required = h.required
	}
	if a.Rules != nil && h.host != "" && h.ruleID != "" {
		m := a.Rules.Match(h.host, h.port)
		if r := rules.ReportRule(m.All()); r != nil && r.ID != h.ruleID {
			e.TapRuleID, e.RuleID, e.RuleSource, e.ServiceArea = h.ruleID, r.ID, r.Source.String(), r.ServiceArea
			e.Required = e.Required || r.Required
		}
	}
	for o, n := range h.outcomes {
		e.Outcomes[o] = n
	}
	for pc, n := range h.pcs {
		e.PCsTried++
		if n.failed > 0 {
			e.PCsFailed++
			e.FailedPCs = append(e.FailedPCs, pc)
		}
		if n.ok > 0 {
			e.PCsOK++
		}
	}
	slices.SortFunc(e.FailedPCs, compareAddrs)
	for _, is := range h.issuers {
		e.TLSIssuers = append(e.TLSIssuers, Issuer{Issuer: is.name, PCs: sortedAddrs(is.pcs), ActiveProbe: is.probe, Trusted: is.trusted})
	}
	e.Timeline = Timeline{FirstSeen: utc(h.firstSeen), FirstFailure: utc(h.firstFail), LastFailure: utc(h.lastFail), LastSuccess: utc(h.lastOK)}
	if h.hasLast {
		l := h.last
		l.Time = l.Time.UTC()
		e.LastFailure = &l
	}
	return e
}

// findings splits one cause by scope: the hosts that failed on every PC
// that tried them, those that failed on one PC only (one finding per PC),
// and so on, so that a shared failure and a PC's own are never merged into
// one verdict with one piece of advice.
func (a *Aggregate) findings(id rules.CauseID, cause *rules.Cause, c *causeAgg, p *messages.Printer) []Finding {
	type group struct {
		scope Scope
		pc    string
	}
	type acc struct {
		hosts             []string
		tried, failing    map[string]bool
		exchanges, active int
		routes            map[string]int
		rules             map[string]bool
	}
	groups := map[group]*acc{}
	for host, ch := range c.hosts {
		tried := map[string]bool{}
		if h := a.hosts[host]; h != nil {
			for pc := range h.pcs {
				tried[pc] = true
			}
		}
		for pc := range ch.pcs {
			tried[pc] = true
		}
		var g group
		switch {
		case len(ch.pcs) == 0:
			g.scope = ScopeTap
		case len(tried) == 1:
			g.scope = ScopeOnePC
			for pc := range ch.pcs {
				g.pc = pc
			}
		case len(ch.pcs) == len(tried):
			g.scope = ScopeAll
		case len(ch.pcs) == 1:
			g.scope = ScopeSingle
			for pc := range ch.pcs {
				g.pc = pc
			}
		default:
			g.scope = ScopeSome
		}
		ac := groups[g]
		if ac == nil {
			ac = &acc{tried: map[string]bool{}, failing: map[string]bool{}, routes: map[string]int{}, rules: map[string]bool{}}
			groups[g] = ac
		}
		if host != "" {
			ac.hosts = append(ac.hosts, host)
		}
		for pc := range tried {
			ac.tried[pc] = true
		}
		for pc := range ch.pcs {
			ac.failing[pc] = true
		}
		ac.exchanges += ch.exchanges
		ac.active += ch.active
		for r, n := range ch.routes {
			ac.routes[r] += n
		}
		// The sets this host is filed under, as in the endpoint table:
		// its tap rule replaced by the report's, host by host, so the
		// result does not depend on the order the hosts are visited in
		// (another host may be filed under the replaced set on its own).
		refiled, filedAs := "", ""
		if h := a.hosts[host]; a.Rules != nil && h != nil && host != "" && h.ruleID != "" {
			m := a.Rules.Match(host, h.port)
			if r := rules.ReportRule(m.All()); r != nil && r.ID != h.ruleID {
				refiled, filedAs = h.ruleID, r.ID
			}
		}
		for r := range ch.rules {
			if r != refiled {
				ac.rules[r] = true
			}
		}
		if filedAs != "" {
			ac.rules[filedAs] = true
		}
	}
	var out []Finding
	for g, ac := range groups {
		f := Finding{CauseID: id.String(), Section: cause.Section, Title: p.CauseTitle(id.String()),
			Remedy: p.CauseRemedy(id.String()), Reference: p.CauseLink(id.String()), Scope: g.scope,
			PCsTried: len(ac.tried), PCsFailed: len(ac.failing), PCs: sortedAddrs(ac.failing),
			Exchanges: ac.exchanges, ProbeChecks: ac.active, Hosts: ac.hosts, RuleIDs: sortedKeys(ac.rules),
			Routes: ac.routes}
		slices.Sort(f.Hosts)
		if f.Hosts == nil {
			f.Hosts = []string{}
		}
		slices.SortFunc(f.RuleIDs, compareRuleIDs)
		f.Where = p.T("scope."+string(g.scope), messages.Args{"Tried": f.PCsTried, "Failed": f.PCsFailed, "PC": a.pcName(g.pc)})
		out = append(out, f)
	}
	slices.SortFunc(out, func(x, y Finding) int {
		return cmp.Or(cmp.Compare(slices.Index(scopeOrder, x.Scope), slices.Index(scopeOrder, y.Scope)),
			cmp.Compare(y.Exchanges, x.Exchanges), compareAddrs(firstOr(x.PCs), firstOr(y.PCs)))
	})
	return out
}

// pcName is a PC as the report names it: its name and address, or the
// address alone.
func (a *Aggregate) pcName(addr string) string {
	if n := a.Names[addr]; n != "" {
		return n + " (" + addr + ")"
	}
	return addr
}

func firstOr(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func utc(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// byCount lists the keys of m, most counted first.
func byCount(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, func(x, y string) int { return cmp.Or(cmp.Compare(m[y], m[x]), strings.Compare(x, y)) })
	return out
}

// compareAddrs orders addresses numerically (127.0.0.9 before 127.0.0.10),
// anything that is not an address after them, by text.
func compareAddrs(x, y string) int {
	ax, ex := netip.ParseAddr(x)
	ay, ey := netip.ParseAddr(y)
	switch {
	case ex == nil && ey == nil:
		return ax.Compare(ay)
	case ex == nil:
		return -1
	case ey == nil:
		return 1
	}
	return strings.Compare(x, y)
}

func sortedAddrs(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, compareAddrs)
	return out
}

// compareRuleIDs puts catalogue ids in numeric order before the others.
func compareRuleIDs(x, y string) int {
	nx, ny := numeric(x), numeric(y)
	switch {
	case nx && ny:
		return cmp.Or(cmp.Compare(len(x), len(y)), strings.Compare(x, y))
	case nx:
		return -1
	case ny:
		return 1
	}
	return strings.Compare(x, y)
}

func numeric(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (a *Aggregate) facts(p *messages.Printer) []Fact {
	out := []Fact{}
	tap := a.netshAddress()
	switch {
	case a.passive == 0:
		out = append(out, Fact{ID: "no_traffic", Text: p.T("fact.no_traffic", messages.Args{"Tap": tap})})
	case a.ncsiPassive == 0:
		out = append(out, Fact{ID: "no_ncsi_probe", Text: p.T("fact.no_ncsi_probe", messages.Args{"Tap": tap})})
	}
	var (
		parentOnly                 []string
		reqHosts, reqFail, noRoute int
		anyOK                      bool
	)
	for host, hs := range a.hosts {
		if !hs.requiredEP || host == "" {
			continue
		}
		reqHosts++
		noRoute += hs.noRoute
		for _, c := range hs.routes {
			anyOK = anyOK || c.ok > 0
			reqFail += c.failed
		}
		rs := &hs.routes
		if rs[routeParent].failed > 0 && rs[routeDirect].ok > 0 && rs[routeDirect].failed == 0 {
			parentOnly = append(parentOnly, host)
		}
	}
	slices.Sort(parentOnly)
	switch {
	case len(parentOnly) > 0:
		out = append(out, Fact{ID: "parent_only", Text: p.T("fact.parent_only",
			messages.Args{"Count": len(parentOnly), "Hosts": p.List(parentOnly, 5)})})
	case reqFail > 0 && !anyOK && noRoute > 0:
		out = append(out, Fact{ID: "all_required_failed", Text: p.T("fact.all_required_failed",
			messages.Args{"Exchanges": reqFail, "Hosts": reqHosts})})
	}
	// A certificate rejection joined with the issuer of what was shown:
	// from the PC's own TLS 1.2 tunnel, or from the active probe for TLS
	// 1.3, which a tunnel cannot show. It names the inspecting device.
	var inspected []string
	for host, hs := range a.hosts {
		if host != "" && hs.issuer != "" && hs.cause == rules.CauseTLSInspection.String() {
			inspected = append(inspected, host)
		}
	}
	slices.Sort(inspected)
	for _, host := range inspected {
		out = append(out, a.issuerFact(host, p))
	}
	return out
}

// issuerFact joins a host's certificate rejections with their issuers.
// One issuer: the sentence names it. Several: the PCs (and the active
// probe) are behind different devices, and each issuer is named with
// where it was seen, so that the one PC shown another CA's certificate
// is not read as the whole office's.
func (a *Aggregate) issuerFact(host string, p *messages.Printer) Fact {
	h := a.hosts[host]
	trust := func(is *issuerSeen) string {
		if is.trusted != nil && !*is.trusted {
			return " (" + p.T("fact.issuer_untrusted", nil) + ")"
		}
		return ""
	}
	if len(h.issuers) <= 1 {
		tr := ""
		if len(h.issuers) == 1 {
			tr = trust(h.issuers[0])
		}
		return Fact{ID: "tls_inspection_issuer", Text: p.T("fact.tls_inspection_issuer",
			messages.Args{"Host": host, "Issuer": h.issuer, "Trust": tr})}
	}
	items := make([]string, len(h.issuers))
	for i, is := range h.issuers {
		var where []string
		for _, pc := range sortedAddrs(is.pcs) {
			where = append(where, a.pcName(pc))
		}
		where = []string{p.List(where, maxListed)}
		if len(is.pcs) == 0 {
			where = nil
		}
		if is.probe {
			where = append(where, p.T("pc.active_probe", nil))
		}
		items[i] = p.T("fact.issuer_item", messages.Args{"Issuer": is.name, "Trust": trust(is), "Where": strings.Join(where, p.T("list.separator", nil))})
	}
	return Fact{ID: "tls_inspection_issuers", Text: p.T("fact.tls_inspection_issuers",
		messages.Args{"Host": host, "Count": len(items), "Issuers": strings.Join(items, " / ")})}
}

// netshAddress is the proxy-server value for netsh: the tap's listen
// address when the log says it, with a placeholder for a wildcard host.
func (a *Aggregate) netshAddress() string {
	ap, err := netip.ParseAddrPort(a.listen)
	switch {
	case err != nil:
		return "TAP-ADDRESS:PORT"
	case ap.Addr().IsUnspecified():
		return fmt.Sprintf("TAP-ADDRESS:%d", ap.Port())
	}
	return a.listen
}

// MarshalLogObject writes the summary as the fields of a "report" record,
// with the same keys as its JSON form.
func (s *Summary) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("language", s.Language)
	if s.From != nil {
		enc.AddString("from", s.From.Format(time.RFC3339Nano))
		enc.AddString("to", s.To.Format(time.RFC3339Nano))
	}
	enc.AddInt("exchanges", s.Exchanges)
	enc.AddInt("failed", s.Failed)
	enc.AddInt("probe_checks", s.ProbeChecks)
	enc.AddInt("ncsi_probes", s.NCSIProbes)
	enc.AddInt("pcs", s.PCs)
	if err := enc.AddReflected("settings", s.Settings); err != nil {
		return err
	}
	if err := enc.AddReflected("endpoints", s.Endpoints); err != nil {
		return err
	}
	if err := enc.AddReflected("clients", s.Clients); err != nil {
		return err
	}
	if err := enc.AddReflected("verdict", s.Verdict); err != nil {
		return err
	}
	if err := enc.AddReflected("facts", s.Facts); err != nil {
		return err
	}
	return enc.AddReflected("article", s.Article)
}
