package cli

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"
)

// parseRecord reads one log line in any of the tap's formats (json, ecs,
// cef; see docs/events.md) into what a tail line shows, so that tail
// prints every format in the same layout. ok is false for a line that is
// not a record of the tap.
func parseRecord(raw []byte) (e tailEvent, ok bool) {
	switch {
	case bytes.HasPrefix(raw, []byte("CEF:")):
		return parseCEF(string(raw))
	case bytes.HasPrefix(raw, []byte("{")):
		var probe struct {
			Msg     string `json:"msg"`
			Message string `json:"message"`
			ECS     string `json:"ecs.version"`
		}
		if json.Unmarshal(raw, &probe) != nil {
			return e, false
		}
		if probe.ECS != "" && probe.Message != "" {
			return parseECS(raw)
		}
		if probe.Msg == "" || json.Unmarshal(raw, &e) != nil {
			return e, false
		}
		return e, true
	}
	return e, false
}

// ecsRecord holds the ECS fields a tail line shows (logs/mapping.go names
// them).
type ecsRecord struct {
	Timestamp    string   `json:"@timestamp"`
	Level        string   `json:"log.level"`
	Message      string   `json:"message"`
	Method       string   `json:"http.request.method"`
	ProbeCheck   string   `json:"m365tap.probe.check"`
	URL          string   `json:"url.full"`
	Host         string   `json:"destination.address"`
	Port         int      `json:"destination.port"`
	Route        string   `json:"m365tap.route"`
	Outcome      string   `json:"m365tap.outcome"`
	Class        string   `json:"m365tap.class"`
	Status       int      `json:"http.response.status_code"`
	Upstream     int      `json:"m365tap.upstream.status_code"`
	DurationNS   *float64 `json:"event.duration"`
	RuleID       string   `json:"m365tap.endpoint.id"`
	RuleIDs      string   `json:"m365tap.endpoint.ids"`
	CauseID      string   `json:"rule.id"`
	Error        string   `json:"error.message"`
	TLSAlert     string   `json:"m365tap.tls.alert"`
	SourceIP     string   `json:"source.ip"`
	Listen       string   `json:"m365tap.listen"`
	RulesVersion string   `json:"m365tap.rules_version"`
	Exchanges    *int     `json:"m365tap.exchanges"`
	Failed       *int     `json:"m365tap.failed"`
}

func parseECS(raw []byte) (tailEvent, bool) {
	var r ecsRecord
	if err := json.Unmarshal(raw, &r); err != nil {
		return tailEvent{}, false
	}
	e := tailEvent{Level: r.Level, TS: r.Timestamp, Msg: r.Message, Method: r.Method, Host: r.Host, Port: r.Port,
		URL: r.URL, Route: r.Route, Outcome: r.Outcome, Class: r.Class, Status: r.Status, Upstream: r.Upstream,
		RuleID: r.RuleID, RuleIDs: r.RuleIDs, CauseID: r.CauseID, Error: r.Error, ProbeCheck: r.ProbeCheck,
		TLSAlert: r.TLSAlert, Listen: r.Listen, RulesVersion: r.RulesVersion, Exchanges: r.Exchanges, Failed: r.Failed,
		Client: r.SourceIP}
	if r.DurationNS != nil {
		ms := *r.DurationNS / 1e6
		e.DurationMS = &ms
	}
	return e, true
}

