package logs

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"go.uber.org/zap/zapcore"

	"github.com/m365tap/m365tap/rules"
)

// CEF (ArcSight Common Event Format, as Microsoft Sentinel's
// CommonSecurityLog and Elastic's decode_cef read it):
//
//	CEF:0|Vendor|Product|Version|Device Event Class ID|Name|Severity|ext
//
// Header fields escape \ and |; extension values escape \ and = and write
// line breaks as \n and \r. Anything else that could break a line (other
// control characters) becomes a space, and invalid UTF-8 becomes U+FFFD, so
// one record is always one line whatever a host name, URL or error holds.

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

func (s *state) writeCEF(dst []byte, ent zapcore.Entry, m *Meta) []byte {
	dst = append(dst, "CEF:0|"+Vendor+"|"+Product+"|"...)
	dst = appendCEFHeader(dst, m.Version)
	dst = append(dst, '|')
	exchange := ent.Message == "exchange"
	if exchange {
		o := s.str(sOutcome)
		if o == "" {
			o = "exchange"
		}
		dst = appendCEFHeader(dst, o)
		dst = append(dst, '|')
		if s.isText(sCauseTitle) {
			dst = s.appendCEFVal(dst, sCauseTitle, true)
		} else {
			dst = appendCEFHeader(dst, outcomeName(o))
		}
		dst = append(dst, '|')
		dst = strconv.AppendInt(dst, int64(cefSeverity(s.str(sClass), s.isText(sCauseID))), 10)
	} else {
		dst = appendCEFHeader(dst, ent.Message)
		dst = append(dst, '|')
		if r, ok := otherRecords[ent.Message]; ok {
			dst = appendCEFHeader(dst, r.name)
		} else {
			dst = appendCEFHeader(dst, ent.Message)
		}
		dst = append(dst, '|')
		dst = strconv.AppendInt(dst, int64(levelSeverity(ent.Message, ent.Level)), 10)
	}
	dst = append(dst, "|rt="...)
	dst = strconv.AppendInt(dst, ent.Time.UnixMilli(), 10)
	if exchange {
		dst = s.cefExchange(dst, ent, m)
	} else {
		dst = s.cefOther(dst, m)
	}
	if ent.Stack != "" {
		dst = cefString(dst, "m365tapStack", ent.Stack)
	}
	dst = append(dst, s.extra...)
	return append(dst, '\n')
}

func cefKey(dst []byte, key string) []byte {
	dst = append(dst, ' ')
	dst = append(dst, key...)
	return append(dst, '=')
}

func cefString(dst []byte, key, v string) []byte {
	return appendCEFValue(cefKey(dst, key), v)
}

func cefInt(dst []byte, key string, v int64) []byte {
	return strconv.AppendInt(cefKey(dst, key), v, 10)
}

// cefSlot writes key=value when the slot is set and not empty text.
func (s *state) cefSlot(dst []byte, key string, k slot) []byte {
	if !s.has(k) || (s.vals[k].kind == kString && s.vals[k].s == "") || (s.vals[k].kind == kBytes && s.vals[k].n == 0) {
		return dst
	}
	return s.appendCEFVal(cefKey(dst, key), k, false)
}

// cefLabeled writes a custom slot and its label, as cs1Label=cause cs1=...
func (s *state) cefLabeled(dst []byte, key, label string, k slot) []byte {
	if !s.has(k) || (s.vals[k].kind == kString && s.vals[k].s == "") {
		return dst
	}
	dst = append(dst, ' ')
	dst = append(dst, key...)
	dst = append(dst, "Label="...)
	dst = append(dst, label...)
	return s.cefSlot(dst, key, k)
}

// cefCustom writes a key of the table under the product's prefix:
// dns_ms becomes m365tapDnsMs.
func (s *state) cefCustom(dst []byte, k slot) []byte {
	if !s.has(k) || (s.vals[k].kind == kString && s.vals[k].s == "") || (s.vals[k].kind == kBytes && s.vals[k].n == 0) {
		return dst
	}
	dst = append(dst, ' ')
	dst = appendCEFKey(dst, nil, mapping[k].Key)
	dst = append(dst, '=')
	return s.appendCEFVal(dst, k, false)
}

func (s *state) appendCEFVal(dst []byte, k slot, header bool) []byte {
	v := &s.vals[k]
	switch v.kind {
	case kString:
		if header {
			return appendCEFHeader(dst, v.s)
		}
		return appendCEFValue(dst, v.s)
	case kBytes:
		if header {
			return appendCEFHeader(dst, string(s.bytes(v)))
		}
		return appendCEFValueBytes(dst, s.bytes(v))
	case kInt:
		return strconv.AppendInt(dst, v.i, 10)
	case kUint:
		return strconv.AppendUint(dst, uint64(v.i), 10)
	case kFloat:
		return appendFloat(dst, v.f, 64, false)
	case kBool:
		return strconv.AppendBool(dst, v.b)
	}
	return dst
}

