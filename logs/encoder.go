package logs

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"go.uber.org/zap/buffer"
	"go.uber.org/zap/zapcore"

	"github.com/m365tap/m365tap/rules"
)

// Formats lists the accepted values of log.format and of a sink's format.
var Formats = []string{"json", "ecs", "cef"}

// ECSVersion is the Elastic Common Schema release whose field names the
// ecs format follows; written as ecs.version on every record.
const ECSVersion = "8.11.0"

// Vendor and product name the tap in CEF headers and ECS observer fields.
const (
	Vendor  = "m365tap"
	Product = "m365tap"
)

// Meta names the producer in the formats that carry it. The zero value
// leaves observer.version/observer.hostname out and writes an empty CEF
// Device Version.
type Meta struct {
	// Version is the tap's version: observer.version, CEF Device Version.
	Version string
	// Hostname is the tap's host: observer.hostname, CEF dvchost, and the
	// syslog HOSTNAME.
	Hostname string
}

// NewEncoder returns the encoder for a format: json (the tap's own schema,
// byte for byte what zap's JSON encoder writes with EncoderConfig), ecs or
// cef.
func NewEncoder(name string, m Meta) (zapcore.Encoder, error) {
	switch name {
	case "", "json":
		return newJSONEncoder(), nil
	case "ecs":
		return newEncoder(formatECS, m), nil
	case "cef":
		return newEncoder(formatCEF, m), nil
	}
	return nil, fmt.Errorf("logs: format %q: want %s", name, strings.Join(Formats, ", "))
}

func newEncoder(f format, m Meta) *encoder {
	return &encoder{state: newState(f), fixed: newFixed(m)}
}

var bufferPool = buffer.NewPool()

// encoder is the ECS and CEF zapcore.Encoder. Its embedded state holds the
// fields added with With; each record is collected in a pooled state of its
// own, so EncodeEntry is safe for concurrent use, as zap requires.
type encoder struct {
	*state
	fixed *fixed
}

// fixed is what every record of an encoder writes the same: its Meta,
// rendered once.
type fixed struct {
	ecsObserver string // the observer.* fields
	cefPrefix   string // "CEF:0|Vendor|Product|Version|"
	cefHost     string // " dvchost=..." or nothing
}

func newFixed(m Meta) *fixed {
	obs := []byte(`,"observer.type":"proxy","observer.vendor":"` + Vendor + `","observer.product":"` + Product + `"`)
	if m.Version != "" {
		obs = ecsString(obs, `,"observer.version":`, m.Version)
	}
	if m.Hostname != "" {
		obs = ecsString(obs, `,"observer.hostname":`, m.Hostname)
	}
	f := &fixed{
		ecsObserver: string(obs),
		cefPrefix:   string(append(appendEscaped([]byte("CEF:0|"+Vendor+"|"+Product+"|"), m.Version, cefHeader), '|')),
	}
	if m.Hostname != "" {
		f.cefHost = string(cefString(nil, " dvchost=", m.Hostname))
	}
	return f
}

func (e *encoder) Clone() zapcore.Encoder {
	c := &encoder{state: newState(e.format), fixed: e.fixed}
	c.state.copyFrom(e.state)
	return c
}

func (e *encoder) EncodeEntry(ent zapcore.Entry, fields []zapcore.Field) (*buffer.Buffer, error) {
	s := getState(e.format)
	if e.state.set != 0 || len(e.state.extra) > 0 || len(e.state.ns) > 0 {
		s.copyFrom(e.state)
	}
	for i := range fields {
		fields[i].AddTo(s)
	}
	if e.format == formatCEF {
		s.out = s.writeCEF(s.out[:0], ent, e.fixed)
	} else {
		s.out = s.writeECS(s.out[:0], ent, e.fixed)
	}
	buf := bufferPool.Get()
	_, _ = buf.Write(s.out)
	putState(s)
	return buf, nil
}

// What the exchange record says about itself, derived once per record for
// both formats.
type shape struct {
	method   string
	connect  bool // CONNECT: a tunnel, or the active probe's TLS check
	check    string
	dnsCheck bool // the active probe's DNS check: no TCP, no HTTP
	class    string
	tlsSeen  bool
	host     string
	hostIP   bool
}