// parseCEF reads a CEF line: seven '|'-separated header fields, then
// key=value extensions. The Device Event Class ID is the outcome of an
// exchange (which alone carries cat, its class) and the record kind of
// any other record.
func parseCEF(line string) (tailEvent, bool) {
	var header []string
	rest := line
	for len(header) < 7 {
		i := unescapedIndex(rest, '|')
		if i < 0 {
			return tailEvent{}, false
		}
		header = append(header, cefUnescape(rest[:i], false))
		rest = rest[i+1:]
	}
	if header[0] != "CEF:0" {
		return tailEvent{}, false
	}
	x := cefExtension(rest)
	e := tailEvent{Msg: header[4], Method: x["requestMethod"], Host: x["dhost"], URL: x["request"], Route: x["cs2"],
		RuleID: x["cs3"], RuleIDs: x["m365tapRuleIds"], CauseID: x["cs1"], Error: x["reason"], ProbeCheck: x["m365tapProbeCheck"],
		TLSAlert: x["cs6"], Listen: x["m365tapListen"], RulesVersion: x["m365tapRulesVersion"], Client: x["src"]}
	if e.Error == "" {
		e.Error = x["m365tapError"]
	}
	if class, ok := x["cat"]; ok {
		e.Msg, e.Outcome, e.Class = "exchange", header[4], class
	}
	e.Port, _ = strconv.Atoi(x["dpt"])
	e.Status, _ = strconv.Atoi(x["cn2"])
	e.Upstream, _ = strconv.Atoi(x["cn3"])
	if ms, err := strconv.ParseInt(x["rt"], 10, 64); err == nil {
		e.TS = strconv.FormatInt(ms, 10) // milliseconds since the epoch; formatTime reads them
	}
	if d, err := strconv.ParseFloat(x["m365tapDurationMs"], 64); err == nil {
		e.DurationMS = &d
	} else if d, err := strconv.ParseFloat(x["cn1"], 64); err == nil {
		e.DurationMS = &d
	}
	for _, kv := range []struct {
		key string
		dst **int
	}{{"m365tapExchanges", &e.Exchanges}, {"m365tapFailed", &e.Failed}} {
		if n, err := strconv.Atoi(x[kv.key]); err == nil {
			*kv.dst = &n
		}
	}
	return e, true
}

// cefExtension splits "k1=v1 k2=v with spaces k3=v3" at the unescaped '='
// signs: a key is the word before one, its value runs to the space before
// the next key.
func cefExtension(s string) map[string]string {
	m := map[string]string{}
	key, start := "", -1
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '=':
			k := strings.LastIndexByte(s[:i], ' ') + 1
			if start >= 0 {
				end := k - 1
				if end < start {
					end = start
				}
				m[key] = cefUnescape(s[start:end], true)
			}
			key, start = s[k:i], i+1
		}
	}
	if start >= 0 {
		m[key] = cefUnescape(s[start:], true)
	}
	return m
}

// unescapedIndex is the index of the first c in s not escaped by '\'.
func unescapedIndex(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case c:
			return i
		}
	}
	return -1
}

// cefUnescape undoes CEF's escapes: \\ and \| in the header; \\, \=, \n
// and \r in extension values.
func cefUnescape(s string, ext bool) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch c := s[i]; {
		case ext && c == 'n':
			b.WriteByte('\n')
		case ext && c == 'r':
			b.WriteByte('\r')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// termSafe makes text from a log line safe to print on a terminal: C0
// controls, DEL, C1 controls (U+0080..U+009F: U+009B is CSI to a terminal
// that honours 8-bit controls), the line and paragraph separators U+2028
// and U+2029, the Unicode bidirectional controls (which reorder what
// follows them on screen) and bytes that are not UTF-8 are shown as
// visible escapes (\x1b, \u009b, \u202e, \xff). A log line is data; only
// tail's own colours may reach the terminal as controls.
func termSafe(s string) string {
	i := 0
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if unsafeRune(r, n) {
			break
		}
		i += n
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b.WriteString(`\x`)
			b.WriteString(hex2(s[i]))
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			b.WriteString(`\x`)
			b.WriteString(hex2(byte(r)))
		case unsafeRune(r, n):
			b.WriteString(`\u`)
			b.WriteString(hex2(byte(r >> 8)))
			b.WriteString(hex2(byte(r)))
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func unsafeRune(r rune, n int) bool {
	switch {
	case r == utf8.RuneError && n == 1:
		return true
	case r < 0x20 || r >= 0x7f && r <= 0x9f:
		return true
	case r == 0x2028 || r == 0x2029:
		return true
	case r == 0x061c || r == 0x200e || r == 0x200f || 0x202a <= r && r <= 0x202e || 0x2066 <= r && r <= 0x2069:
		// ARABIC LETTER MARK, LRM, RLM, the embeddings and overrides, the isolates.
		return true
	}
	return false
}

func hex2(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&15]})
}
