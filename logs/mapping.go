package logs

// The one place where the exchange record's flat keys (written by
// proxy's MarshalLogObject, listed in docs/events.md) meet the ECS and CEF
// names. The encoders collect each key into its slot, then write the slots
// in a fixed order; keys not in this table are kept, under the product's
// own namespace (ECS "m365tap.<key>", CEF "m365tap<Key>").
//
// A test encodes a record with every key set and checks that each name
// listed here appears in the output and that the output holds no name that
// is not listed here or in the derived rows below, so this table is also
// the documentation's source.

// slot is one known flat key of an exchange record.
type slot uint8

const (
	sID slot = iota
	sClient
	sMethod
	sHost
	sPort
	sURL
	sRoute
	sParent
	sDestIP
	sReused
	sOutcome
	sClass
	sError
	sStatus
	sUpstreamStatus
	sBytesUp
	sBytesDown
	sDNSMs
	sConnectMs
	sTTFBMs
	sDurationMs
	sTLSSNI
	sTLSVersion
	sTLSAlert
	sProbeBody
	sUserAgent
	sRuleID
	sRuleIDs
	sRuleSource
	sServiceArea
	sRequired
	sExpressRoute
	sCategory
	sProbe
	sCauseID
	sCauseTitle
	sCauseRemedy
	sProbeCheck

	numSlots
)

// fieldMap is one row of the mapping: our key, and the names it becomes.
// ECS and CEF list every output name the key feeds, derived ones included;
// "" means the format has no place for it.
type fieldMap struct {
	Key string
	ECS string
	CEF string
}

// mapping is indexed by slot.
var mapping = [numSlots]fieldMap{
	sID:             {"id", "event.sequence", "externalId"},
	sClient:         {"client", "source.address, source.ip, source.port", "src, spt"},
	sMethod:         {"method", "http.request.method; event.action, event.type, url.* (CONNECT or not)", "requestMethod"},
	sHost:           {"host", "destination.address, destination.domain (a name), destination.ip (an IP literal without dest_ip), url.domain, dns.question.name (DNS checks)", "dhost"},
	sPort:           {"port", "destination.port, url.port", "dpt"},
	sURL:            {"url", "url.full, url.scheme, url.path, url.query", "request"},
	sRoute:          {"route", "m365tap.route", "cs2 (cs2Label=route)"},
	sParent:         {"parent", "m365tap.parent.address", "m365tapParent"},
	sDestIP:         {"dest_ip", "destination.ip", "dst"},
	sReused:         {"reused", "m365tap.reused", "m365tapReused"},
	sOutcome:        {"outcome", "error.type (not for ok), m365tap.outcome", "Device Event Class ID (header)"},
	sClass:          {"class", "event.outcome, event.type, m365tap.class", "outcome, cat, act, Severity (header)"},
	sError:          {"error", "error.message", "reason"},
	sStatus:         {"status", "http.response.status_code", "cn2 (cn2Label=httpStatus)"},
	sUpstreamStatus: {"upstream_status", "m365tap.upstream.status_code", "cn3 (cn3Label=upstreamStatus)"},
	sBytesUp:        {"bytes_up", "source.bytes, http.request.body.bytes (plain HTTP), network.bytes", "in"},
	sBytesDown:      {"bytes_down", "destination.bytes, http.response.body.bytes (plain HTTP), network.bytes", "out"},
	sDNSMs:          {"dns_ms", "m365tap.timing.dns (ns)", "m365tapDnsMs"},
	sConnectMs:      {"connect_ms", "m365tap.timing.connect (ns)", "m365tapConnectMs"},
	sTTFBMs:         {"ttfb_ms", "m365tap.timing.ttfb (ns)", "m365tapTtfbMs"},
	sDurationMs:     {"duration_ms", "event.duration (ns), event.start", "cn1 (cn1Label=durationMs, rounded), m365tapDurationMs, start"},
	sTLSSNI:         {"tls_sni", "tls.client.server_name", "cs5 (cs5Label=tlsServerName)"},
	sTLSVersion:     {"tls_version", "tls.version, tls.version_protocol, tls.established, network.protocol", "cs4 (cs4Label=tlsVersion), app"},
	sTLSAlert:       {"tls_alert", "m365tap.tls.alert", "cs6 (cs6Label=tlsAlert)"},
	sProbeBody:      {"probe_body", "m365tap.probe.body", "m365tapProbeBody"},
	sUserAgent:      {"user_agent", "user_agent.original", "requestClientApplication"},
	sRuleID:         {"rule_id", "m365tap.endpoint.id", "cs3 (cs3Label=ruleId)"},
	sRuleIDs:        {"rule_ids", "m365tap.endpoint.ids", "m365tapRuleIds"},
	sRuleSource:     {"rule_source", "m365tap.endpoint.source", "m365tapRuleSource"},
	sServiceArea:    {"service_area", "m365tap.endpoint.service_area", "m365tapServiceArea"},
	sRequired:       {"required", "m365tap.endpoint.required", "m365tapRequired"},
	sExpressRoute:   {"express_route", "m365tap.endpoint.express_route", "m365tapExpressRoute"},
	sCategory:       {"category", "m365tap.endpoint.category", "m365tapCategory"},
	sProbe:          {"probe", "m365tap.endpoint.probe", "m365tapProbe"},
	sCauseID:        {"cause_id", "rule.id, rule.reference, rule.ruleset", "cs1 (cs1Label=cause)"},
	sCauseTitle:     {"cause_title", "rule.name", "Name (header)"},
	sCauseRemedy:    {"cause_remedy", "rule.description", "msg"},
	sProbeCheck:     {"probe_check", "m365tap.probe.check; event.action, event.category", "m365tapProbeCheck, act"},
}

