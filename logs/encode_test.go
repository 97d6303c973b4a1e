package logs

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/m365tap/m365tap/rules"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func encode(t testing.TB, format string, r record) string {
	t.Helper()
	enc, err := NewEncoder(format, testMeta)
	if err != nil {
		t.Fatal(err)
	}
	ent := zapcore.Entry{Level: r.level, Time: fixedTime, Message: r.msg}
	buf, err := enc.EncodeEntry(ent, []zapcore.Field{zap.Inline(r.r)})
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Free()
	return buf.String()
}

// TestGolden pins every format's line for every record shape, under a
// fixed clock. go test ./logs -run TestGolden -update rewrites them.
func TestGolden(t *testing.T) {
	for _, format := range Formats {
		t.Run(format, func(t *testing.T) {
			var b strings.Builder
			for _, r := range records {
				b.WriteString(encode(t, format, r))
			}
			path := filepath.Join("testdata", format+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Split(b.String(), "\n")
			wantLines := strings.Split(string(want), "\n")
			if len(got) != len(wantLines) {
				t.Fatalf("%d lines, golden has %d", len(got), len(wantLines))
			}
			for i := range got {
				if got[i] != wantLines[i] {
					t.Errorf("%s, record %s:\n got: %s\nwant: %s", format, records[i].name, got[i], wantLines[i])
				}
			}
		})
	}
}

// TestJSONFormatUnchanged: the json format is the tap's own schema, as
// zap's JSON encoder with EncoderConfig wrote it before formats existed
// (json_test.go compares the two on every kind of field).
func TestJSONFormatUnchanged(t *testing.T) {
	ent := zapcore.Entry{Level: zapcore.InfoLevel, Time: fixedTime, Message: "exchange"}
	want, err := zapcore.NewJSONEncoder(EncoderConfig()).EncodeEntry(ent, []zapcore.Field{zap.Inline(records[0].r)})
	if err != nil {
		t.Fatal(err)
	}
	if got := encode(t, "json", records[0]); got != want.String() {
		t.Errorf("json format\n got: %s\nwant: %s", got, want)
	}
}

// names splits a mapping cell into the output names it lists:
// "a.b, c (note); d" gives a.b, c, d.
func names(cell string) []string {
	var out []string
	depth := 0
	for part := range strings.FieldsFuncSeq(cell, func(r rune) bool {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
		}
		return depth == 0 && (r == ',' || r == ';')
	}) {
		part = strings.TrimSpace(part)
		if i := strings.IndexByte(part, '('); i >= 0 {
			label := part[i:]
			part = strings.TrimSpace(part[:i])
			// cs1 (cs1Label=cause) also names cs1Label.
			if j := strings.Index(label, "Label="); j > 0 {
				out = append(out, strings.TrimLeft(label[1:j+5], " "))
			}
		}
		if strings.Contains(part, "*") || strings.Contains(part, "(header)") || part == "" {
			continue
		}
		out = append(out, part)
	}
	return out
}

// TestMappingTableMatchesOutput keeps mapping.go honest: every name the
// table lists appears in some golden record, and every name in a record's
// output is listed (or is an m365tap key the table does not know).
func TestMappingTableMatchesOutput(t *testing.T) {
	listed := map[string]map[string]bool{"ecs": {}, "cef": {}}
	for _, m := range mapping {
		for _, n := range names(m.ECS) {
			listed["ecs"][n] = true
		}
		for _, n := range names(m.CEF) {
			if !strings.Contains(n, "Name") && !strings.Contains(n, "Severity") && !strings.Contains(n, "Class") {
				listed["cef"][n] = true
			}
		}
	}
	for _, n := range names(ecsFixed) {
		listed["ecs"][n] = true
	}
	for _, n := range names(cefFixed) {
		listed["cef"][n] = true
	}
	seen := map[string]map[string]bool{"ecs": {}, "cef": {}}
	for _, r := range records {
		doc := map[string]any{}
		if err := json.Unmarshal([]byte(encode(t, "ecs", r)), &doc); err != nil {
			t.Fatalf("%s: %v", r.name, err)
		}
		for k := range doc {
			seen["ecs"][k] = true
			if !listed["ecs"][k] && (r.msg == "exchange" || !strings.HasPrefix(k, ecsPrefix)) {
				t.Errorf("ecs: %s writes %s, which mapping.go does not list", r.name, k)
			}
		}
		_, ext, err := parseCEF(strings.TrimSuffix(encode(t, "cef", r), "\n"))
		if err != nil {
			t.Fatalf("%s: %v", r.name, err)
		}
		for k := range ext {
			seen["cef"][k] = true
			if !listed["cef"][k] && (r.msg == "exchange" || !strings.HasPrefix(k, cefPrefix)) {
				t.Errorf("cef: %s writes %s, which mapping.go does not list", r.name, k)
			}
		}
	}
	for _, f := range []string{"ecs", "cef"} {
		for n := range listed[f] {
			if !seen[f][n] && n != "log.logger" && n != "error.stack_trace" && !slices.Contains([]string{"Version", "Device Vendor", "Device Product", "Device Version"}, n) {
				t.Errorf("%s: mapping.go lists %s, which no golden record writes", f, n)
			}
		}
	}
}

