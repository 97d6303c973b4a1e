package logs

import (
	"time"

	"go.uber.org/zap/zapcore"
)

// The records the encoder tests use: one of each shape the tap writes,
// with the keys and value types proxy's MarshalLogObject gives them (ints
// as AddInt/AddInt64, timings as AddFloat64, rule_ids as AddByteString).

// fixedTime is the clock of every golden line.
var fixedTime = time.Date(2026, 11, 24, 16, 12, 36, 379166000, time.UTC)

var testMeta = Meta{Version: "0.1.0", Hostname: "pc-042"}

type kv struct {
	k string
	v any
}

// rec is a record as an ObjectMarshaler, logged with zap.Inline as the
// proxy logs its exchange.
type rec []kv

func (r rec) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	for _, f := range r {
		switch v := f.v.(type) {
		case string:
			enc.AddString(f.k, v)
		case []byte:
			enc.AddByteString(f.k, v)
		case int:
			enc.AddInt(f.k, v)
		case int64:
			enc.AddInt64(f.k, v)
		case uint64:
			enc.AddUint64(f.k, v)
		case float64:
			enc.AddFloat64(f.k, v)
		case bool:
			enc.AddBool(f.k, v)
		case zapcore.ArrayMarshaler:
			_ = enc.AddArray(f.k, v)
		case zapcore.ObjectMarshaler:
			_ = enc.AddObject(f.k, v)
		default:
			_ = enc.AddReflected(f.k, v)
		}
	}
	return nil
}

type arr []any

func (a arr) MarshalLogArray(enc zapcore.ArrayEncoder) error {
	for _, v := range a {
		switch v := v.(type) {
		case string:
			enc.AppendString(v)
		case int:
			enc.AppendInt(v)
		case zapcore.ObjectMarshaler:
			_ = enc.AppendObject(v)
		}
	}
	return nil
}

type record struct {
	name  string
	level zapcore.Level
	msg   string
	r     rec
}

const remedy = "Office sign-in depends on every endpoint that Microsoft's URL and IP address list marks as required in the \"Microsoft 365 Common and Office Online\" area, and this one could not be reached. Let this host and port through every firewall, proxy allow list and DNS resolver on the path."