func (s *state) shape() shape {
	sh := shape{
		method: s.str(sMethod),
		check:  s.str(sProbeCheck),
		class:  s.str(sClass),
		host:   s.str(sHost),
	}
	sh.connect = sh.method == "CONNECT"
	sh.dnsCheck = sh.check == "dns_a" || sh.check == "dns_aaaa"
	sh.tlsSeen = s.isText(sTLSSNI) || s.isText(sTLSVersion)
	sh.hostIP = isIPLiteral(sh.host)
	return sh
}

// isIPLiteral reports whether s is an IP address, as netip.ParseAddr
// decides: dotted IPv4 is checked by hand (ParseAddr allocates its error
// for every host name), anything with a colon is left to ParseAddr.
func isIPLiteral(s string) bool {
	if strings.IndexByte(s, ':') >= 0 {
		_, err := netip.ParseAddr(s)
		return err == nil
	}
	// Four fields of 1 to 3 digits up to 255, without leading zeros.
	dots, digits, v := 0, 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			if digits == 1 && v == 0 {
				return false
			}
			v = v*10 + int(c-'0')
			digits++
			if v > 255 {
				return false
			}
		case c == '.' && digits > 0 && dots < 3:
			dots++
			digits, v = 0, 0
		default:
			return false
		}
	}
	return dots == 3 && digits > 0
}

// parsePort is strconv.ParseUint(s, 10, 16) without its error value.
func parsePort(s string) (int64, bool) {
	v := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if v = v*10 + int(c-'0'); v > 65535 {
			return 0, false
		}
	}
	return int64(v), s != ""
}

// ecsOutcomeOf folds the class into event.outcome's three values: an
// aborted exchange (client gone, tap stopping) neither failed nor
// succeeded. The values, and the pairs each format writes, are indexed by
// it.
func ecsOutcomeOf(class string) int {
	switch class {
	case "ok":
		return 0
	case "failed", "denied":
		return 1
	}
	return 2
}

var (
	ecsOutcomes = [...]string{`,"event.outcome":"success"`, `,"event.outcome":"failure"`, `,"event.outcome":"unknown"`}
	cefOutcomes = [...]string{" outcome=success", " outcome=failure", " outcome=unknown"}
)

// ecsAction is event.action with its key: what the tap did.
func (sh *shape) ecsAction() string {
	switch {
	case sh.check != "":
		return `,"event.action":"probe-check"`
	case sh.connect:
		return `,"event.action":"tunnel"`
	}
	return `,"event.action":"http-request"`
}

// causeReference is the page a cause points to, "" for an unknown id.
func causeReference(id string) string {
	c, err := rules.ParseCauseID(id)
	if err != nil || c == rules.CauseNone {
		return ""
	}
	if cause := rules.CauseByID(c); cause != nil {
		return cause.Reference
	}
	return ""
}

// ruleset names the catalogue of causes in rule.ruleset.
const ruleset = "m365tap-causes"

// splitClient splits "ip:port" or "[ip]:port" without allocating.
func splitClient(a string) (host, port string, ok bool) {
	i := strings.LastIndexByte(a, ':')
	if i < 0 {
		return "", "", false
	}
	host, port = a[:i], a[i+1:]
	if len(host) >= 2 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	return host, port, host != ""
}

// splitURL returns a URL's scheme, path and query without parsing it
// fully: the tap wrote it, redacted, from a parsed URL.
func splitURL(u string) (scheme, path, query string) {
	i := strings.Index(u, "://")
	if i < 0 {
		return "", "", ""
	}
	scheme, rest := u[:i], u[i+3:]
	j := strings.IndexAny(rest, "/?#")
	if j < 0 {
		return scheme, "", ""
	}
	rest = rest[j:]
	if k := strings.IndexByte(rest, '#'); k >= 0 {
		rest = rest[:k]
	}
	path = rest
	if k := strings.IndexByte(rest, '?'); k >= 0 {
		path, query = rest[:k], rest[k+1:]
	}
	return scheme, path, query
}

// tlsVersion splits the tap's tls_version into ECS's number and protocol.
func tlsVersion(v string) (num, proto string) {
	switch {
	case v == "ssl3":
		return "3.0", "ssl"
	case strings.HasPrefix(v, "1."):
		return v, "tls"
	}
	return v, ""
}

// ECS.

// The ECS helpers take the whole key with its punctuation, `,"name":`, a
// constant once they are inlined: written in one move, not three copies.

