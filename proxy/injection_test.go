package proxy_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/m365tap/m365tap/config"
	"github.com/m365tap/m365tap/internal/testnet"
	"github.com/m365tap/m365tap/logs"
	"github.com/m365tap/m365tap/proxy"
	"github.com/m365tap/m365tap/rules"
)

// formatOutputs writes every record the tap logs in each format, the way
// its outputs do: through logs.NewEncoder to a buffer per format (what
// log.stdout, log.file and file sinks write), and through logs.New to a
// syslog receiver per format over TCP (RFC 5424 framing, RFC 6587 octet
// counting), the production shipping path.
type formatOutputs struct {
	log    *zap.Logger
	local  map[string]*testnet.Lines
	syslog map[string]*syslogReceiver
	ship   *logs.Logs
	closed bool
}

func newFormatOutputs(t *testing.T) *formatOutputs {
	t.Helper()
	o := &formatOutputs{local: map[string]*testnet.Lines{}, syslog: map[string]*syslogReceiver{}}
	meta := logs.Meta{Version: "test", Hostname: "tap-host"}
	var cores []zapcore.Core
	var sinks []config.Sink
	for _, f := range logs.Formats {
		enc, err := logs.NewEncoder(f, meta)
		if err != nil {
			t.Fatal(err)
		}
		o.local[f] = &testnet.Lines{}
		cores = append(cores, zapcore.NewCore(enc, o.local[f], zapcore.DebugLevel))
		o.syslog[f] = newSyslogReceiver(t)
		sinks = append(sinks, config.Sink{Type: "syslog", Network: "tcp", Address: o.syslog[f].srv.Addr(), Format: f})
	}
	ship, err := logs.New(logs.Options{Level: "debug", Sinks: sinks, Meta: meta, Stderr: &testnet.Lines{}, DrainTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	o.ship = ship
	t.Cleanup(func() { o.close() })
	o.log = zap.New(zapcore.NewTee(append(cores, ship.Events.Core())...))
	return o
}

func (o *formatOutputs) close() {
	if !o.closed {
		o.closed = true
		_ = o.ship.Close()
	}
}

// records drains the syslog sinks (call it once every tap has shut down)
// and returns what each output holds, one string per record: the local
// outputs' records as written, line ending included, and the syslog
// receivers' frames, as "syslog json" and so on.
func (o *formatOutputs) records(t *testing.T) map[string][]string {
	t.Helper()
	o.close()
	out := map[string][]string{}
	for _, f := range logs.Formats {
		for _, w := range o.local[f].Writes() {
			out[f] = append(out[f], string(w))
		}
		n := len(out[f])
		testnet.WaitFor(t, func() bool { return len(o.syslog[f].messages()) >= n }, 10*time.Second)
		out["syslog "+f] = o.syslog[f].messages()
	}
	return out
}

// syslogReceiver is a TCP syslog collector that splits the stream by
// octet counting and keeps each message.
type syslogReceiver struct {
	srv  *testnet.Server
	mu   sync.Mutex
	msgs []string
}

func newSyslogReceiver(t *testing.T) *syslogReceiver {
	r := &syslogReceiver{}
	r.srv = testnet.Serve(t, func(c *net.TCPConn) {
		br := bufio.NewReader(c)
		for {
			count, err := br.ReadString(' ')
			if err != nil {
				return
			}
			n, err := strconv.Atoi(strings.TrimSuffix(count, " "))
			if err != nil || n <= 0 || n > 1<<20 {
				r.add("bad octet count " + strconv.Quote(count))
				return
			}
			msg := make([]byte, n)
			if _, err := io.ReadFull(br, msg); err != nil {
				return
			}
			r.add(string(msg))
		}
	})
	return r
}

func (r *syslogReceiver) add(m string) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
}

func (r *syslogReceiver) messages() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...)
}

// Forged records a hostile value carries behind a line break, hoping a
// collector takes them for records of their own.
const (
	fakeJSON = `{"msg":"exchange","outcome":"ok","host":"forged"}`
	fakeCEF  = "CEF:0|m365tap|m365tap||ok|forged|1|rt=0 forged=1"
)

// Hostile bytes, by what each carrier lets through to the tap: net/http
// refuses control characters in request lines and header values, and
// net/url all but a few ASCII symbols in a host, but bytes from 0x80 up
// pass everywhere; a status line's reason phrase holds anything but LF;
// a ClientHello's server name and a body hold anything at all.
const (
	hostileHost   = "\"=<>\xff\xfe\u2028"
	hostileQuery  = "|=\\\"\\\xff\xfe\u2028" + fakeJSON
	hostileHeader = " |=\\\"\\ \xff\xfe \u2028 \t" + fakeJSON + " " + fakeCEF
	hostileStatus = "\x1b[31m\x00\x7f\r|=\\\"\xff\xfe\u2028" + fakeJSON + "\r" + fakeCEF
	hostileAny    = "\r\n\x00\x1b[31m\x7f\u2028\xff\xfe|=\\\"\n" + fakeJSON + "\r\n" + fakeCEF + "\n"
)