// records are one of each shape; the golden files hold them in this order.
var records = []record{
	{"plain_ok", zapcore.InfoLevel, "exchange", rec{
		{"id", uint64(1)}, {"client", "127.0.0.1:37126"}, {"method", "GET"}, {"host", "127.0.0.1"}, {"port", 18081},
		{"url", "http://127.0.0.1:18081/a/b?code=REDACTED&x=1"}, {"route", "direct"}, {"dest_ip", "127.0.0.1"},
		{"outcome", "ok"}, {"class", "ok"}, {"status", 200}, {"upstream_status", 200}, {"bytes_up", int64(0)}, {"bytes_down", int64(6)},
		{"connect_ms", 0.1}, {"ttfb_ms", 521.821}, {"duration_ms", 522.093}, {"user_agent", "curl/7.88.1"},
	}},
	{"connect_refused_cause", zapcore.WarnLevel, "exchange", rec{
		{"id", uint64(2)}, {"client", "127.0.0.1:59310"}, {"method", "CONNECT"}, {"host", "login.microsoftonline.com"}, {"port", 443},
		{"route", "direct"}, {"outcome", "connect_refused"}, {"class", "failed"}, {"error", "dial tcp 127.0.0.1:443: connect: connection refused"},
		{"status", 502}, {"bytes_up", int64(0)}, {"bytes_down", int64(0)}, {"dns_ms", 1.25}, {"connect_ms", 0.078}, {"duration_ms", 0.208},
		{"user_agent", "curl/7.88.1"}, {"rule_id", "56"}, {"rule_ids", []byte("56,59")}, {"rule_source", "catalogue"}, {"service_area", "Common"},
		{"required", true}, {"express_route", true}, {"category", "Allow"}, {"cause_id", "required-endpoint-unreachable"},
		{"cause_title", "A required Microsoft 365 Common endpoint is unreachable"}, {"cause_remedy", remedy},
	}},
	{"tls_failure", zapcore.WarnLevel, "exchange", rec{
		{"id", uint64(5)}, {"client", "127.0.0.1:59354"}, {"method", "CONNECT"}, {"host", "origin.test"}, {"port", 18443}, {"route", "direct"},
		{"dest_ip", "127.0.0.1"}, {"outcome", "tls_failure"}, {"class", "failed"}, {"error", "client sent TLS alert unknown_ca during the handshake"},
		{"status", 200}, {"bytes_up", int64(229)}, {"bytes_down", int64(1236)}, {"connect_ms", 0.111}, {"ttfb_ms", 4.355}, {"duration_ms", 32.858},
		{"tls_sni", "origin.test"}, {"tls_version", "1.2"}, {"tls_alert", "unknown_ca"}, {"user_agent", "curl/7.88.1"},
	}},
	{"tunnel_ok_ipv6_parent", zapcore.InfoLevel, "exchange", rec{
		{"id", uint64(7)}, {"client", "[::1]:50312"}, {"method", "CONNECT"}, {"host", "2001:db8::10"}, {"port", 443}, {"route", "parent"},
		{"parent", "proxy.example.com:3128"}, {"outcome", "ok"}, {"class", "ok"}, {"status", 200}, {"upstream_status", 200},
		{"bytes_up", int64(517)}, {"bytes_down", int64(4400)}, {"dns_ms", 0.9}, {"connect_ms", 0.3}, {"ttfb_ms", 12.5}, {"duration_ms", 1500.25},
		{"tls_sni", "outlook.office365.com"}, {"tls_version", "1.3"},
	}},
	{"parent_auth_required", zapcore.WarnLevel, "exchange", rec{
		{"id", uint64(8)}, {"client", "127.0.0.1:50512"}, {"method", "GET"}, {"host", "www.msftconnecttest.com"}, {"port", 80},
		{"url", "http://www.msftconnecttest.com/connecttest.txt"}, {"route", "parent"}, {"parent", "proxy.example.com:3128"},
		{"reused", true}, {"outcome", "parent_auth_required"}, {"class", "failed"}, {"error", "parent answered 407 Proxy Authentication Required"},
		{"status", 407}, {"upstream_status", 407}, {"bytes_up", int64(0)}, {"bytes_down", int64(0)}, {"ttfb_ms", 41.0}, {"duration_ms", 41.2},
		{"user_agent", "Microsoft NCSI"}, {"rule_id", "ncsi-connecttest-v4"}, {"rule_ids", []byte("ncsi-connecttest-v4")}, {"rule_source", "ncsi"},
		{"service_area", "NCSI"}, {"required", true}, {"express_route", false}, {"probe", true},
		{"cause_id", "ncsi-no-internet"}, {"cause_title", "Windows decides there is no internet"}, {"cause_remedy", "Let the NCSI probe through."},
	}},
	{"probe_web_mismatch", zapcore.WarnLevel, "exchange", rec{
		{"id", uint64(4)}, {"client", ""}, {"method", "GET"}, {"host", "www.msftconnecttest.com"}, {"port", 80},
		{"url", "http://www.msftconnecttest.com/connecttest.txt"}, {"route", "direct"}, {"dest_ip", "127.0.0.1"},
		{"outcome", "probe_content_mismatch"}, {"class", "failed"}, {"error", "probe body does not contain the expected text"},
		{"upstream_status", 200}, {"bytes_up", int64(0)}, {"bytes_down", int64(22)}, {"connect_ms", 9.465}, {"ttfb_ms", 15.609}, {"duration_ms", 15.714},
		{"probe_body", "<html><title>Blocked</title>"}, {"user_agent", "Microsoft NCSI"}, {"rule_id", "ncsi-connecttest-v4"},
		{"rule_ids", []byte("ncsi-connecttest-v4")}, {"rule_source", "ncsi"}, {"service_area", "NCSI"}, {"required", true},
		{"express_route", false}, {"probe", true}, {"probe_check", "web"},
	}},
	{"probe_dns_nxdomain", zapcore.WarnLevel, "exchange", rec{
		{"id", uint64(9)}, {"client", ""}, {"method", ""}, {"host", "dns.msftncsi.com"}, {"route", "direct"},
		{"outcome", "dns_nxdomain"}, {"class", "failed"}, {"error", "lookup dns.msftncsi.com: no such host"},
		{"bytes_up", int64(0)}, {"bytes_down", int64(0)}, {"dns_ms", 3.5}, {"duration_ms", 3.6},
		{"cause_id", "ncsi-no-internet"}, {"cause_title", "Windows decides there is no internet"}, {"cause_remedy", "Let the NCSI probe through."},
		{"probe_check", "dns_a"},
	}},
	{"bad_request", zapcore.WarnLevel, "exchange", rec{
		{"id", uint64(10)}, {"client", "127.0.0.1:40000"}, {"method", ""}, {"host", ""}, {"outcome", "bad_request"}, {"class", "denied"},
		{"error", "malformed request: answered 400 Bad Request"}, {"status", 400}, {"bytes_up", int64(0)}, {"bytes_down", int64(0)}, {"duration_ms", 0.05},
	}},
	{"denied_port", zapcore.WarnLevel, "exchange", rec{
		{"id", uint64(11)}, {"client", "127.0.0.1:40002"}, {"method", "CONNECT"}, {"host", "example.com"}, {"port", 22},
		{"outcome", "denied"}, {"class", "denied"}, {"error", "CONNECT port 22 is not in access.ports"}, {"status", 403},
		{"bytes_up", int64(0)}, {"bytes_down", int64(0)}, {"duration_ms", 0.02},
	}},
	{"client_aborted", zapcore.WarnLevel, "exchange", rec{
		{"id", uint64(12)}, {"client", "127.0.0.1:40004"}, {"method", "CONNECT"}, {"host", "graph.microsoft.com"}, {"port", 443},
		{"route", "direct"}, {"dest_ip", "203.0.113.7"}, {"outcome", "client_aborted"}, {"class", "aborted"},
		{"error", "client closed the tunnel without sending a byte"}, {"status", 200}, {"bytes_up", int64(0)}, {"bytes_down", int64(0)},
		{"connect_ms", 20.5}, {"duration_ms", 30000.001},
	}},
	{"start", zapcore.InfoLevel, "start", rec{
		{"version", "0.1.0"}, {"listen", "127.0.0.1:18080"}, {"parent", ""}, {"probes_direct", false},
		{"rules_version", "2026052900"}, {"config", ""},
	}},
	{"rules_reload_failed", zapcore.WarnLevel, "rules_reload_failed", rec{
		{"error", "rules.yaml: line 3: want a list"}, {"kept_version", "2026052900+user.1a2b3c4d"},
	}},
	{"report", zapcore.InfoLevel, "report", rec{
		{"language", "en"}, {"exchanges", 3}, {"failed", 3},
		{"rules", arr{rec{{"rule_id", "56"}, {"exchanges", 3}, {"outcomes", rec{{"connect_refused", 3}}}}}},
		{"facts", arr{rec{{"id", "no_ncsi_probe"}, {"text", "No NCSI probe passed through the tap."}}}},
	}},
	{"events_dropped", zapcore.WarnLevel, "events_dropped", rec{
		{"dropped", uint64(42)}, {"sink", "syslog tcp 127.0.0.1:6514"}, {"reason", "queue_full"}, {"queue_size", 10000},
	}},
	{"stop", zapcore.InfoLevel, "stop", rec{{"listen", "127.0.0.1:18080"}}},
}