func ecsString(dst []byte, key, v string) []byte {
	return appendJSONString(append(dst, key...), v)
}

func ecsInt(dst []byte, key string, v int64) []byte {
	return appendInt(append(dst, key...), v)
}

func (s *state) ecsSlot(dst []byte, key string, k slot) []byte {
	if !s.has(k) {
		return dst
	}
	return s.appendJSONVal(append(dst, key...), k)
}

func (s *state) appendJSONVal(dst []byte, k slot) []byte {
	v := &s.vals[k]
	switch v.kind {
	case kString:
		return appendJSONString(dst, v.s)
	case kBytes:
		return appendJSONString(dst, s.bytes(v))
	case kInt:
		if v.i >= 0 {
			return appendUint(dst, uint64(v.i)) // one call less, for most
		}
		return appendInt(dst, v.i)
	case kUint:
		return appendUint(dst, uint64(v.i))
	case kFloat:
		return appendFloat(dst, v.f, 64, true)
	case kBool:
		return strconv.AppendBool(dst, v.b)
	}
	return append(dst, "null"...)
}

func (s *state) writeECS(dst []byte, ent zapcore.Entry, f *fixed) []byte {
	dst = append(dst, `{"@timestamp":"`...)
	at := len(dst)
	dst = appendTimestamp(dst, ent.Time)
	ts := dst[at:] // copied for event.end and the like
	dst = append(dst, `","log.level":"`...)
	dst = append(dst, ent.Level.String()...)
	if ent.Message == "exchange" {
		dst = append(dst, `","message":"exchange"`...)
	} else {
		dst = append(dst, `","message":`...)
		dst = appendJSONString(dst, ent.Message)
	}
	if ent.LoggerName != "" {
		dst = ecsString(dst, `,"log.logger":`, ent.LoggerName)
	}
	dst = append(dst, `,"ecs.version":"`+ECSVersion+`","event.kind":"event"`...)
	if ent.Message == "exchange" {
		dst = s.ecsExchange(dst, ent, ts)
	} else {
		dst = s.ecsOther(dst, ent)
	}
	dst = append(dst, f.ecsObserver...)
	if ent.Stack != "" {
		dst = ecsString(dst, `,"error.stack_trace":`, ent.Stack)
	}
	dst = append(dst, s.extra...)
	return append(dst, '}', '\n')
}

