package logs

import (
	"strconv"
	"strings"
	"testing"

	"go.uber.org/zap/zapcore"
)

// TestEscapes pins what each format writes for the characters a terminal
// or a JavaScript reader could take for a control or a line break, and
// for their neighbours, which stay as they are. Each value goes in as an
// exchange's error (a string), its cause title (a CEF header field) and a
// report's reflected list (encoding/json, then the tap's own escaping).
func TestEscapes(t *testing.T) {
	cases := []struct {
		name, in string
		json     string // json format: a string value, and a reflected one
		ecs      string // ecs: a string value (a reflected one is as json)
		cef      string // cef: an extension value and a header field
	}{
		{"NEL", "a\u0085b", `a\u0085b`, `a\u0085b`, "a b"},
		{"CSI", "\u009b31m", `\u009b31m`, `\u009b31m`, " 31m"},
		{"first and last C1", "\u0080\u009f", `\u0080\u009f`, `\u0080\u009f`, "  "},
		{"line separator", "a\u2028b", `a\u2028b`, `a\u2028b`, "a b"},
		{"paragraph separator", "a\u2029b", `a\u2029b`, `a\u2029b`, "a b"},
		{"DEL", "a\x7fb", `a\u007fb`, `a\u007fb`, "a b"},
		{"ESC", "\x1b[31m", `\u001b[31m`, `\u001b[31m`, " [31m"},
		{"neighbours kept", "\u007e\u00a0\u00bf\u2027\u202a\u2030", "\u007e\u00a0\u00bf\u2027\u202a\u2030", "\u007e\u00a0\u00bf\u2027\u202a\u2030", "\u007e\u00a0\u00bf\u2027\u202a\u2030"},
		{"C1 lead byte alone", "a\xc2b", `a\ufffdb`, "a\ufffdb", "a\ufffdb"},
		{"separator cut short", "a\xe2\x80", `a\ufffd\ufffd`, "a\ufffd\ufffd", "a\ufffd\ufffd"},
		{"overlong NEL", "a\xc1\x85", `a\ufffd\ufffd`, "a\ufffd\ufffd", "a\ufffd\ufffd"},
		{"mixed with text", "é\u0085日本\u2028😀", `é\u0085日本\u2028😀`, `é\u0085日本\u2028😀`, "é 日本 😀"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := record{"escape", zapcore.WarnLevel, "exchange", rec{
				{"outcome", "http_error"}, {"class", "failed"}, {"error", c.in},
				{"cause_id", "ncsi-no-internet"}, {"cause_title", c.in},
			}}
			for format, want := range map[string][]string{
				"json": {`"error":"` + c.json + `"`, `"cause_title":"` + c.json + `"`},
				"ecs":  {`"error.message":"` + c.ecs + `"`, `"rule.name":"` + c.ecs + `"`},
				"cef":  {" reason=" + c.cef + " ", "|" + c.cef + "|8|"},
			} {
				line := encode(t, format, r)
				checkLine(t, line)
				for _, w := range want {
					if !strings.Contains(line, w) {
						t.Errorf("%s: no %q in %q", format, w, line)
					}
				}
			}

			// A reflected value (the report record's lists) in each format.
			rep := record{"escape", zapcore.InfoLevel, "report", rec{{"facts", []struct{ Text string }{{c.in}}}}}
			reflected := `[{"Text":"` + c.json + `"}]`
			for format, want := range map[string]string{
				"json": `"facts":` + reflected,
				"ecs":  `"m365tap.facts":` + reflected,
				"cef":  " m365tapFacts=" + strings.ReplaceAll(reflected, `\`, `\\`),
			} {
				line := encode(t, format, rep)
				checkLine(t, line)
				if !strings.Contains(line, want) {
					t.Errorf("%s: no %q in %q", format, want, line)
				}
			}
		})
	}
}

// TestEscapersCoverEveryCharacter walks every character up to U+FFFF and
// checks each escaper against the rule docs/events.md gives.
func TestEscapersCoverEveryCharacter(t *testing.T) {
	for r := rune(0); r <= 0xffff; r++ {
		if r >= 0xd800 && r < 0xe000 {
			continue // surrogates are not characters
		}
		s := string(r)
		control := r < 0x20 || r >= 0x7f && r < 0xa0 || r == 0x2028 || r == 0x2029
		json := s
		switch {
		case r == '"' || r == '\\':
			json = `\` + s
		case r == '\n':
			json = `\n`
		case r == '\r':
			json = `\r`
		case r == '\t':
			json = `\t`
		case control:
			json = `\u` + strconv.FormatInt(int64(0x10000+r), 16)[1:]
		}
		cef, header := s, s
		switch {
		case r == '\\':
			cef, header = `\\`, `\\`
		case r == '=':
			cef = `\=`
		case r == '|':
			header = `\|`
		case r == '\n':
			cef, header = `\n`, " "
		case r == '\r':
			cef, header = `\r`, " "
		case control:
			cef, header = " ", " "
		}
		for _, c := range []struct {
			name string
			e    *escaper
			want string
		}{{"zapJSON", zapJSON, json}, {"ecsJSON", ecsJSON, json}, {"cefValue", cefValue, cef}, {"cefHeader", cefHeader, header}} {
			// Alone, and inside plain text long enough for the word scan.
			if got := string(appendEscaped(nil, s, c.e)); got != c.want {
				t.Errorf("%s: %U written %q, want %q", c.name, r, got, c.want)
			}
			if got := string(appendEscaped(nil, "abcdefgh"+s+"ijklmnop", c.e)); got != "abcdefgh"+c.want+"ijklmnop" {
				t.Errorf("%s: %U in text written %q", c.name, r, got)
			}
		}
	}
}

// TestAttentionMatchesTable: a word needs attention exactly when one of its
// bytes is not safe, for every pair of bytes at every pair of positions
// (carries and borrows cross from one byte to the next).
func TestAttentionMatchesTable(t *testing.T) {
	for _, e := range []*escaper{zapJSON, cefValue, cefHeader} {
		for a := range 256 {
			for b := range 256 {
				for _, pos := range [][2]int{{0, 1}, {3, 4}, {6, 7}, {0, 7}, {2, 5}} {
					w := []byte("abcdefgh")
					w[pos[0]], w[pos[1]] = byte(a), byte(b)
					safe := e.safe[a] && e.safe[b]
					if got := attention(word(w), e.ma, e.mb) == 0; got != safe {
						t.Fatalf("% x: attention says safe=%v, table %v", w, got, safe)
					}
				}
			}
		}
	}
}
