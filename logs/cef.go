package logs

import (
	"math"
	"strconv"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/m365tap/m365tap/rules"
)

// CEF (ArcSight Common Event Format, as Microsoft Sentinel's
// CommonSecurityLog and Elastic's decode_cef read it):
//
//	CEF:0|Vendor|Product|Version|Device Event Class ID|Name|Severity|ext
//
// Header fields escape \ and |; extension values escape \ and = and write
// line breaks as \n and \r. Anything else that could break a line or
// steer a terminal (other control characters, DEL, the C1 controls
// U+0080–U+009F, U+2028 and U+2029) becomes a space, and invalid UTF-8
// becomes U+FFFD, so one record is always one line whatever a host name,
// URL or error holds.

// outcomeNames is the CEF Name of an exchange without an article cause.
// Indexed by rules.Outcome; a test checks every outcome has one.
var outcomeNames = [...]string{
	rules.OK:                   "exchange completed",
	rules.DNSNXDomain:          "DNS name does not exist",
	rules.DNSFailure:           "DNS lookup failed",
	rules.DNSTimeout:           "DNS lookup timed out",
	rules.ConnectRefused:       "connection refused",
	rules.ConnectTimeout:       "connection timed out",
	rules.ConnectUnreachable:   "destination unreachable",
	rules.ConnectionReset:      "connection reset",
	rules.TLSFailure:           "TLS handshake failed",
	rules.HTTPError:            "HTTP error status",
	rules.ParentAuthRequired:   "parent proxy requires authentication",
	rules.ParentUnreachable:    "parent proxy unreachable",
	rules.ProbeContentMismatch: "probe answer has unexpected content",
	rules.ProbeRedirect:        "probe answer is a redirect",
	rules.ResponseTimeout:      "response timed out",
	rules.ClientAborted:        "client aborted",
	rules.BadRequest:           "bad request",
	rules.Denied:               "denied by the tap's policy",
	rules.Shutdown:             "interrupted by shutdown",
}

func outcomeName(o string) string {
	if v, err := rules.ParseOutcome(o); err == nil && int(v) < len(outcomeNames) {
		return outcomeNames[v]
	}
	return o
}

// cefSeverity ranks an exchange: a failure the article explains is High
// (8), another failure Medium (6), a refusal by the tap 5, an abort 3, a
// success Low (1).
func cefSeverity(class string, cause bool) int {
	switch class {
	case "ok":
		return 1
	case "aborted":
		return 3
	case "denied":
		return 5
	case "failed":
		if cause {
			return 8
		}
		return 6
	}
	return 5
}

// levelSeverity ranks the other records by level; a record of lost events
// is High whatever its level.
func levelSeverity(msg string, l zapcore.Level) int {
	if msg == "events_dropped" {
		return 7
	}
	switch {
	case l <= zapcore.DebugLevel:
		return 0
	case l == zapcore.InfoLevel:
		return 1
	case l == zapcore.WarnLevel:
		return 5
	case l == zapcore.ErrorLevel:
		return 7
	}
	return 9
}

func (s *state) writeCEF(dst []byte, ent zapcore.Entry, f *fixed) []byte {
	dst = append(dst, f.cefPrefix...)
	exchange := ent.Message == "exchange"
	if exchange {
		o := s.str(sOutcome)
		if o == "" {
			o = "exchange"
		}
		dst = appendEscaped(dst, o, cefHeader)
		dst = append(dst, '|')
		if s.isText(sCauseTitle) {
			dst = s.appendCEFVal(dst, sCauseTitle, cefHeader)
		} else {
			dst = appendEscaped(dst, outcomeName(o), cefHeader)
		}
		dst = append(dst, '|')
		dst = appendInt(dst, int64(cefSeverity(s.str(sClass), s.isText(sCauseID))))
	} else {
		dst = appendEscaped(dst, ent.Message, cefHeader)
		dst = append(dst, '|')
		if r, ok := otherRecords[ent.Message]; ok {
			dst = appendEscaped(dst, r.name, cefHeader)
		} else {
			dst = appendEscaped(dst, ent.Message, cefHeader)
		}
		dst = append(dst, '|')
		dst = appendInt(dst, int64(levelSeverity(ent.Message, ent.Level)))
	}
	dst = append(dst, "|rt="...)
	at := len(dst)
	dst = appendInt(dst, ent.Time.UnixMilli())
	if exchange {
		dst = s.cefExchange(dst, ent, f, dst[at:])
	} else {
		dst = s.cefOther(dst, f)
	}
	if ent.Stack != "" {
		dst = cefString(dst, " m365tapStack=", ent.Stack)
	}
	dst = append(dst, s.extra...)
	return append(dst, '\n')
}