// injectionMarkers are planted with the hostile bytes, one per carrier;
// each must reach every output, so the test cannot pass by logging less.
var injectionMarkers = []string{"inj-host", "inj-connect", "inj-path", "inj-query", "inj-ua", "inj-status",
	"inj-probe", "inj-check", "inj-sni", "inj-parent"}

// TestInjectionEscapedInEveryFormat sends hostile bytes through every
// carrier a client, origin or parent controls — the request's host (plain
// and CONNECT), path and query, User-Agent, a status line that becomes the
// error text, a DNS failure for a hostile name, a parent's refusal, a
// probe body (client request and active check), a TLS server name — and
// checks every record in every format, written locally and shipped over
// syslog: one line, valid UTF-8, no raw control byte, well-formed for its
// format, and no forged record at the start of a line.
func TestInjectionEscapedInEveryFormat(t *testing.T) {
	out := newFormatOutputs(t)

	// An origin whose status line is hostile.
	status := testnet.Serve(t, func(c *net.TCPConn) {
		readHead(c)
		io.WriteString(c, "HTTP/1.1 503 inj-status"+hostileStatus+"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	})
	// A probe host whose body is hostile.
	var probeBody sync.Map
	probe := probeOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := probeBody.Load("body")
		io.WriteString(w, body.(string))
	})
	probeBody.Store("body", "inj-probe"+hostileAny)
	sink := testnet.Sink(t)
	hosts := map[string]netip.Addr{
		"status.test":             addrOf(t, status.Addr()),
		"sni.test":                addrOf(t, sink.Addr()),
		"www.msftconnecttest.com": addrOf(t, probe.Listener.Addr().String()),
	}
	h := newHarness(t, proxy.Options{Hosts: hosts, AllowPorts: []int{80, 443, portOf(t, sink.Addr())}, Log: out.log})

	// The host: a plain request and a CONNECT, both failing DNS, so the
	// name is also in the error text. The harness's resolver is a closed
	// loopback port, and Go's resolver does not even ask for such names.
	rawExchange(t, h.addr, "GET http://inj-host"+hostileHost+".test/ HTTP/1.1\r\nHost: x\r\nUser-Agent: inj-ua"+hostileHeader+"\r\nConnection: close\r\n\r\n")
	rawExchange(t, h.addr, "CONNECT inj-connect"+hostileHost+".test:443 HTTP/1.1\r\nHost: x\r\nUser-Agent: inj-ua"+hostileHeader+"\r\n\r\n")
	// Path, query and User-Agent, answered with the hostile status line.
	rawExchange(t, h.addr, "GET http://status.test:"+port(status.Addr())+"/inj-path"+"|\"=\xff\xfe\u2028"+"?q=inj-query"+hostileQuery+
		"&code=x HTTP/1.1\r\nHost: status.test\r\nUser-Agent: inj-ua"+hostileHeader+"\r\nConnection: close\r\n\r\n")
	// A request line net/http refuses: a bad_request of the tap's own words.
	rawExchange(t, h.addr, "CONNECT inj-bad\x1b[31m.test:443 HTTP/1.1\r\n\r\n")
	// The probe body, on a client's probe request and on an active check.
	rawExchange(t, h.addr, "GET http://www.msftconnecttest.com/connecttest.txt HTTP/1.1\r\nHost: www.msftconnecttest.com\r\nConnection: close\r\n\r\n")
	out.local["json"].Wait(t, 5, 10*time.Second)
	probeBody.Store("body", "inj-check"+hostileAny)
	if res := h.srv.Check(context.Background(), proxy.Check{Kind: proxy.CheckWeb, Host: "www.msftconnecttest.com", Port: 80, Path: "/connecttest.txt"}); res.Outcome != rules.ProbeContentMismatch {
		t.Errorf("active check: %s (%s), want probe_content_mismatch", res.Outcome, res.Err)
	}
	// The TLS server name, read from the ClientHello in a tunnel.
	c, resp, br := rawConnect(t, h.addr, "sni.test:"+port(sink.Addr()), clientHello("inj-sni"+hostileAny))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT sni.test: %d", resp.StatusCode)
	}
	c.(*net.TCPConn).CloseWrite()
	io.Copy(io.Discard, br)
	c.Close()

	// A parent that refuses with a hostile status line, to a CONNECT and
	// to a plain request; it never dials anything.
	parent := testnet.Serve(t, func(c *net.TCPConn) {
		line := readHead(c)
		code := "407"
		if strings.HasPrefix(line, "CONNECT ") {
			code = "403"
		}
		io.WriteString(c, "HTTP/1.1 "+code+" inj-parent"+hostileStatus+"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	})
	hp := newHarness(t, proxy.Options{Parent: &url.URL{Scheme: "http", Host: parent.Addr()}, Log: out.log})
	rawExchange(t, hp.addr, "CONNECT login.microsoftonline.com:443 HTTP/1.1\r\nHost: x\r\n\r\n")
	rawExchange(t, hp.addr, "GET http://www.example.test/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")

	const events = 9
	out.local["json"].Wait(t, events, 10*time.Second)
	h.shutdown(time.Second)
	hp.shutdown(time.Second)
	recs := out.records(t)
	for name, list := range recs {
		if len(list) != events {
			t.Errorf("%s: %d records, want %d", name, len(list), events)
		}
		all := strings.ToLower(strings.Join(list, ""))
		for _, m := range injectionMarkers {
			if !strings.Contains(all, m) {
				t.Errorf("%s: %s never logged", name, m)
			}
		}
		for _, r := range list {
			checkRecord(t, name, r)
		}
	}
	// The outcomes the hostile bytes were carried to.
	got := map[string]bool{}
	for _, ev := range testnet.JSONRecords(t, out.local["json"].Lines(), "exchange") {
		got[ev["outcome"].(string)] = true
	}
	for _, o := range []string{"dns_nxdomain", "http_error", "bad_request", "probe_content_mismatch", "tls_failure", "parent_auth_required"} {
		if !got[o] {
			t.Errorf("no %s event; got %v", o, got)
		}
	}
}

// rawExchange writes req on a new connection to the tap, reads its answer
// and closes: an established tunnel ends without a byte sent through it.
func rawExchange(t *testing.T, addr, req string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	method, _, _ := strings.Cut(req, " ")
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%q: %v", req, err)
	}
	if method != http.MethodConnect || resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
	}
	resp.Body.Close()
}

// readHead reads a request head and returns its first line.
func readHead(c net.Conn) string {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	first, _ := br.ReadString('\n')
	for {
		l, err := br.ReadString('\n')
		if err != nil || strings.TrimRight(l, "\r\n") == "" {
			return first
		}
	}
}

// clientHello is a TLS 1.2 ClientHello record whose server_name extension
// (RFC 6066 section 3) holds name, whatever its bytes.
func clientHello(name string) []byte {
	u16 := func(b []byte, n int) []byte { return binary.BigEndian.AppendUint16(b, uint16(n)) }
	sni := u16(nil, 3+len(name))
	sni = append(sni, 0) // host_name
	sni = append(u16(sni, len(name)), name...)
	ext := u16(u16(nil, 0), len(sni)) // server_name
	ext = append(ext, sni...)
	body := []byte{3, 3}
	body = append(body, make([]byte, 32)...) // random
	body = append(body, 0)                   // session id
	body = append(body, 0, 2, 0x13, 0x01)    // TLS_AES_128_GCM_SHA256
	body = append(body, 1, 0)                // null compression
	body = append(u16(body, len(ext)), ext...)
	hs := append([]byte{1, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
	return append(u16([]byte{22, 3, 1}, len(hs)), hs...)
}

// checkRecord fails the test unless rec, one record of the output named
// (a format, or "syslog" and a format), reads as exactly one record of
// that format.
func checkRecord(t *testing.T, output, rec string) {
	t.Helper()
	format := strings.TrimPrefix(output, "syslog ")
	if format == output {
		// A local output: the record and its line ending, nothing else.
		body, ok := strings.CutSuffix(rec, "\n")
		if !ok {
			t.Errorf("%s: record without a line ending: %q", output, rec)
		}
		rec = body
	}
	if !utf8.ValidString(rec) {
		t.Errorf("%s: invalid UTF-8: %q", output, rec)
	}
	if i := strings.IndexFunc(rec, func(r rune) bool { return r < 0x20 || r == 0x7f }); i >= 0 {
		t.Errorf("%s: raw control byte %q at %d: %q", output, rec[i], i, rec)
	}
	if format != output {
		m := syslogFrame.FindStringSubmatch(rec)
		if m == nil {
			t.Errorf("%s: not an RFC 5424 message: %q", output, rec)
			return
		}
		rec = m[1]
	}
	for _, fake := range []string{fakeJSON, fakeCEF} {
		if strings.HasPrefix(rec, fake) {
			t.Errorf("%s: a forged record starts a line: %q", output, rec)
		}
	}
	switch format {
	case "json", "ecs":
		prefix := map[string]string{"json": `{"level":"`, "ecs": `{"@timestamp":"`}[format]
		var doc map[string]any
		if err := json.Unmarshal([]byte(rec), &doc); err != nil || !strings.HasPrefix(rec, prefix) {
			t.Errorf("%s: not one JSON record (%v): %q", output, err, rec)
		}
	case "cef":
		if err := checkCEF(rec); err != nil {
			t.Errorf("%s: %v: %q", output, err, rec)
		}
	}
}

// syslogFrame is an RFC 5424 message as the syslog sinks write it:
// PRI, version, timestamp, hostname, app-name, procid, msgid, no
// structured data, then MSG.
var syslogFrame = regexp.MustCompile(`^<\d{1,3}>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z tap-host m365tap \d+ exchange - (.*)$`)

// cefKey is an extension key the cef format writes: the CEF dictionary's
// own, or the product's m365tap... keys.
var cefKey = regexp.MustCompile(`^(?:rt|end|start|externalId|cat|act|outcome|src|spt|dhost|dpt|dst|app|proto|requestMethod|request|requestClientApplication|in|out|reason|msg|dvchost|cs[1-6](?:Label)?|cn[1-3](?:Label)?|m365tap[A-Z][A-Za-z0-9]*)$`)

// checkCEF parses a CEF record strictly: seven unescaped pipes end the
// header, whose fields escape only \ and |; in the extension every
// backslash starts one of the escapes \\ \= \n \r, and every unescaped =
// follows a key the format writes, each at most once. A hostile value
// that got a pipe, an equals sign or a backslash through unescaped shows
// as a header field out of place or a key nobody wrote.
func checkCEF(rec string) error {
	var header []string
	var cur strings.Builder
	i := 0
	for i < len(rec) && len(header) < 7 {
		switch c := rec[i]; c {
		case '\\':
			if i+1 == len(rec) || (rec[i+1] != '\\' && rec[i+1] != '|') {
				return fmt.Errorf("bad escape in the header at %d", i)
			}
			cur.WriteByte(rec[i+1])
			i += 2
		case '|':
			header = append(header, cur.String())
			cur.Reset()
			i++
		default:
			cur.WriteByte(c)
			i++
		}
	}
	if len(header) != 7 {
		return fmt.Errorf("%d header fields, want 7", len(header))
	}
	if header[0] != "CEF:0" || header[1] != "m365tap" || header[2] != "m365tap" {
		return fmt.Errorf("header %q", header)
	}
	if _, err := rules.ParseOutcome(header[4]); err != nil {
		return fmt.Errorf("event class %q is not an outcome", header[4])
	}
	if sev, err := strconv.Atoi(header[6]); err != nil || sev < 0 || sev > 10 {
		return fmt.Errorf("severity %q", header[6])
	}
	ext := rec[i:]
	seen := map[string]bool{}
	keyStart := 0
	for j := 0; j < len(ext); j++ {
		switch ext[j] {
		case '\\':
			if j+1 == len(ext) || !strings.ContainsRune(`\=nr`, rune(ext[j+1])) {
				return fmt.Errorf("bad escape in the extension at %d", j)
			}
			j++
		case ' ':
			keyStart = j + 1
		case '=':
			key := ext[keyStart:j]
			if !cefKey.MatchString(key) || seen[key] {
				return fmt.Errorf("unescaped = after %q", ext[max(0, j-20):j])
			}
			seen[key] = true
		}
	}
	if !seen["rt"] || !strings.HasPrefix(ext, "rt=") {
		return fmt.Errorf("extension does not start with rt=")
	}
	return nil
}

// TestLongSNICapped: a ClientHello may carry a server name of tens of
// kilobytes; the event keeps the first 256 bytes, as for the user agent.
func TestLongSNICapped(t *testing.T) {
	sink := testnet.Sink(t)
	h := newHarness(t, proxy.Options{AllowPorts: []int{mustPort(sink.Addr())}})
	name := strings.Repeat("a", 4000) + ".test"
	c, resp, br := rawConnect(t, h.addr, sink.Addr(), clientHello(name))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT: %d", resp.StatusCode)
	}
	c.(*net.TCPConn).CloseWrite()
	io.Copy(io.Discard, br)
	c.Close()
	ev := h.waitEvents(1)[0]
	if got, _ := ev["tls_sni"].(string); got != name[:256] {
		t.Errorf("tls_sni has %d bytes, want the first 256", len(got))
	}
}
