package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/zap/zapcore"

	"github.com/m365tap/m365tap/logs"
)

// reencode writes the JSON records of in again through the tap's own
// encoder for format (json, ecs or cef), so the same events exist in each
// format exactly as the tap writes them to a file. Lines that are not
// records are kept as they are.
func reencode(t *testing.T, format, in string) string {
	t.Helper()
	enc, err := logs.NewEncoder(format, logs.Meta{Version: "0.1.0", Hostname: "pc-042"})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	sc := bufio.NewScanner(strings.NewReader(in))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		d := json.NewDecoder(bytes.NewReader(line))
		d.UseNumber()
		var rec jsonRecord
		if err := d.Decode(&rec); err != nil || rec.msg == "" {
			out.Write(line)
			out.WriteByte('\n')
			continue
		}
		ent := zapcore.Entry{Message: rec.msg, Time: rec.ts}
		if err := ent.Level.UnmarshalText([]byte(rec.level)); err != nil {
			t.Fatal(err)
		}
		buf, err := enc.EncodeEntry(ent, []zapcore.Field{{Key: "", Type: zapcore.InlineMarshalerType, Interface: rec}})
		if err != nil {
			t.Fatal(err)
		}
		out.Write(buf.Bytes())
		buf.Free()
	}
	return out.String()
}

// jsonRecord is a decoded JSON record that marshals its fields again in
// their order, numbers as integers where they were written as integers.
type jsonRecord struct {
	level, msg string
	ts         time.Time
	keys       []string
	vals       []any
}

func (r *jsonRecord) UnmarshalJSON(b []byte) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if _, err := d.Token(); err != nil {
		return err
	}
	for d.More() {
		k, err := d.Token()
		if err != nil {
			return err
		}
		var v any
		if err := d.Decode(&v); err != nil {
			return err
		}
		switch k {
		case "level":
			r.level, _ = v.(string)
		case "msg":
			r.msg, _ = v.(string)
		case "ts":
			s, _ := v.(string)
			r.ts, _ = time.Parse(time.RFC3339Nano, s)
		default:
			r.keys = append(r.keys, k.(string))
			r.vals = append(r.vals, v)
		}
	}
	return nil
}

func (r jsonRecord) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	for i, k := range r.keys {
		switch v := r.vals[i].(type) {
		case string:
			enc.AddString(k, v)
		case bool:
			enc.AddBool(k, v)
		case json.Number:
			if n, err := v.Int64(); err == nil {
				enc.AddInt64(k, n)
			} else {
				f, _ := v.Float64()
				enc.AddFloat64(k, f)
			}
		default:
			enc.AddReflected(k, v)
		}
	}
	return nil
}

// tailOutput runs tail on input (standard input) with flags and returns
// its output.
func tailOutput(t *testing.T, input string, flags ...string) string {
	t.Helper()
	root := newRoot()
	var out, errOut bytes.Buffer
	root.SetArgs(append([]string{"tail", "-"}, flags...))
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(input))
	if err := root.Execute(); err != nil {
		t.Fatal(err, errOut.String())
	}
	return out.String()
}

// TestTailEveryFormat: the records of docs/events.md and a recorded
// session, written by the tap's own encoders in ecs and cef, give tail
// exactly the lines their json gives, with and without filters.
func TestTailEveryFormat(t *testing.T) {
	utcTail(t)
	raw, err := os.ReadFile(filepath.Join("..", "report", "testdata", "blocking-parent.log"))
	if err != nil {
		t.Fatal(err)
	}
	for name, input := range map[string]string{"examples": docExamples(t), "session": string(raw)} {
		encoded := map[string]string{}
		for _, format := range logs.Formats {
			encoded[format] = reencode(t, format, input)
		}
		for _, flags := range [][]string{nil, {"--failures"}, {"--rule", "59"}, {"--cause", "required-endpoint-unreachable"}, {"--host", "*.microsoft.com"}} {
			want := tailOutput(t, input, flags...)
			if strings.Count(want, "\n") < 1 && flags == nil {
				t.Fatalf("%s: no lines from json", name)
			}
			for _, format := range logs.Formats {
				got := tailOutput(t, encoded[format], flags...)
				if got != want {
					t.Errorf("%s %s %v:\n%s\nwant (json):\n%s", name, format, flags, got, want)
				}
			}
		}
	}
}