func (s *state) ecsExchange(dst []byte, ent zapcore.Entry, ts []byte) []byte {
	sh := s.shape()

	if sh.dnsCheck {
		dst = append(dst, `,"event.category":["network"],"event.type":["protocol"`...)
	} else {
		dst = append(dst, `,"event.category":["network","web"],"event.type":[`...)
		if sh.connect {
			dst = append(dst, `"connection"`...)
		} else {
			dst = append(dst, `"access"`...)
		}
		if sh.class == "failed" {
			dst = append(dst, `,"error"`...)
		}
	}
	if sh.class == "denied" {
		dst = append(dst, `,"denied"`...)
	}
	dst = append(dst, ']')
	dst = append(dst, sh.ecsAction()...)
	if sh.class != "" {
		dst = append(dst, ecsOutcomes[ecsOutcomeOf(sh.class)]...)
	}
	dst = s.ecsSlot(dst, `,"event.sequence":`, sID)
	if ns, ok := s.nanosFromMs(sDurationMs); ok {
		dst = ecsInt(dst, `,"event.duration":`, ns)
		dst = append(append(dst, `,"event.start":`...), '"')
		dst = appendTimestampNear(dst, ent.Time.Add(-timeDuration(ns)), ent.Time, ts)
		dst = append(dst, '"')
	}
	dst = append(append(dst, `,"event.end":`...), '"')
	dst = append(dst, ts...)
	dst = append(dst, '"')

	// A value written under several names is escaped once and copied:
	// [at:len(dst)] is its JSON text.
	if ip, port, ok := splitClient(s.str(sClient)); ok {
		dst = append(dst, `,"source.address":`...)
		at := len(dst)
		dst = appendJSONString(dst, ip)
		if isIPLiteral(ip) {
			dst = append(append(dst, `,"source.ip":`...), dst[at:]...)
		}
		if n, ok := parsePort(port); ok {
			dst = ecsInt(dst, `,"source.port":`, n)
		}
	}
	dst = s.ecsSlot(dst, `,"source.bytes":`, sBytesUp)

	var host, port []byte // the host's and the port's JSON text in dst
	if sh.host != "" {
		dst = append(dst, `,"destination.address":`...)
		at := len(dst)
		dst = appendJSONString(dst, sh.host)
		host = dst[at:]
		if !sh.hostIP {
			dst = append(append(dst, `,"destination.domain":`...), host...)
		}
	}
	switch {
	case s.isText(sDestIP):
		dst = s.ecsSlot(dst, `,"destination.ip":`, sDestIP)
	case sh.hostIP:
		dst = append(append(dst, `,"destination.ip":`...), host...)
	}
	if s.has(sPort) {
		dst = append(dst, `,"destination.port":`...)
		at := len(dst)
		dst = s.appendJSONVal(dst, sPort)
		port = dst[at:]
	}
	dst = s.ecsSlot(dst, `,"destination.bytes":`, sBytesDown)

	if !sh.dnsCheck {
		dst = append(dst, `,"network.transport":"tcp"`...)
	}
	switch {
	case sh.dnsCheck:
		dst = append(dst, `,"network.protocol":"dns"`...)
	case sh.connect && sh.tlsSeen:
		dst = append(dst, `,"network.protocol":"tls"`...)
	case !sh.connect && sh.method != "":
		dst = append(dst, `,"network.protocol":"http"`...)
	}
	up, okUp := s.integer(sBytesUp)
	down, okDown := s.integer(sBytesDown)
	if okUp && okDown {
		dst = ecsInt(dst, `,"network.bytes":`, up+down)
	}

	if sh.dnsCheck {
		if sh.host != "" {
			dst = append(append(dst, `,"dns.question.name":`...), host...)
		}
		if sh.check == "dns_a" {
			dst = append(dst, `,"dns.question.type":"A"`...)
		} else {
			dst = append(dst, `,"dns.question.type":"AAAA"`...)
		}
	} else {
		if s.isText(sURL) {
			dst = s.ecsSlot(dst, `,"url.full":`, sURL)
			scheme, path, query := splitURL(s.str(sURL))
			if scheme != "" {
				dst = ecsString(dst, `,"url.scheme":`, scheme)
			}
			if path != "" {
				dst = ecsString(dst, `,"url.path":`, path)
			}
			if query != "" {
				dst = ecsString(dst, `,"url.query":`, query)
			}
		}
		if sh.host != "" && (s.isText(sURL) || sh.connect) {
			dst = append(append(dst, `,"url.domain":`...), host...)
			if port != nil {
				dst = append(append(dst, `,"url.port":`...), port...)
			}
		}
		if sh.method != "" {
			dst = ecsString(dst, `,"http.request.method":`, sh.method)
		}
		dst = s.ecsSlot(dst, `,"http.response.status_code":`, sStatus)
		if !sh.connect && sh.method != "" {
			dst = s.ecsSlot(dst, `,"http.request.body.bytes":`, sBytesUp)
			dst = s.ecsSlot(dst, `,"http.response.body.bytes":`, sBytesDown)
		}
	}

	// A client mostly asks for the host it named in its CONNECT.
	if sni := &s.vals[sTLSSNI]; s.has(sTLSSNI) && sni.kind == kString && sni.s == sh.host && host != nil {
		dst = append(append(dst, `,"tls.client.server_name":`...), host...)
	} else {
		dst = s.ecsSlot(dst, `,"tls.client.server_name":`, sTLSSNI)
	}
	if v := s.str(sTLSVersion); v != "" {
		num, proto := tlsVersion(v)
		dst = ecsString(dst, `,"tls.version":`, num)
		if proto != "" {
			dst = ecsString(dst, `,"tls.version_protocol":`, proto)
		}
	}
	if sh.tlsSeen {
		if sh.class == "ok" {
			dst = append(dst, `,"tls.established":true`...)
		} else {
			dst = append(dst, `,"tls.established":false`...)
		}
	}
	dst = s.ecsSlot(dst, `,"user_agent.original":`, sUserAgent)

	if o := s.str(sOutcome); o != "" && o != "ok" {
		dst = ecsString(dst, `,"error.type":`, o)
	}
	dst = s.ecsSlot(dst, `,"error.message":`, sError)

	if id := s.str(sCauseID); id != "" {
		dst = ecsString(dst, `,"rule.id":`, id)
		dst = s.ecsSlot(dst, `,"rule.name":`, sCauseTitle)
		dst = s.ecsSlot(dst, `,"rule.description":`, sCauseRemedy)
		if ref := causeReference(id); ref != "" {
			dst = ecsString(dst, `,"rule.reference":`, ref)
		}
		dst = ecsString(dst, `,"rule.ruleset":`, ruleset)
	}

	for i := range ecsTail {
		t := &ecsTail[i]
		switch {
		case !s.has(t.k):
		case !t.nanos:
			dst = s.appendJSONVal(append(dst, t.key...), t.k)
		default:
			if ns, ok := s.nanosFromMs(t.k); ok {
				dst = ecsInt(dst, t.key, ns)
			}
		}
	}
	return dst
}

