package logs

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/zap/zapcore"
)

// The fuzz targets feed arbitrary text into the fields an attacker can
// reach (host, URL, error, user agent, cause title, an unknown key and its
// value) and check that the record stays one well-formed line whose
// values read back as they went in. Seeds are in testdata/fuzz/<target>.

func fuzzRecord(host, url, errText, ua, title, key, value string) record {
	return record{"fuzz", zapcore.WarnLevel, "exchange", rec{
		{"id", uint64(3)}, {"client", "127.0.0.1:1"}, {"method", "CONNECT"}, {"host", host}, {"port", 443},
		{"url", url}, {"outcome", "tls_failure"}, {"class", "failed"}, {"error", errText}, {"user_agent", ua},
		{"cause_id", "required-endpoint-unreachable"}, {"cause_title", title}, {key, value},
	}}
}

func addSeeds(f *testing.F) {
	for _, h := range hostile {
		f.Add(h, "http://"+h+"/", h, h, h, h, h)
	}
	f.Add("login.microsoftonline.com", "", "dial tcp: refused", "curl/8", "A required endpoint", "extra_key", "v")
}

func FuzzEncodeCEF(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, host, url, errText, ua, title, key, value string) {
		r := fuzzRecord(host, url, errText, ua, title, key, value)
		line := encode(t, "cef", r)
		checkLine(t, line)
		header, ext, err := parseCEF(strings.TrimSuffix(line, "\n"))
		if err != nil {
			t.Fatalf("%v in %q", err, line)
		}
		if _, known := lookup(key); known {
			return // the extra key replaced one of the values checked below
		}
		if header[4] != "tls_failure" || header[6] != "8" {
			t.Fatalf("header %q", header)
		}
		wantName := cefExpect(title, true)
		if title == "" {
			wantName = outcomeName("tls_failure")
		}
		if header[5] != wantName {
			t.Errorf("Name %q, want %q", header[5], wantName)
		}
		for k, v := range map[string]string{"dhost": host, "request": url, "reason": errText, "requestClientApplication": ua} {
			if v == "" {
				if _, ok := ext[k]; ok {
					t.Errorf("%s written empty", k)
				}
				continue
			}
			if ext[k] != cefExpect(v, false) {
				t.Errorf("%s = %q, want %q", k, ext[k], cefExpect(v, false))
			}
		}
	})
}

func FuzzEncodeECS(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, host, url, errText, ua, title, key, value string) {
		r := fuzzRecord(host, url, errText, ua, title, key, value)
		line := encode(t, "ecs", r)
		checkLine(t, line)
		doc := map[string]any{}
		if err := json.Unmarshal([]byte(line), &doc); err != nil {
			t.Fatalf("%v in %q", err, line)
		}
		if _, known := lookup(key); known {
			return
		}
		for k, v := range map[string]string{"destination.address": host, "url.full": url, "error.message": errText, "user_agent.original": ua, "rule.name": title} {
			if doc[k] != validUTF8(v) && !(v == "" && (k == "destination.address" || k == "url.full")) {
				t.Errorf("%s = %q, want %q", k, doc[k], validUTF8(v))
			}
		}
		// The host is written once and copied under its other names.
		if host != "" {
			other := "destination.domain"
			if isIPLiteral(host) {
				other = "destination.ip"
			}
			for _, k := range []string{"url.domain", other} {
				if doc[k] != validUTF8(host) {
					t.Errorf("%s = %q, want %q", k, doc[k], validUTF8(host))
				}
			}
		}
		if doc[ecsPrefix+validUTF8(key)] != validUTF8(value) {
			t.Errorf("%s%s = %q, want %q", ecsPrefix, key, doc[ecsPrefix+key], value)
		}
	})
}

func FuzzSyslogFrame(f *testing.F) {
	for _, h := range hostile {
		f.Add(h, h, h, []byte(h), int8(0))
	}
	f.Add("pc-042", "m365tap", "exchange", []byte(`{"a":1}`+"\n"), int8(1))
	f.Add(strings.Repeat("h", 300), strings.Repeat("a", 60), strings.Repeat("m", 40), []byte("CEF:0|x"), int8(-1))
	f.Fuzz(func(t *testing.T, hostname, app, msgid string, payload []byte, level int8) {
		lvl := zapcore.Level(level%7 - 1)
		h := newSyslogHeader(23, hostname, app, 4711)
		ent := zapcore.Entry{Level: lvl, Time: time.Unix(1795536756, 379166000), Message: msgid}
		frame := appendOctetCounted(nil, h.appendFrame(nil, ent, payload))
		// Two frames back to back must split where they should.
		two := append(append([]byte(nil), frame...), frame...)
		for range 2 {
			m, rest, err := parseFrame(two)
			if err != nil {
				t.Fatalf("%v in %q", err, frame)
			}
			two = rest
			if m.pri != 23*8+syslogSeverity(lvl) || m.timestamp != "2026-11-24T16:12:36.379166Z" || m.procid != "4711" || m.sd != "-" {
				t.Fatalf("header %+v", m)
			}
			want := strings.TrimRight(string(payload), "\r\n")
			if m.msg != want {
				t.Fatalf("MSG %q, want %q", m.msg, want)
			}
			for _, f := range []struct{ got, in string }{{m.hostname, hostname}, {m.app, app}, {m.msgid, msgid}} {
				if f.in != "" && utf8.ValidString(f.in) && len(f.in) < 32 && strings.IndexFunc(f.in, func(r rune) bool { return r < 33 || r > 126 }) < 0 && f.got != f.in {
					t.Errorf("header field %q became %q", f.in, f.got)
				}
			}
		}
		if len(two) != 0 {
			t.Fatalf("%d bytes left after two frames", len(two))
		}
	})
}