// The CEF helpers take the whole key with its punctuation, " name=", a
// constant once they are inlined: written in one move, not three copies.

func cefString(dst []byte, key, v string) []byte {
	return appendEscaped(append(dst, key...), v, cefValue)
}

func cefInt(dst []byte, key string, v int64) []byte {
	return appendInt(append(dst, key...), v)
}

// cefSlot writes key and value when the slot holds one: CEF reads an empty
// value as a missing one.
func (s *state) cefSlot(dst []byte, key string, k slot) []byte {
	if !s.filled(k) {
		return dst
	}
	dst = append(dst, key...)
	// appendCEFVal's cases, the text first: one call less per value.
	if v := &s.vals[k]; v.kind == kString {
		return appendEscaped(dst, v.s, cefValue)
	}
	return s.appendCEFVal(dst, k, cefValue)
}

// cefCustom writes a key of the table under the product's prefix:
// dns_ms becomes m365tapDnsMs.
func (s *state) cefCustom(dst []byte, k slot) []byte {
	return s.cefSlot(dst, cefCustomKeys[k], k)
}

var cefCustomKeys = func() (t [numSlots]string) {
	for k := range numSlots {
		t[k] = string(appendCEFKey([]byte{' '}, nil, mapping[k].Key)) + "="
	}
	return t
}()

// appendCEFVal writes slot k's value, text escaped under e: cefValue, or
// cefHeader for the one slot that can be a header field.
func (s *state) appendCEFVal(dst []byte, k slot, e *escaper) []byte {
	v := &s.vals[k]
	switch v.kind {
	case kString:
		return appendEscaped(dst, v.s, e)
	case kBytes:
		return appendEscaped(dst, s.bytes(v), e)
	case kInt:
		if v.i >= 0 {
			return appendUint(dst, uint64(v.i)) // one call less, for most
		}
		return appendInt(dst, v.i)
	case kUint:
		return appendUint(dst, uint64(v.i))
	case kFloat:
		return appendFloat(dst, v.f, 64, false)
	case kBool:
		return strconv.AppendBool(dst, v.b)
	}
	return dst
}

