package report

import (
	"sync"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/m365tap/m365tap/rules"
)

// Aggregate accumulates records. The zero value is ready to use; it is not
// safe for concurrent use (the Collector locks around it).
type Aggregate struct {
	rows   map[rowKey]*row
	causes map[string]*causeAgg

	first, last time.Time // bound the exchanges seen
	exchanges   int
	failed      int
	active      int // exchanges written by the active probe (probe_check)
	passive     int // every other exchange: a client's
	ncsiPassive int // clients' requests for an NCSI probe path
	listen      string

	// Exchanges by host and route, for hosts some rule matched; required
	// marks the endpoints of the article's §1 list.
	hosts map[string]*hostStat
}

// hostStat counts the ok and failed exchanges with one host, by route.
type hostStat struct {
	routes   [numRoutes]struct{ ok, failed int }
	required bool
	// noRoute counts failures other than a parent's 407, which says
	// nothing about whether there is a route.
	noRoute int
}

type rowKey struct {
	rule string
	host string // only for rule-less checks of the active probe (the DNS probe)
}

type row struct {
	key       rowKey
	source    string
	area      string
	required  bool
	exchanges int
	ok        int
	outcomes  map[string]int
	last      Failure // valid when hasLast; a value, so a failure allocates nothing
	hasLast   bool
	cause     string
	causeTime time.Time
}

type causeAgg struct {
	exchanges int
	hosts     map[string]bool
	rules     map[string]bool
	routes    map[string]int
	active    int // of exchanges, made by the active probe
}

// maxHosts bounds each set of host names the aggregate keeps, so a tap
// that runs for weeks in front of a failing parent (every browsed host then
// has a cause) keeps bounded memory. Hosts beyond it are counted, not named.
const maxHosts = 4096

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

// Add accounts one record. Records other than "exchange" and "start" are
// ignored, so a whole log can be fed as it is.
func (a *Aggregate) Add(r *Record) {
	switch r.Msg {
	case "start":
		if r.Listen != "" {
			a.listen = r.Listen
		}
		return
	case "exchange":
	default:
		return
	}
	if a.rows == nil {
		a.rows = map[rowKey]*row{}
		a.causes = map[string]*causeAgg{}
		a.hosts = map[string]*hostStat{}
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
	if failed {
		a.failed++
	}

	key := rowKey{rule: r.RuleID}
	if r.RuleID == "" && r.ProbeCheck != "" {
		key.host = r.Host
	}
	rw := a.rows[key]
	if rw == nil {
		rw = &row{key: key, source: r.RuleSource, area: r.ServiceArea, required: r.Required, outcomes: map[string]int{}}
		a.rows[key] = rw
	}
	rw.exchanges++
	if r.Outcome == rules.OK.String() {
		rw.ok++
	} else {
		rw.outcomes[r.Outcome]++
	}
	if failed && (!rw.hasLast || !r.Time.Before(rw.last.Time)) {
		rw.last, rw.hasLast = failureOf(r), true
	}
	if r.CauseID != "" && (rw.cause == "" || !r.Time.Before(rw.causeTime)) {
		rw.cause, rw.causeTime = r.CauseID, r.Time
	}

	if r.CauseID != "" {
		c := a.causes[r.CauseID]
		if c == nil {
			c = &causeAgg{hosts: map[string]bool{}, rules: map[string]bool{}, routes: map[string]int{}}
			a.causes[r.CauseID] = c
		}
		c.exchanges++
		if r.Host != "" && (len(c.hosts) < maxHosts || c.hosts[r.Host]) {
			c.hosts[r.Host] = true
		}
		if r.RuleID != "" {
			c.rules[r.RuleID] = true
		}
		if r.Route != "" {
			c.routes[r.Route]++
		}
		if r.ProbeCheck != "" {
			c.active++
		}
	}

	if hs := a.hosts[r.Host]; r.RuleID != "" && (hs != nil || len(a.hosts) < maxHosts) {
		if hs == nil {
			hs = new(hostStat)
			a.hosts[r.Host] = hs
		}
		// A host whose winning rule is optional can still be required
		// through another matching rule; its failures' cause says so.
		hs.required = hs.required || requiredEndpoint(r)
		ri := routeIndex(r.Route)
		switch {
		case r.Outcome == rules.OK.String():
			hs.routes[ri].ok++
		case failed:
			hs.routes[ri].failed++
			if r.Outcome != rules.ParentAuthRequired.String() {
				hs.noRoute++
			}
		}
	}
}

// requiredEndpoint: the exchange is with an endpoint of the article's §1
// list, by its winning rule or by the cause the tap gave it (which looks at
// every matching rule).
func requiredEndpoint(r *Record) bool {
	switch r.CauseID {
	case rules.CauseRequiredEndpointUnreachable.String(), rules.CauseExpressRoutePath.String():
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
}

func failureOf(r *Record) Failure {
	return Failure{Time: r.Time, Host: r.Host, Port: r.Port, Method: r.Method, Route: r.Route,
		Outcome: r.Outcome, Error: r.Error, ProbeCheck: r.ProbeCheck}
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

// Sync has nothing to flush.
func (c *Collector) Sync() error { return nil }

// Summary summarises what was collected so far.
func (c *Collector) Summary(lang rules.Language) *Summary {
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	return c.st.agg.Summary(lang)
}

var _ zapcore.Core = (*Collector)(nil)