// TestEventsDocListsMapping: docs/events.md shows the table, row by row.
func TestEventsDocListsMapping(t *testing.T) {
	b, err := os.ReadFile("../docs/events.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, m := range mapping {
		row := fmt.Sprintf("| `%s` | %s | %s |", m.Key, m.ECS, m.CEF)
		if !strings.Contains(doc, row) {
			t.Errorf("docs/events.md lacks the mapping row\n%s", row)
		}
	}
}

func TestEveryOutcomeHasACEFName(t *testing.T) {
	for _, o := range rules.Outcomes() {
		if int(o) >= len(outcomeNames) || outcomeNames[o] == "" {
			t.Errorf("outcome %s has no CEF name", o)
		}
	}
}

func TestLookupFindsEveryKey(t *testing.T) {
	for s := range numSlots {
		if got, ok := lookup(mapping[s].Key); !ok || got != s {
			t.Errorf("lookup(%q) = %d, %v; want %d", mapping[s].Key, got, ok, s)
		}
	}
	for _, k := range []string{"", "x", "idx", "hos", "listen", "version", "cause"} {
		if _, ok := lookup(k); ok {
			t.Errorf("lookup(%q) found a slot", k)
		}
	}
}

// hostile holds what an attacker-chosen host name, URL, header or error
// text could carry into a record.
var hostile = []string{
	"pipe|in|host",
	"equals=sign key=value",
	`back\slash\`,
	"new\nline\r\ncarriage",
	"ctl\x00\x01\x1b[31m\x7fend",
	"tab\there",
	"bad utf8 \xff\xfe\xc3(",
	"CEF:0|forged|header|1|x|y|10|src=1.2.3.4",
	"<134>1 2026-01-01T00:00:00Z forged - - - - spoof",
	"line\u2028sep\u0085nel",
	"csi\u009b31m c1\u0080\u009f para\u2029 nbsp\u00a0 near\u2027\u202a\u00bf\u00c2",
	"",
	"\\=\\|\\n",
}

func hostileRecord(s string) record {
	return record{"hostile", zapcore.WarnLevel, "exchange", rec{
		{"id", uint64(1)}, {"client", "127.0.0.1:1234"}, {"method", "GET"}, {"host", s}, {"port", 80},
		{"url", "http://" + s + "/" + s + "?q=" + s}, {"outcome", "http_error"}, {"class", "failed"}, {"error", s},
		{"user_agent", s}, {"rule_ids", []byte(s)}, {"cause_id", "ncsi-no-internet"}, {"cause_title", s}, {"cause_remedy", s},
		{"probe_body", s}, {s, s},
	}}
}

// validUTF8 is what the encoders make of any input: each byte that is not
// part of valid UTF-8 becomes U+FFFD.
func validUTF8(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// cefExpect is what a CEF parser reads back from a value: valid UTF-8, CR
// and LF kept (they were escaped), other control characters (C0, DEL, C1)
// and U+2028/U+2029 as spaces.
func cefExpect(s string, header bool) string {
	s = validUTF8(s)
	return strings.Map(func(r rune) rune {
		if (r == '\n' || r == '\r') && !header {
			return r
		}
		if r < 0x20 || r >= 0x7f && r < 0xa0 || r == 0x2028 || r == 0x2029 {
			return ' '
		}
		return r
	}, s)
}

// checkLine asserts one record is one line of valid UTF-8.
func checkLine(t testing.TB, line string) {
	t.Helper()
	if !strings.HasSuffix(line, "\n") {
		t.Fatalf("no line ending: %q", line)
	}
	body := line[:len(line)-1]
	if strings.ContainsAny(body, "\n\r\x00") {
		t.Fatalf("a line break or NUL inside the record: %q", line)
	}
	if !utf8.ValidString(body) {
		t.Fatalf("invalid UTF-8: %q", line)
	}
}

func TestHostileInputKeepsFraming(t *testing.T) {
	hdr := newSyslogHeader(16, "pc 042\n", "m365tap", 4711)
	for _, s := range hostile {
		t.Run(strconv.Quote(s), func(t *testing.T) {
			r := hostileRecord(s)
			for _, format := range []string{"ecs", "json"} {
				line := encode(t, format, r)
				checkLine(t, line)
				doc := map[string]any{}
				if err := json.Unmarshal([]byte(line), &doc); err != nil {
					t.Fatalf("%s: %v in %s", format, err, line)
				}
				key, errKey := "error.message", "error.message"
				if format == "json" {
					key, errKey = "user_agent", "error"
				}
				if format == "ecs" {
					key = "user_agent.original"
				}
				if doc[key] != validUTF8(s) || doc[errKey] != validUTF8(s) {
					t.Errorf("%s: %s = %q, %s = %q; want %q", format, key, doc[key], errKey, doc[errKey], validUTF8(s))
				}
			}

			line := encode(t, "cef", r)
			checkLine(t, line)
			header, ext, err := parseCEF(strings.TrimSuffix(line, "\n"))
			if err != nil {
				t.Fatalf("cef: %v in %s", err, line)
			}
			if header[4] != "http_error" || header[6] != "8" {
				t.Errorf("cef header %q: class or severity moved", header)
			}
			wantName := cefExpect(s, true)
			if s == "" {
				wantName = outcomeName("http_error")
			}
			if header[5] != wantName {
				t.Errorf("cef Name = %q, want %q", header[5], wantName)
			}
			for _, k := range []string{"dhost", "reason", "requestClientApplication", "msg", "m365tapProbeBody", "m365tapRuleIds"} {
				if s == "" {
					if _, ok := ext[k]; ok && k != "dhost" {
						t.Errorf("cef %s written empty", k)
					}
					continue
				}
				if ext[k] != cefExpect(s, false) {
					t.Errorf("cef %s = %q, want %q", k, ext[k], cefExpect(s, false))
				}
			}

			for _, format := range Formats {
				payload := encode(t, format, r)
				frame := appendOctetCounted(nil, hdr.appendFrame(nil, zapcore.Entry{Level: zapcore.WarnLevel, Time: fixedTime, Message: "exchange\n" + s}, []byte(payload)))
				m, rest, err := parseFrame(frame)
				if err != nil || len(rest) != 0 {
					t.Fatalf("%s: frame %q: %v (rest %q)", format, frame, err, rest)
				}
				if m.msg != strings.TrimSuffix(payload, "\n") || m.hostname != "pc_042_" {
					t.Errorf("%s: frame read back as %+v", format, m)
				}
			}
		})
	}
}

// parseCEF reads a CEF line as a collector does: seven header fields split
// on unescaped |, then key=value pairs where a key is the word before an
// unescaped = and a value runs up to the space before the next key.
func parseCEF(line string) (header [7]string, ext map[string]string, err error) {
	rest, ok := strings.CutPrefix(line, "CEF:")
	if !ok {
		return header, nil, fmt.Errorf("no CEF: prefix")
	}
	for i := range 7 {
		var b strings.Builder
		j := 0
		for ; j < len(rest); j++ {
			c := rest[j]
			if c == '\\' && j+1 < len(rest) && (rest[j+1] == '\\' || rest[j+1] == '|') {
				b.WriteByte(rest[j+1])
				j++
				continue
			}
			if c == '|' {
				break
			}
			if c == '\\' {
				return header, nil, fmt.Errorf("header field %d: stray backslash", i)
			}
			b.WriteByte(c)
		}
		if j == len(rest) {
			return header, nil, fmt.Errorf("header has %d fields, want 8", i+1)
		}
		header[i] = b.String()
		rest = rest[j+1:]
	}
	if header[0] != "0" {
		return header, nil, fmt.Errorf("version %q", header[0])
	}
	if n, err := strconv.Atoi(header[6]); err != nil || n < 0 || n > 10 {
		return header, nil, fmt.Errorf("severity %q", header[6])
	}
	ext = map[string]string{}
	var eqs []int
	for j := 0; j < len(rest); j++ {
		switch rest[j] {
		case '\\':
			j++
		case '=':
			eqs = append(eqs, j)
		}
	}
	keyStart := func(eq int) int {
		return strings.LastIndexByte(rest[:eq], ' ') + 1
	}
	for n, eq := range eqs {
		ks := keyStart(eq)
		key := rest[ks:eq]
		if key == "" || strings.IndexFunc(key, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
		}) >= 0 {
			return header, nil, fmt.Errorf("bad key %q", key)
		}
		end := len(rest)
		if n+1 < len(eqs) {
			end = keyStart(eqs[n+1]) - 1
		}
		if end < eq+1 {
			return header, nil, fmt.Errorf("key %q has no room for a value", key)
		}
		raw := rest[eq+1 : end]
		var b strings.Builder
		for j := 0; j < len(raw); j++ {
			c := raw[j]
			if c == '\\' && j+1 < len(raw) {
				j++
				switch raw[j] {
				case 'n':
					b.WriteByte('\n')
				case 'r':
					b.WriteByte('\r')
				case '\\', '=':
					b.WriteByte(raw[j])
				default:
					return header, nil, fmt.Errorf("key %s: unknown escape \\%c", key, raw[j])
				}
				continue
			}
			if c == '\\' {
				return header, nil, fmt.Errorf("key %s: stray backslash", key)
			}
			b.WriteByte(c)
		}
		if _, dup := ext[key]; dup {
			return header, nil, fmt.Errorf("key %s twice", key)
		}
		ext[key] = b.String()
	}
	return header, ext, nil
}

// syslogMsg is an RFC 5424 message read back.
type syslogMsg struct {
	pri                              int
	timestamp, hostname, app, procid string
	msgid, sd, msg                   string
}

// parseFrame reads one octet-counted RFC 5424 message and returns what
// follows it.
func parseFrame(b []byte) (syslogMsg, []byte, error) {
	var m syslogMsg
	sp := bytes.IndexByte(b, ' ')
	if sp <= 0 {
		return m, nil, fmt.Errorf("no length")
	}
	n, err := strconv.Atoi(string(b[:sp]))
	if err != nil || n <= 0 || sp+1+n > len(b) {
		return m, nil, fmt.Errorf("length %q of %d bytes", b[:sp], len(b)-sp-1)
	}
	m, err = parseSyslog(string(b[sp+1 : sp+1+n]))
	return m, b[sp+1+n:], err
}

// parseSyslog reads one RFC 5424 message as rsyslog's template %rawmsg%
// gives it.
func parseSyslog(s string) (syslogMsg, error) {
	var m syslogMsg
	if !strings.HasPrefix(s, "<") {
		return m, fmt.Errorf("no PRI in %q", s)
	}
	end := strings.IndexByte(s, '>')
	if end < 2 || end > 4 {
		return m, fmt.Errorf("PRI in %q", s)
	}
	pri, err := strconv.Atoi(s[1:end])
	if err != nil || pri > 191 {
		return m, fmt.Errorf("PRI %q", s[1:end])
	}
	m.pri = pri
	f := strings.SplitN(s[end+1:], " ", 8)
	if len(f) < 7 || f[0] != "1" {
		return m, fmt.Errorf("header %q", s)
	}
	m.timestamp, m.hostname, m.app, m.procid, m.msgid, m.sd = f[1], f[2], f[3], f[4], f[5], f[6]
	for i, v := range []string{m.hostname, m.app, m.procid, m.msgid} {
		max := []int{255, 48, 128, 32}[i]
		if v == "" || len(v) > max || strings.IndexFunc(v, func(r rune) bool { return r < 33 || r > 126 }) >= 0 {
			return m, fmt.Errorf("header field %q", v)
		}
	}
	if len(f) == 8 {
		m.msg = f[7]
	}
	return m, nil
}