// TestTailTerminalSafe feeds tail crafted records, in each format, whose
// every field holds controls a terminal acts on (ESC sequences, the 8-bit
// CSI U+009B, BEL, DEL, CR, U+2028, bidi overrides), and lines that are
// not records: none of them reaches the output raw; each is shown as an
// escape.
func TestTailTerminalSafe(t *testing.T) {
	utcTail(t)
	// JSON escapes, which the json and ecs decoders turn into the controls.
	const evil = `\u001b[2J\u009b2J\u0007\u007f\r\u2028\u202e\u2066`
	ecsEvil := evil
	jsonLine := `{"level":"warn","ts":"2026-11-24T16:12:36.379166Z","msg":"exchange","method":"GET` + evil + `","host":"h` + evil + `.test","port":443,` +
		`"route":"direct` + evil + `","outcome":"connect_refused` + evil + `","class":"failed","rule_id":"56` + evil + `","cause_id":"c` + evil + `",` +
		`"error":"e` + evil + `","tls_alert":"a` + evil + `","probe_check":""}`
	jsonURL := `{"level":"info","ts":"2026-11-24T16:12:36.379166Z","msg":"exchange","method":"GET","url":"http://h.test/` + evil + `","outcome":"ok","class":"ok"}`
	jsonOther := `{"level":"info","ts":"x` + evil + `","msg":"start` + evil + `","listen":"127.0.0.1:8080` + evil + `","rules_version":"v` + evil + `"}`
	ecsLine := `{"@timestamp":"2026-11-24T16:12:36.379166Z","log.level":"warn","message":"exchange","ecs.version":"8.11.0","http.request.method":"GET` + ecsEvil +
		`","destination.address":"h` + ecsEvil + `","destination.port":443,"url.full":"http://h.test/` + ecsEvil + `","m365tap.route":"r` + ecsEvil +
		`","m365tap.outcome":"o` + ecsEvil + `","m365tap.class":"failed","m365tap.endpoint.id":"56` + ecsEvil + `","rule.id":"c` + ecsEvil +
		`","error.message":"e` + ecsEvil + `","m365tap.tls.alert":"a` + ecsEvil + `"}`
	// CEF carries the bytes themselves: a crafted line need not follow
	// the encoder's escaping.
	raw := "\x1b[2J\u009b2J\a\x7f\r\u2028\u202e\u2066\xff"
	cefLine := "CEF:0|m365tap|m365tap|0.1.0|connect_refused" + raw + "|name|6|rt=1795536756379 cat=failed requestMethod=GET" + raw +
		" dhost=h" + raw + " dpt=443 request=http://h.test/" + raw + " cs2Label=route cs2=direct" + raw + " cs3Label=ruleId cs3=56" + raw +
		" cs1Label=cause cs1=c" + raw + " reason=e" + raw + " cs6Label=tlsAlert cs6=a" + raw
	cefOther := "CEF:0|m365tap|m365tap|0.1.0|start" + raw + "|tap started|1|rt=1795536756379 m365tapListen=127.0.0.1:8080" + raw
	notRecord := "m365tap listening" + raw
	input := strings.Join([]string{jsonLine, jsonURL, jsonOther, ecsLine, cefLine, cefOther, notRecord}, "\n") + "\n"
	for _, colour := range []bool{false, true} {
		var out bytes.Buffer
		tp := &tailPrinter{w: &out, color: colour, loc: time.UTC}
		if err := tp.copy(strings.NewReader(input)); err != nil {
			t.Fatal(err)
		}
		text := out.String()
		if colour {
			for _, c := range []string{ansiReset, ansiRed, ansiGreen, ansiYellow, ansiCyan, ansiDim} {
				text = strings.ReplaceAll(text, c, "")
			}
		}
		lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
		if len(lines) != 7 {
			t.Fatalf("colour %v: %d lines, want 7:\n%s", colour, len(lines), text)
		}
		for i, line := range lines {
			for j, r := range line {
				if unsafeRune(r, len(string(r))) || r == utf8.RuneError {
					t.Errorf("colour %v: line %d: %U at %d reaches the terminal: %q", colour, i, r, j, line)
				}
			}
			// Every field shows the escapes: ESC, CSI, the override.
			if i < 6 && (!strings.Contains(line, `\x1b[2J`) || !strings.Contains(line, `\u202e`) && !strings.Contains(line, `\u202E`)) {
				t.Errorf("colour %v: line %d shows no escapes: %q", colour, i, line)
			}
		}
		for _, want := range []string{
			`connect_refused\x1b[2J\u009b2J\x07\x7f\r\u2028\u202e\u2066 - GET\x1b[2J`,
			`h\x1b[2J\u009b2J\x07\x7f\r\u2028\u202e\u2066.test:443`,
			`start\x1b[2J\u009b2J\x07\x7f\r\u2028\u202e\u2066\xff listen=127.0.0.1:8080\x1b[2J`,
			`m365tap listening\x1b[2J\u009b2J\x07\x7f\r\u2028\u202e\u2066\xff`,
		} {
			if !strings.Contains(text, want) {
				t.Errorf("colour %v: no %q in:\n%s", colour, want, text)
			}
		}
	}
}

// TestTermSafe pins the escapes.
func TestTermSafe(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"plain ascii", "plain ascii"},
		{"ログイン 日本語", "ログイン 日本語"},
		{"a\tb\nc\rd", `a\tb\nc\rd`},
		{"\x00\x1b\x7f", `\x00\x1b\x7f`},
		{"\u0085\u009b\u00a0", `\u0085\u009b` + "\u00a0"},
		{"\u2028\u2029", `\u2028\u2029`},
		{"\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069", `\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069`},
		{"bad\xff\xfe", `bad\xff\xfe`},
	} {
		if got := termSafe(c.in); got != c.want {
			t.Errorf("termSafe(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