// ecsTail is the end of an exchange in ECS: the keys without an ECS name,
// under the product's, in this order; timings become nanoseconds.
var ecsTail = [...]struct {
	key   string
	k     slot
	nanos bool
}{
	{`,"m365tap.outcome":`, sOutcome, false},
	{`,"m365tap.class":`, sClass, false},
	{`,"m365tap.route":`, sRoute, false},
	{`,"m365tap.parent.address":`, sParent, false},
	{`,"m365tap.reused":`, sReused, false},
	{`,"m365tap.upstream.status_code":`, sUpstreamStatus, false},
	{`,"m365tap.timing.dns":`, sDNSMs, true},
	{`,"m365tap.timing.connect":`, sConnectMs, true},
	{`,"m365tap.timing.ttfb":`, sTTFBMs, true},
	{`,"m365tap.tls.alert":`, sTLSAlert, false},
	{`,"m365tap.probe.body":`, sProbeBody, false},
	{`,"m365tap.probe.check":`, sProbeCheck, false},
	{`,"m365tap.endpoint.id":`, sRuleID, false},
	{`,"m365tap.endpoint.ids":`, sRuleIDs, false},
	{`,"m365tap.endpoint.source":`, sRuleSource, false},
	{`,"m365tap.endpoint.service_area":`, sServiceArea, false},
	{`,"m365tap.endpoint.required":`, sRequired, false},
	{`,"m365tap.endpoint.express_route":`, sExpressRoute, false},
	{`,"m365tap.endpoint.category":`, sCategory, false},
	{`,"m365tap.endpoint.probe":`, sProbe, false},
}

// otherRecords gives ECS categorization to the records that are not
// exchanges; a record not listed gets event.action alone.
var otherRecords = map[string]struct{ category, typ, outcome, name string }{
	"start":               {`["process"]`, `["start"]`, "success", "tap started"},
	"stop":                {`["process"]`, `["end"]`, "success", "tap stopped"},
	"report":              {"", "", "", "session report"},
	"rules_reloaded":      {`["configuration"]`, `["change"]`, "success", "rules reloaded"},
	"rules_reload_failed": {`["configuration"]`, `["change"]`, "failure", "rules reload failed"},
	"rules_watch_failed":  {`["configuration"]`, `["info"]`, "failure", "rules watch failed"},
	"events_dropped":      {"", "", "failure", "events dropped"},
}

func (s *state) ecsOther(dst []byte, ent zapcore.Entry) []byte {
	if r, ok := otherRecords[ent.Message]; ok && r.category != "" {
		dst = append(append(dst, `,"event.category":`...), r.category...)
		dst = append(append(dst, `,"event.type":`...), r.typ...)
	}
	dst = ecsString(dst, `,"event.action":`, ent.Message)
	if r, ok := otherRecords[ent.Message]; ok && r.outcome != "" {
		dst = ecsString(dst, `,"event.outcome":`, r.outcome)
	}
	for k := range numSlots {
		if !s.has(k) {
			continue
		}
		switch k {
		case sError:
			dst = append(dst, `,"error.message":`...)
		case sParent:
			// As in an exchange: m365tap.parent and m365tap.endpoint are
			// objects there, and one name cannot be both.
			dst = append(dst, `,"m365tap.parent.address":`...)
		case sProbe:
			dst = append(dst, `,"m365tap.endpoint.probe":`...)
		default:
			dst = append(dst, `,"`+ecsPrefix...)
			dst = append(dst, mapping[k].Key...)
			dst = append(dst, '"', ':')
		}
		dst = s.appendJSONVal(dst, k)
	}
	return dst
}
