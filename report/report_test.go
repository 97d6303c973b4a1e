package report

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/m365tap/m365tap/internal/testnet"
	"github.com/m365tap/m365tap/rules"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

func readFiles(t *testing.T, files ...string) *Aggregate {
	t.Helper()
	var a Aggregate
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		st, err := a.Read(fh)
		fh.Close()
		if err != nil || st.Skipped != 0 || st.Records == 0 {
			t.Fatalf("%s: %+v %v", f, st, err)
		}
	}
	return &a
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./report -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// TestGolden renders the recorded sessions (testdata/*.log, written by
// go test ./cli -run TestRecordedSessions -record) in every format.
func TestGolden(t *testing.T) {
	dir := t.TempDir()
	// The blocking-parent session as log rotation left it: compressed,
	// renamed with its rotation time.
	rotated := filepath.Join(dir, "m365tap-events-2026-11-24T16-48-46.500.log.gz")
	testnet.GzipFile(t, filepath.Join("testdata", "blocking-parent.log"), rotated)

	set := embeddedSet(t)
	multi := filepath.Join("testdata", "multi-pc.log")
	all := []Format{FormatText, FormatJSON, FormatMarkdown, FormatHTML}
	cases := []struct {
		name    string
		files   []string
		lang    rules.Language
		formats []Format
		multi   bool // with client names and the rule set, as `m365tap report` reads it
	}{
		{"parent-then-bypass", []string{rotated, filepath.Join("testdata", "bypass.log")}, rules.LangEN,
			[]Format{FormatText, FormatJSON, FormatMarkdown}, false},
		{"no-route", []string{filepath.Join("testdata", "no-route.log")}, rules.LangEN, []Format{FormatText, FormatMarkdown}, false},
		{"auth-parent-ja", []string{filepath.Join("testdata", "auth-parent.log")}, rules.LangJA, []Format{FormatText, FormatJSON}, false},
		// Three PCs through one tap with ExpressRoute on (recorded by
		// go test ./cli -run TestMultiPCSession -record): the NCSI probe
		// and graph.microsoft.com fail on every PC, one PC rejects the
		// inspection certificate of two hosts.
		{"multi-pc", []string{multi}, rules.LangEN, all, true},
		{"multi-pc-ja", []string{multi}, rules.LangJA, all, true},
	}
	ext := map[Format]string{FormatText: "txt", FormatJSON: "json", FormatMarkdown: "md", FormatHTML: "html"}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := readFiles(t, tc.files...)
			if tc.multi {
				a.Rules, a.Names = set, multiNames
			}
			sum := a.Summary(tc.lang)
			for _, f := range tc.formats {
				var b bytes.Buffer
				if err := sum.Write(&b, f); err != nil {
					t.Fatal(err)
				}
				checkGolden(t, tc.name+"."+ext[f]+".golden", b.Bytes())
			}
		})
	}
}

// multiNames are the multi-PC session's client names (clients.names).
var multiNames = map[string]string{"127.0.0.11": "PC-SALES-01", "127.0.0.13": "PC-SALES-07"}

func embeddedSet(t testing.TB) *rules.Set {
	t.Helper()
	cat, err := rules.EmbeddedCatalogue()
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.Compile(cat, nil)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// TestReadGzipSameAsPlain: a rotated, compressed copy reads as the
// original, and the order of the files does not matter.
func TestReadGzipSameAsPlain(t *testing.T) {
	plain := filepath.Join("testdata", "blocking-parent.log")
	gz := filepath.Join(t.TempDir(), "x.log.gz")
	testnet.GzipFile(t, plain, gz)
	bypass := filepath.Join("testdata", "bypass.log")
	a := readFiles(t, plain, bypass).Summary(rules.LangEN)
	b := readFiles(t, bypass, gz).Summary(rules.LangEN)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("summaries differ:\n%+v\n%+v", a, b)
	}
}

func TestReadSkipsWhatIsNotARecord(t *testing.T) {
	long := `{"msg":"exchange","ts":"2026-11-24T16:00:00Z","host":"h.test","outcome":"ok","class":"ok","error":"` +
		strings.Repeat("x", 200<<10) + `"}`
	input := "not json\n\n" + `{"msg":"exchange","ts":"2026-11-24T16:00:01Z","host":"h.test","outcome":"dns_failure","class":"failed"}` +
		"\n{\"truncated\":\n" + `{"level":"info"}` + "\n" + long // no final newline
	var a Aggregate
	st, err := a.Read(strings.NewReader(input))
	if err != nil {
		t.Fatal(err)
	}
	if st.Records != 2 || st.Skipped != 3 || a.exchanges != 2 || a.failed != 1 {
		t.Errorf("stats %+v, exchanges %d, failed %d", st, a.exchanges, a.failed)
	}
}

