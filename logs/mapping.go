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

// lookup finds a key's slot without a map: slotHash, a perfect hash of
// the table's keys (of their length and first and last bytes) picks the
// one slot the key can be, and one string comparison confirms it (the
// caller's key is mostly the very string of the table, which the
// comparison sees at once). Looking a key up is a few nanoseconds, which
// matters at 38 keys per event.
func lookup(k string) (slot, bool) {
	if k == "" {
		return 0, false
	}
	s := slotIndex[slotHash(k)]
	if s < numSlots && slotKeys[s] == k {
		return s, true
	}
	return 0, false
}

func slotHash(k string) uint {
	return (uint(len(k))*hashLen + uint(k[0])*hashFirst + uint(k[len(k)-1])) % slotIndexSize
}

const slotIndexSize = 128

var (
	// hashLen and hashFirst are the smallest multipliers under which every
	// key of the table has a bucket of its own, found when the program
	// starts; slotIndex maps the buckets to slots (numSlots: none).
	hashLen, hashFirst uint
	slotIndex          [slotIndexSize]slot
	slotKeys           [numSlots]string
)

func init() {
	for s := range numSlots {
		slotKeys[s] = mapping[s].Key
	}
	for hashLen = 1; hashLen < 64; hashLen++ {
		for hashFirst = 1; hashFirst < 64; hashFirst++ {
			if fillSlotIndex() {
				return
			}
		}
	}
	panic("logs: no perfect hash for the mapping's keys: widen slotIndexSize or the search")
}

// fillSlotIndex fills slotIndex under the current multipliers and reports
// whether no two keys share a bucket.
func fillSlotIndex() bool {
	for i := range slotIndex {
		slotIndex[i] = numSlots
	}
	for s := range numSlots {
		k := slotKeys[s]
		if k == "" {
			panic("logs: empty mapping key")
		}
		h := slotHash(k)
		if slotIndex[h] != numSlots {
			return false
		}
		slotIndex[h] = s
	}
	return true
}