// cefExchange writes an exchange's extension after rt, whose digits are
// rt: end is the same time.
func (s *state) cefExchange(dst []byte, ent zapcore.Entry, f *fixed, rt []byte) []byte {
	sh := s.shape()
	dst = append(append(dst, " end="...), rt...)
	if f, ok := s.num(sDurationMs); ok && !math.IsNaN(f) && !math.IsInf(f, 0) {
		dst = cefInt(dst, " start=", ent.Time.Add(-timeDuration(int64(math.Round(f*1e6)))).UnixMilli())
	}
	dst = s.cefSlot(dst, " externalId=", sID)
	dst = s.cefSlot(dst, " cat=", sClass)
	switch {
	case sh.class == "denied":
		dst = append(dst, " act=blocked"...)
	case sh.check != "":
		dst = append(dst, " act=probe"...)
	default:
		dst = append(dst, " act=forwarded"...)
	}
	if sh.class != "" {
		dst = append(dst, cefOutcomes[ecsOutcomeOf(sh.class)]...)
	}
	if ip, port, ok := splitClient(s.str(sClient)); ok {
		dst = cefString(dst, " src=", ip)
		if n, ok := parsePort(port); ok {
			dst = cefInt(dst, " spt=", n)
		}
	}
	dst = s.cefSlot(dst, " dhost=", sHost)
	dst = s.cefSlot(dst, " dpt=", sPort)
	switch {
	case s.isText(sDestIP):
		dst = s.cefSlot(dst, " dst=", sDestIP)
	case sh.hostIP:
		dst = cefString(dst, " dst=", sh.host)
	}
	switch {
	case sh.dnsCheck:
		dst = append(dst, " app=DNS"...)
	case sh.connect && sh.tlsSeen:
		dst = append(dst, " app=TLS proto=TCP"...)
	case sh.connect:
		dst = append(dst, " proto=TCP"...)
	case sh.method != "":
		dst = append(dst, " app=HTTP proto=TCP"...)
	default:
		dst = append(dst, " proto=TCP"...)
	}
	dst = s.cefSlots(dst, cefRequest[:])
	dst = append(dst, f.cefHost...)
	dst = s.cefSlots(dst, cefLabeled[:])
	if ms, ok := s.integer(sDurationMs); ok {
		dst = cefInt(dst, " cn1Label=durationMs cn1=", ms)
	}
	dst = s.cefSlot(dst, " cn2Label=httpStatus cn2=", sStatus)
	dst = s.cefSlot(dst, " cn3Label=upstreamStatus cn3=", sUpstreamStatus)
	for _, k := range [...]slot{sParent, sReused, sDNSMs, sConnectMs, sTTFBMs, sDurationMs, sProbeBody, sProbeCheck,
		sRuleIDs, sRuleSource, sServiceArea, sRequired, sExpressRoute, sCategory, sProbe} {
		dst = s.cefCustom(dst, k)
	}
	return dst
}

// An exchange's extension keys after the protocol, before and after
// dvchost, in this order.
var (
	cefRequest = [...]cefField{
		{" requestMethod=", sMethod},
		{" request=", sURL},
		{" requestClientApplication=", sUserAgent},
		{" in=", sBytesUp},
		{" out=", sBytesDown},
		{" reason=", sError},
		{" msg=", sCauseRemedy},
	}
	cefLabeled = [...]cefField{
		{" cs1Label=cause cs1=", sCauseID},
		{" cs2Label=route cs2=", sRoute},
		{" cs3Label=ruleId cs3=", sRuleID},
		{" cs4Label=tlsVersion cs4=", sTLSVersion},
		{" cs5Label=tlsServerName cs5=", sTLSSNI},
		{" cs6Label=tlsAlert cs6=", sTLSAlert},
	}
)

type cefField struct {
	key string
	k   slot
}

func (s *state) cefSlots(dst []byte, fields []cefField) []byte {
	for _, f := range fields {
		dst = s.cefSlot(dst, f.key, f.k)
	}
	return dst
}

func (s *state) cefOther(dst []byte, f *fixed) []byte {
	dst = append(dst, f.cefHost...)
	for k := range numSlots {
		if !s.has(k) {
			continue
		}
		if k == sError {
			dst = s.cefSlot(dst, " reason=", k)
			continue
		}
		dst = s.cefCustom(dst, k)
	}
	return dst
}

// appendCEFKey writes a key outside the CEF dictionary as the product
// prefix followed by the key in camel case: probe_check becomes
// m365tapProbeCheck, a namespace "a." in front of key b becomes m365tapAB.
// Characters other than ASCII letters and digits only separate words, so a
// key never holds a space, an = or anything a parser could stop at.
func appendCEFKey(dst []byte, ns []byte, key string) []byte {
	dst = append(dst, cefPrefix...)
	n := len(dst)
	upper := true
	word := func(c byte) {
		switch {
		case c >= 'a' && c <= 'z':
			if upper {
				c -= 'a' - 'A'
			}
		case c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		default:
			upper = true
			return
		}
		dst = append(dst, c)
		upper = false
	}
	for _, c := range ns {
		word(c)
	}
	upper = true
	for i := 0; i < len(key); i++ {
		word(key[i])
	}
	if len(dst) == n {
		dst = append(dst, "Field"...)
	}
	return dst
}

func timeDuration(ns int64) time.Duration { return time.Duration(ns) }