// rec is an exchange record for the fact tests.
func rec(host, route, outcome, rule, cause string, extra ...func(*Record)) Record {
	o, _ := rules.ParseOutcome(outcome)
	r := Record{Msg: "exchange", Time: time.Date(2026, 11, 24, 16, 0, 0, 0, time.UTC), Host: host, Port: 443, Route: route,
		Outcome: outcome, Class: o.Class().String(), RuleID: rule, CauseID: cause}
	switch {
	case strings.HasPrefix(rule, "ncsi-"):
		r.RuleSource, r.ServiceArea, r.Required = "ncsi", "NCSI", true
	case rule == "35":
		r.RuleSource, r.ServiceArea, r.Required = "catalogue", "SharePoint", true
	case rule != "":
		r.RuleSource, r.ServiceArea, r.Required = "catalogue", "Common", true
	}
	for _, f := range extra {
		f(&r)
	}
	return r
}

func probeReq(r *Record)           { r.Probe = true }
func activeCheck(r *Record)        { r.ProbeCheck = "tls" }
func startAt(listen string) Record { return Record{Msg: "start", Listen: listen} }
func factIDs(facts []Fact) []string {
	ids := []string{}
	for _, f := range facts {
		ids = append(ids, f.ID)
	}
	return ids
}

func TestFacts(t *testing.T) {
	const req = "required-endpoint-unreachable"
	cases := []struct {
		name  string
		recs  []Record
		facts []string
		text  string // in the first fact
	}{
		{"nothing at all", nil, []string{"no_traffic"}, `proxy-server="TAP-ADDRESS:PORT"`},
		{"only the active probe", []Record{startAt("[::]:8080"), rec("login.microsoftonline.com", "direct", "ok", "56", "", activeCheck)},
			[]string{"no_traffic"}, `proxy-server="TAP-ADDRESS:8080"`},
		{"clients but no probe", []Record{startAt("127.0.0.1:8080"), rec("login.microsoftonline.com", "direct", "ok", "56", "")},
			[]string{"no_ncsi_probe"}, `netsh winhttp set proxy proxy-server="127.0.0.1:8080" bypass-list="<local>"`},
		{"a probe passed", []Record{rec("www.msftconnecttest.com", "direct", "ok", "ncsi-connecttest-v4", "", probeReq)}, []string{}, ""},
		{"a probe host, not the probe path", []Record{rec("www.msftconnecttest.com", "direct", "ok", "ncsi-connecttest-v4", "")},
			[]string{"no_ncsi_probe"}, ""},
		{"failed only through the parent", []Record{
			rec("www.msftconnecttest.com", "direct", "ok", "ncsi-connecttest-v4", "", probeReq),
			rec("login.microsoftonline.com", "parent", "http_error", "56", req),
			rec("login.microsoftonline.com", "direct", "ok", "56", "", activeCheck),
			// Required through another matching rule: known from the cause.
			rec("officeclient.microsoft.com", "parent", "http_error", "35", req),
			rec("officeclient.microsoft.com", "direct", "ok", "35", ""),
			// Failed direct too: not "only through the parent".
			rec("graph.microsoft.com", "parent", "http_error", "56", req),
			rec("graph.microsoft.com", "direct", "tls_failure", "56", req),
		}, []string{"parent_only"}, "2 required endpoints failed only through the parent proxy, while direct connections to them worked (login.microsoftonline.com, officeclient.microsoft.com)"},
		{"every required endpoint failed", []Record{
			rec("www.msftconnecttest.com", "direct", "ok", "ncsi-connecttest-v4", "", probeReq),
			rec("login.microsoftonline.com", "direct", "connect_timeout", "56", req),
			rec("graph.microsoft.com", "direct", "dns_nxdomain", "56", req),
			rec("graph.microsoft.com", "direct", "client_aborted", "56", ""),
			rec("www.example.test", "direct", "ok", "", ""),
		}, []string{"all_required_failed"}, "(hosts: 2, exchanges: 2, none succeeded)"},
		{"every required endpoint answered 407", []Record{
			rec("www.msftconnecttest.com", "parent", "parent_auth_required", "ncsi-connecttest-v4", "ncsi-no-internet", probeReq),
			rec("login.microsoftonline.com", "parent", "parent_auth_required", "56", "device-proxy-settings"),
		}, []string{}, ""},
		{"one required endpoint worked", []Record{
			rec("www.msftconnecttest.com", "direct", "ok", "ncsi-connecttest-v4", "", probeReq),
			rec("login.microsoftonline.com", "direct", "connect_timeout", "56", req),
			rec("graph.microsoft.com", "direct", "ok", "56", ""),
		}, []string{}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var a Aggregate
			for i := range tc.recs {
				a.Add(&tc.recs[i])
			}
			s := a.Summary(rules.LangEN)
			if got := factIDs(s.Facts); !slices.Equal(got, tc.facts) {
				t.Fatalf("facts %v, want %v", got, tc.facts)
			}
			if tc.text != "" && !strings.Contains(s.Facts[0].Text, tc.text) {
				t.Errorf("fact text lacks %q: %s", tc.text, s.Facts[0].Text)
			}
			ja := a.Summary(rules.LangJA)
			for i, f := range ja.Facts {
				if f.Text == s.Facts[i].Text || !strings.ContainsRune(f.Text, 'の') {
					t.Errorf("fact %s has no Japanese text: %s", f.ID, f.Text)
				}
			}
		})
	}
}

