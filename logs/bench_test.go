package logs

import (
	"net"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/m365tap/m365tap/config"
)

// benchExchange marshals itself as proxy's exchange does: typed Add calls
// with the same keys in the same order, rule_ids as a byte string built in
// the record's own scratch, the cause's three strings.
type benchExchange struct {
	id                                      uint64
	client, method, host, route, destIP     string
	port, status                            int
	outcome, class, err, ua                 string
	bytesUp, bytesDown                      int64
	connect, ttfb, duration                 float64
	sni, tlsVersion                         string
	ruleID, ruleIDs, source, area, category string
	required, express                       bool
	causeID, causeTitle, causeRemedy        string
	ids                                     [64]byte // scratch, as in proxy's record
}

func (ex *benchExchange) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddUint64("id", ex.id)
	enc.AddString("client", ex.client)
	enc.AddString("method", ex.method)
	enc.AddString("host", ex.host)
	enc.AddInt("port", ex.port)
	enc.AddString("route", ex.route)
	if ex.destIP != "" {
		enc.AddString("dest_ip", ex.destIP)
	}
	enc.AddString("outcome", ex.outcome)
	enc.AddString("class", ex.class)
	if ex.err != "" {
		enc.AddString("error", ex.err)
	}
	enc.AddInt("status", ex.status)
	enc.AddInt64("bytes_up", ex.bytesUp)
	enc.AddInt64("bytes_down", ex.bytesDown)
	enc.AddFloat64("connect_ms", ex.connect)
	if ex.ttfb > 0 {
		enc.AddFloat64("ttfb_ms", ex.ttfb)
	}
	enc.AddFloat64("duration_ms", ex.duration)
	if ex.sni != "" {
		enc.AddString("tls_sni", ex.sni)
		enc.AddString("tls_version", ex.tlsVersion)
	}
	enc.AddString("user_agent", ex.ua)
	enc.AddString("rule_id", ex.ruleID)
	enc.AddByteString("rule_ids", append(ex.ids[:0], ex.ruleIDs...))
	enc.AddString("rule_source", ex.source)
	enc.AddString("service_area", ex.area)
	enc.AddBool("required", ex.required)
	enc.AddBool("express_route", ex.express)
	enc.AddString("category", ex.category)
	if ex.causeID != "" {
		enc.AddString("cause_id", ex.causeID)
		enc.AddString("cause_title", ex.causeTitle)
		enc.AddString("cause_remedy", ex.causeRemedy)
	}
	return nil
}

// The two events the benchmarks encode: the common one (a tunnel to a
// Microsoft 365 host that worked) and the heavy one (a required endpoint
// that failed, with the article's cause and its long remedy).
var (
	benchOK = &benchExchange{
		id: 48213, client: "127.0.0.1:59310", method: "CONNECT", host: "outlook.office365.com", port: 443, route: "direct",
		destIP: "52.96.165.18", outcome: "ok", class: "ok", status: 200, bytesUp: 4711, bytesDown: 128004,
		connect: 11.482, ttfb: 24.051, duration: 30512.774, sni: "outlook.office365.com", tlsVersion: "1.3",
		ua:     "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17928; Pro)",
		ruleID: "1", ruleIDs: "1", source: "catalogue", area: "Exchange", category: "Optimize", required: true, express: true,
	}
	benchFailed = &benchExchange{
		id: 48214, client: "127.0.0.1:59311", method: "CONNECT", host: "login.microsoftonline.com", port: 443, route: "direct",
		outcome: "connect_refused", class: "failed", err: "dial tcp 20.190.151.7:443: connect: connection refused",
		status: 502, connect: 0.078, duration: 0.208, ua: "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17928; Pro)",
		ruleID: "56", ruleIDs: "56,59", source: "catalogue", area: "Common", category: "Allow", required: true, express: true,
		causeID: "required-endpoint-unreachable", causeTitle: "A required Microsoft 365 Common endpoint is unreachable", causeRemedy: remedy,
	}
)

func benchEncode(b *testing.B, format string) {
	enc, err := NewEncoder(format, testMeta)
	if err != nil {
		b.Fatal(err)
	}
	for _, ev := range []struct {
		name string
		ex   *benchExchange
		lvl  zapcore.Level
	}{{"ok_tunnel", benchOK, zapcore.InfoLevel}, {"failed_with_cause", benchFailed, zapcore.WarnLevel}} {
		ent := zapcore.Entry{Level: ev.lvl, Time: fixedTime, Message: "exchange"}
		fields := []zapcore.Field{zap.Inline(ev.ex)}
		b.Run(ev.name, func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				buf, _ := enc.EncodeEntry(ent, fields)
				n = buf.Len()
				buf.Free()
			}
			b.ReportMetric(float64(n), "bytes/event")
		})
	}
}

// BenchmarkEncodeJSON, ECS and CEF: one exchange event, as the tap's
// logger hands it to a core (zap.Inline of a marshaler), to a pooled buffer.
func BenchmarkEncodeJSON(b *testing.B) { benchEncode(b, "json") }
func BenchmarkEncodeECS(b *testing.B)  { benchEncode(b, "ecs") }
func BenchmarkEncodeCEF(b *testing.B)  { benchEncode(b, "cef") }

// BenchmarkSyslogEnqueue is what the proxy pays per event for a syslog
// sink: the logger call, the encoding, the RFC 5424 header and the copy
// into the queue. The receiver reads everything, so nothing is dropped
// (sub-benchmark up), or nothing listens, so the queue stays full and each
// event is counted as dropped (down). With +disk the sink has a disk queue
// (1024 MB, more than the benchmark writes): the copy goes into its buffer,
// which the sender writes to the files.
func BenchmarkSyslogEnqueue(b *testing.B) {
	for _, c := range []struct {
		name     string
		up, disk bool
	}{{"up", true, false}, {"down", false, false}, {"up+disk", true, true}, {"down+disk", false, true}} {
		b.Run(c.name, func(b *testing.B) {
			addr := "127.0.0.1:1"
			if c.up {
				r := newReceiver(b, nil)
				addr = r.addr
			} else {
				ln, _ := net.Listen("tcp", "127.0.0.1:0")
				addr = ln.Addr().String()
				ln.Close()
			}
			sk := config.Sink{Type: "syslog", Network: "tcp", Address: addr, Format: "ecs", QueueSize: 10000}
			if c.disk {
				sk.DiskQueue = b.TempDir()
			}
			lg, err := New(Options{Sinks: []config.Sink{sk},
				Meta: testMeta, Stderr: &syncBuffer{}, DrainTimeout: 100 * time.Millisecond, tune: fast})
			if err != nil {
				b.Fatal(err)
			}
			defer lg.Close()
			b.ReportAllocs()
			for b.Loop() {
				if ce := lg.Events.Check(zapcore.InfoLevel, "exchange"); ce != nil {
					ce.Write(zap.Inline(benchOK))
				}
			}
		})
	}
}