func (s *state) cefExchange(dst []byte, ent zapcore.Entry, m *Meta) []byte {
	sh := s.shape()
	rt := ent.Time.UnixMilli()
	dst = cefInt(dst, "end", rt)
	if f, ok := s.num(sDurationMs); ok && !math.IsNaN(f) && !math.IsInf(f, 0) {
		dst = cefInt(dst, "start", ent.Time.Add(-timeDuration(int64(math.Round(f*1e6)))).UnixMilli())
	}
	dst = s.cefSlot(dst, "externalId", sID)
	dst = s.cefSlot(dst, "cat", sClass)
	switch {
	case sh.class == "denied":
		dst = append(dst, " act=blocked"...)
	case sh.check != "":
		dst = append(dst, " act=probe"...)
	default:
		dst = append(dst, " act=forwarded"...)
	}
	if sh.class != "" {
		dst = cefString(dst, "outcome", ecsOutcome(sh.class))
	}
	if ip, port, ok := splitClient(s.str(sClient)); ok {
		dst = cefString(dst, "src", ip)
		if n, err := strconv.ParseUint(port, 10, 16); err == nil {
			dst = cefInt(dst, "spt", int64(n))
		}
	}
	dst = s.cefSlot(dst, "dhost", sHost)
	dst = s.cefSlot(dst, "dpt", sPort)
	switch {
	case s.isText(sDestIP):
		dst = s.cefSlot(dst, "dst", sDestIP)
	case sh.hostIP:
		dst = cefString(dst, "dst", sh.host)
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
	dst = s.cefSlot(dst, "requestMethod", sMethod)
	dst = s.cefSlot(dst, "request", sURL)
	dst = s.cefSlot(dst, "requestClientApplication", sUserAgent)
	dst = s.cefSlot(dst, "in", sBytesUp)
	dst = s.cefSlot(dst, "out", sBytesDown)
	dst = s.cefSlot(dst, "reason", sError)
	dst = s.cefSlot(dst, "msg", sCauseRemedy)
	if m.Hostname != "" {
		dst = cefString(dst, "dvchost", m.Hostname)
	}
	dst = s.cefLabeled(dst, "cs1", "cause", sCauseID)
	dst = s.cefLabeled(dst, "cs2", "route", sRoute)
	dst = s.cefLabeled(dst, "cs3", "ruleId", sRuleID)
	dst = s.cefLabeled(dst, "cs4", "tlsVersion", sTLSVersion)
	dst = s.cefLabeled(dst, "cs5", "tlsServerName", sTLSSNI)
	dst = s.cefLabeled(dst, "cs6", "tlsAlert", sTLSAlert)
	if ms, ok := s.integer(sDurationMs); ok {
		dst = append(dst, " cn1Label=durationMs"...)
		dst = cefInt(dst, "cn1", ms)
	}
	dst = s.cefLabeled(dst, "cn2", "httpStatus", sStatus)
	dst = s.cefLabeled(dst, "cn3", "upstreamStatus", sUpstreamStatus)
	for _, k := range [...]slot{sParent, sReused, sDNSMs, sConnectMs, sTTFBMs, sDurationMs, sProbeBody, sProbeCheck,
		sRuleIDs, sRuleSource, sServiceArea, sRequired, sExpressRoute, sCategory, sProbe} {
		dst = s.cefCustom(dst, k)
	}
	return dst
}

func (s *state) cefOther(dst []byte, m *Meta) []byte {
	if m.Hostname != "" {
		dst = cefString(dst, "dvchost", m.Hostname)
	}
	for k := range numSlots {
		if !s.has(k) {
			continue
		}
		if k == sError {
			dst = cefKey(dst, "reason")
			dst = s.appendCEFVal(dst, k, false)
			continue
		}
		dst = s.cefCustom(dst, k)
	}
	return dst
}

// appendCEFHeader appends a header field: \ and | escaped, control
// characters as spaces, invalid UTF-8 as U+FFFD.
func appendCEFHeader(dst []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		if i = safeRun(s, i, '|', '\\'); i == len(s) {
			break
		}
		c := s[i]
		if cefHeaderSafe[c] {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\ufffd"...)
			i++
			start = i
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '\\', '|':
			dst = append(dst, '\\', c)
		default:
			dst = append(dst, ' ')
		}
		i++
		start = i
	}
	return append(dst, s[start:]...)
}

// appendCEFValue appends an extension value: \ and = escaped, CR and LF as
// \r and \n, other control characters as spaces, invalid UTF-8 as U+FFFD.
func appendCEFValue(dst []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		if i = safeRun(s, i, '=', '\\'); i == len(s) {
			break
		}
		c := s[i]
		if cefValueSafe[c] {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\ufffd"...)
			i++
			start = i
			continue
		}
		dst = append(dst, s[start:i]...)
		dst = appendCEFEscape(dst, c)
		i++
		start = i
	}
	return append(dst, s[start:]...)
}

func appendCEFValueBytes(dst []byte, s []byte) []byte {
	start := 0
	for i := 0; i < len(s); {
		if i = safeRunBytes(s, i, '=', '\\'); i == len(s) {
			break
		}
		c := s[i]
		if cefValueSafe[c] {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(s[i:])
			if r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\ufffd"...)
			i++
			start = i
			continue
		}
		dst = append(dst, s[start:i]...)
		dst = appendCEFEscape(dst, c)
		i++
		start = i
	}
	return append(dst, s[start:]...)
}

// The bytes a header field and an extension value hold as they are.
var cefHeaderSafe, cefValueSafe = func() (h, v [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		h[c] = c != '\\' && c != '|'
		v[c] = c != '\\' && c != '='
	}
	return h, v
}()

func appendCEFEscape(dst []byte, c byte) []byte {
	switch c {
	case '\\', '=':
		return append(dst, '\\', c)
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	}
	return append(dst, ' ')
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