func TestVerdictOrder(t *testing.T) {
	var a Aggregate
	for _, r := range []Record{
		rec("login.microsoftonline.com", "parent", "parent_auth_required", "56", "device-proxy-settings"),
		rec("graph.microsoft.com", "direct", "connect_refused", "56", "required-endpoint-unreachable"),
		rec("graph.microsoft.com", "direct", "connect_refused", "56", "required-endpoint-unreachable"),
		rec("office.com", "direct", "connect_refused", "47", "expressroute-path"),
		rec("www.msftconnecttest.com", "parent", "parent_auth_required", "ncsi-connecttest-v4", "ncsi-no-internet", probeReq),
	} {
		a.Add(&r)
	}
	var got []string
	for _, f := range a.Summary(rules.LangJA).Verdict {
		got = append(got, f.CauseID)
		if c, _ := rules.ParseCauseID(f.CauseID); f.Title != rules.CauseByID(c).Title(rules.LangJA) {
			t.Errorf("%s: title %q is not the Japanese one", f.CauseID, f.Title)
		}
	}
	want := []string{"ncsi-no-internet", "device-proxy-settings", "required-endpoint-unreachable", "expressroute-path"}
	if !slices.Equal(got, want) {
		t.Errorf("verdict %v, want %v", got, want)
	}
}

// exchangeEvent marshals like the proxy's exchange: flat keys through an
// ObjectMarshaler logged with zap.Inline.
type exchangeEvent struct{ r Record }

func (e exchangeEvent) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddUint64("id", 7)
	enc.AddString("client", "127.0.0.1:5000")
	enc.AddString("method", e.r.Method)
	enc.AddString("host", e.r.Host)
	if e.r.Port != 0 {
		enc.AddInt("port", e.r.Port)
	}
	if e.r.Route != "" {
		enc.AddString("route", e.r.Route)
	}
	enc.AddString("outcome", e.r.Outcome)
	enc.AddString("class", e.r.Class)
	if e.r.Error != "" {
		enc.AddString("error", e.r.Error)
	}
	enc.AddFloat64("duration_ms", 1.5)
	if e.r.RuleID != "" {
		enc.AddString("rule_id", e.r.RuleID)
		enc.AddByteString("rule_ids", []byte(e.r.RuleID+",59"))
		enc.AddString("rule_source", e.r.RuleSource)
		enc.AddString("service_area", e.r.ServiceArea)
		enc.AddBool("required", e.r.Required)
		if e.r.Probe {
			enc.AddBool("probe", true)
		}
	}
	if e.r.CauseID != "" {
		enc.AddString("cause_id", e.r.CauseID)
	}
	if e.r.ProbeCheck != "" {
		enc.AddString("probe_check", e.r.ProbeCheck)
	}
	return nil
}