// Names every record gets whatever its keys, and names derived from the
// entry rather than from one key. Listed for the same documentation test.
const (
	ecsFixed  = "@timestamp, log.level, message, log.logger, ecs.version, event.kind, event.category, event.type, event.action, event.outcome, event.end, network.transport, network.protocol, dns.question.type, observer.type, observer.vendor, observer.product, observer.version, observer.hostname, error.stack_trace"
	cefFixed  = "Version, Device Vendor, Device Product, Device Version, rt, end, dvchost, proto, app"
	ecsPrefix = "m365tap."
	cefPrefix = "m365tap"
)

// slotTable finds a key's slot without a map and without comparing
// strings: a key of up to 16 bytes is packed into two words (keyWords),
// hashed, and compared as those words. Looking a key up is a few
// nanoseconds, which matters at 38 keys per event.
const slotTableSize = 128

type slotEntry struct {
	lo, hi uint64
	n      int
	s      slot
	used   bool
}

var slotTable = func() (t [slotTableSize]slotEntry) {
	for s := range numSlots {
		k := mapping[s].Key
		if len(k) > 16 {
			panic("logs: mapping key longer than 16 bytes: " + k)
		}
		lo, hi := keyWords(k)
		h := keyHash(lo, hi, len(k))
		for t[h].used {
			h = (h + 1) % slotTableSize
		}
		t[h] = slotEntry{lo, hi, len(k), s, true}
	}
	return t
}()

// keyWords packs a key of at most 16 bytes into two words that are equal
// for two keys of the same length only when the keys are: the first and
// the last 8 bytes (4 under 8 bytes, single bytes under 4), overlapping.
func keyWords(k string) (lo, hi uint64) {
	switch n := len(k); {
	case n >= 8:
		return word(k[:8]), word(k[n-8:])
	case n >= 4:
		return half(k[:4]), half(k[n-4:])
	case n > 0:
		return uint64(k[0]) | uint64(k[n/2])<<8 | uint64(k[n-1])<<16, 0
	}
	return 0, 0
}

// keyHash's first multiplier was searched for so that the keys of the
// table land in buckets of their own; a key added later that does not only
// costs a probe.
func keyHash(lo, hi uint64, n int) int {
	return int((lo*0xa2eb0921d359f ^ hi*0xc2b2ae3d27d4eb4f ^ uint64(n)) >> 57)
}

// lookup returns the key's slot, or false for a key the table lacks.
func lookup(k string) (slot, bool) {
	if len(k) > 16 {
		return 0, false
	}
	lo, hi := keyWords(k)
	for h := keyHash(lo, hi, len(k)); ; h = (h + 1) % slotTableSize {
		e := &slotTable[h]
		if !e.used {
			return 0, false
		}
		if e.lo == lo && e.hi == hi && e.n == len(k) {
			return e.s, true
		}
	}
}