// TestCollectorMatchesReader: the Collector, teed onto a logger, sees what
// a reader of the written JSON sees, whatever the log's level filters out;
// it ignores namespaced keys and its own report record.
func TestCollectorMatchesReader(t *testing.T) {
	var buf bytes.Buffer
	enc := zapcore.NewJSONEncoder(zapcore.EncoderConfig{TimeKey: "ts", MessageKey: "msg", LevelKey: "level",
		EncodeLevel: zapcore.LowercaseLevelEncoder, EncodeTime: zapcore.RFC3339NanoTimeEncoder})
	all := zapcore.NewCore(enc, zapcore.AddSync(&buf), zapcore.DebugLevel)
	var warnOnly bytes.Buffer
	warn := zapcore.NewCore(enc.Clone(), zapcore.AddSync(&warnOnly), zapcore.WarnLevel)
	coll := NewCollector()
	lg := zap.New(zapcore.NewTee(all, warn, coll))

	lg.Info("start", zap.String("listen", "127.0.0.1:8080"))
	records := []Record{
		rec("www.msftconnecttest.com", "direct", "ok", "ncsi-connecttest-v4", "", probeReq),
		rec("login.microsoftonline.com", "parent", "http_error", "56", "required-endpoint-unreachable",
			func(r *Record) { r.Method, r.Error = "CONNECT", "parent proxy answered CONNECT with 403 Forbidden" }),
		rec("login.microsoftonline.com", "direct", "ok", "56", "", activeCheck),
		rec("dns.msftncsi.com", "direct", "dns_failure", "", "ncsi-no-internet", func(r *Record) { r.ProbeCheck, r.Port = "dns_a", 0 }),
		rec("www.example.test", "parent", "client_aborted", "", ""),
	}
	for i, r := range records {
		lvl := zapcore.WarnLevel
		if r.Outcome == "ok" {
			lvl = zapcore.InfoLevel
		}
		ce := lg.Check(lvl, "exchange")
		if i == 1 {
			// Keys under a namespace are not the event's own.
			ce.Write(zap.Inline(exchangeEvent{r}), zap.Namespace("extra"), zap.String("host", "elsewhere.test"))
			continue
		}
		ce.Write(zap.Inline(exchangeEvent{r}))
	}
	lg.With(zap.String("host", "ignored.test")).Info("rules_reloaded")
	coll.Summary(rules.LangEN) // a report record would be logged now
	lg.Info("report", zap.Int("exchanges", 99))

	var a Aggregate
	if _, err := a.Read(&buf); err != nil {
		t.Fatal(err)
	}
	fromLog, live := a.Summary(rules.LangEN), coll.Summary(rules.LangEN)
	if !reflect.DeepEqual(fromLog, live) {
		j1, _ := json.MarshalIndent(fromLog, "", " ")
		j2, _ := json.MarshalIndent(live, "", " ")
		t.Errorf("collector and reader differ:\n%s\n%s", j2, j1)
	}
	if live.Exchanges != 5 || live.ProbeChecks != 2 || live.NCSIProbes != 1 || len(live.Verdict) != 2 {
		t.Errorf("summary %+v", live)
	}
	// A log written at level warn loses the ok exchanges; the collector
	// does not.
	var w Aggregate
	w.Read(&warnOnly)
	if ws := w.Summary(rules.LangEN); ws.Exchanges != 3 {
		t.Errorf("warn-level log has %d exchanges", ws.Exchanges)
	}
}

func BenchmarkCollector(b *testing.B) {
	coll := NewCollector()
	lg := zap.New(coll)
	r := rec("login.microsoftonline.com", "parent", "http_error", "56", "required-endpoint-unreachable",
		func(r *Record) { r.Method, r.Error = "CONNECT", "parent proxy answered CONNECT with 403 Forbidden" })
	ev := exchangeEvent{r}
	b.ReportAllocs()
	for b.Loop() {
		if ce := lg.Check(zapcore.WarnLevel, "exchange"); ce != nil {
			ce.Write(zap.Inline(ev))
		}
	}
}

// BenchmarkCollectorWrite is the Collector's own cost per event, as the
// tee calls it.
func BenchmarkCollectorWrite(b *testing.B) {
	coll := NewCollector()
	r := rec("login.microsoftonline.com", "parent", "http_error", "56", "required-endpoint-unreachable",
		func(r *Record) { r.Method, r.Error = "CONNECT", "parent proxy answered CONNECT with 403 Forbidden" })
	fields := []zapcore.Field{zap.Inline(exchangeEvent{r})}
	ent := zapcore.Entry{Message: "exchange", Level: zapcore.WarnLevel, Time: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		coll.Write(ent, fields)
	}
}

func TestClientAddress(t *testing.T) {
	for _, tc := range []struct{ client, check, want string }{
		{"127.0.0.11:5000", "", "127.0.0.11"},
		{"[2001:db8::7]:5000", "", "2001:db8::7"},
		{"[::ffff:10.0.0.5]:443", "", "10.0.0.5"},
		{"10.0.0.9", "", "10.0.0.9"},
		{"", "", ""},
		{"127.0.0.1:5000", "tls", ""}, // the active probe is the tap, not a PC
	} {
		if got := clientAddress(&Record{Client: tc.client, ProbeCheck: tc.check}); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.client, got, tc.want)
		}
	}
}
