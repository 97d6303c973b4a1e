package logs

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/m365tap/m365tap/config"
)

// fast makes a sink's retries and reports quick enough for tests.
func fast(c *shipConfig) {
	c.backoffMin = 10 * time.Millisecond
	c.backoffMax = 50 * time.Millisecond
	c.reportEvery = 50 * time.Millisecond
	c.dialTimeout = time.Second
	c.writeTimeout = 2 * time.Second
}

type sinkEnv struct {
	lg     *Logs
	stdout *syncBuffer
	stderr *syncBuffer
}

// newSyslogLogs builds Logs with JSON on a captured stdout (the local sink)
// and one syslog sink.
func newSyslogLogs(t testing.TB, sk config.Sink, drain time.Duration) *sinkEnv {
	t.Helper()
	e := &sinkEnv{stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	lg, err := New(Options{
		Stdout: true, StdoutW: e.stdout, Stderr: e.stderr, FlushInterval: 10 * time.Millisecond,
		Sinks: []config.Sink{sk}, DrainTimeout: drain, Meta: testMeta, tune: fast,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.lg = lg
	return e
}

func logSeq(lg *Logs, from, to int) {
	for i := from; i <= to; i++ {
		lg.Events.Info("exchange", seq(i)...)
	}
}

// payloadIDs reads the exchange ids from JSON payloads, and the
// events_dropped records.
func payloadIDs(t testing.TB, msgs []syslogMsg) (ids []int, docs []map[string]any) {
	t.Helper()
	for _, m := range msgs {
		d := map[string]any{}
		if err := json.Unmarshal([]byte(m.msg), &d); err != nil {
			t.Fatalf("payload %q: %v", m.msg, err)
		}
		docs = append(docs, d)
		if m.msgid == "exchange" {
			ids = append(ids, int(d["id"].(float64)))
		}
	}
	return ids, docs
}

func span(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSyslogSinkDeliversInOrder(t *testing.T) {
	r := newReceiver(t, nil)
	e := newSyslogLogs(t, config.Sink{Type: "syslog", Network: "tcp", Address: r.addr, Format: "json"}, 5*time.Second)
	logSeq(e.lg, 1, 2000)
	if err := e.lg.Close(); err != nil {
		t.Fatal(err)
	}
	// Close returns once everything is written to the socket; the
	// receiver may still be reading the last of it.
	waitFor(t, "2000 messages", 10*time.Second, func() bool { return len(r.messages()) >= 2000 })
	ids, _ := payloadIDs(t, r.messages())
	if !equalInts(ids, span(1, 2000)) {
		t.Fatalf("received %d ids, first %v; want 1..2000 in order", len(ids), ids[:min(len(ids), 5)])
	}
	if s := e.stderr.String(); s != "" {
		t.Errorf("stderr: %s", s)
	}
}

// TestSyslogSinkOutage stops the receiver while events keep coming and
// starts it again: every event up to the queue bound arrives, the rest are
// counted exactly in events_dropped, to the sink and to the local sink.
func TestSyslogSinkOutage(t *testing.T) {
	const queue = 100
	r := newReceiver(t, nil)
	e := newSyslogLogs(t, config.Sink{Type: "syslog", Network: "tcp", Address: r.addr, QueueSize: queue}, 5*time.Second)
	logSeq(e.lg, 1, 50)
	// Received, and released from the queue: the 100 slots are free.
	waitFor(t, "the first 50", 10*time.Second, func() bool { return len(r.messages()) == 50 && queued(e.lg, 0) == 0 })

	r.stop()
	logSeq(e.lg, 51, 250) // 100 fit in the queue, 100 are dropped
	time.Sleep(100 * time.Millisecond)
	r.start()
	waitFor(t, "recovery", 10*time.Second, func() bool {
		_, docs := payloadIDs(t, r.messages())
		return droppedIn(t, docs)["queue_full"] == 100 && len(docs) >= 151 && strings.Contains(e.stderr.String(), "connected after")
	})
	if err := e.lg.Close(); err != nil {
		t.Fatal(err)
	}
	ids, docs := payloadIDs(t, r.messages())
	sort.Ints(ids)
	if !equalInts(ids, span(1, 150)) {
		t.Errorf("received ids %v...%v (%d), want 1..150 each once", ids[:min(5, len(ids))], ids[max(0, len(ids)-5):], len(ids))
	}
	if got := droppedIn(t, docs); got["queue_full"] != 100 || len(got) != 1 {
		t.Errorf("events_dropped at the sink: %v, want queue_full 100", got)
	}
	if got := droppedIn(t, jsonLines(t, e.stdout.String())); got["queue_full"] != 100 || got["shutdown"] != 0 {
		t.Errorf("events_dropped on the local sink: %v, want queue_full 100", got)
	}
	stderr := e.stderr.String()
	// The loss is seen by the reader (the receiver closed) or by a write
	// (broken pipe, reset), whichever comes first.
	if !strings.Contains(stderr, "the receiver closed the connection") && !strings.Contains(stderr, "broken pipe") && !strings.Contains(stderr, "connection reset") {
		t.Errorf("stderr does not say the connection was lost:\n%s", stderr)
	}
	for _, want := range []string{"queue full (100 events)", "connected after", "told it that 100 events were dropped"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

// TestSyslogSinkDrainReportsWhatIsLeft: a receiver that never comes back
// costs Close the drain timeout, no more, and every event is accounted for
// on stderr and on the local sink.
func TestSyslogSinkDrainReportsWhatIsLeft(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: every dial is refused
	e := newSyslogLogs(t, config.Sink{Type: "syslog", Network: "tcp", Address: addr, QueueSize: 10}, 300*time.Millisecond)
	logSeq(e.lg, 1, 25)
	time.Sleep(200 * time.Millisecond) // several refused attempts
	start := time.Now()
	if err := e.lg.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Close took %v with a drain timeout of 300ms", time.Since(start))
	stderr := e.stderr.String()
	if n := strings.Count(stderr, "connection refused"); n != 1 {
		t.Errorf("the refused dial was printed %d times, want once:\n%s", n, stderr)
	}
	if !strings.Contains(stderr, "25 events not delivered: 10 still queued when the drain ended, 15 dropped while the queue was full") {
		t.Errorf("stderr does not report the 25 lost events:\n%s", stderr)
	}
	got := droppedIn(t, jsonLines(t, e.stdout.String()))
	if got["queue_full"]+got["shutdown"] != 25 || got["shutdown"] < 10 {
		t.Errorf("events_dropped on the local sink: %v, want 25 in all, at least 10 at shutdown", got)
	}
}

// TestSyslogSinkNeverBlocks: a receiver that accepts and never reads
// fills the socket buffers; logging still returns at once and counts what
// it drops.
func TestSyslogSinkNeverBlocks(t *testing.T) {
	r := &receiver{t: t, addr: "127.0.0.1:0", noRead: true}
	r.start()
	defer r.stop()
	e := newSyslogLogs(t, config.Sink{Type: "syslog", Network: "tcp", Address: r.addr, QueueSize: 1000}, 200*time.Millisecond)
	const n = 100000
	done := make(chan time.Duration)
	go func() {
		start := time.Now()
		logSeq(e.lg, 1, n)
		done <- time.Since(start)
	}()
	select {
	case d := <-done:
		t.Logf("%d events logged in %v (%v each) against a receiver that never reads", n, d, d/n)
	case <-time.After(60 * time.Second):
		t.Fatal("logging blocked on a receiver that does not read")
	}
	e.lg.Close()
	got := droppedIn(t, jsonLines(t, e.stdout.String()))
	if got["queue_full"]+got["shutdown"] == 0 {
		t.Errorf("no events_dropped on the local sink: %v", got)
	}
}

func TestSyslogSinkTLS(t *testing.T) {
	pki := newTestPKI(t)
	serverConf := &tls.Config{Certificates: []tls.Certificate{pki.server}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pki.pool}
	tests := []struct {
		name      string
		sink      config.Sink
		delivered bool
		stderr    string
	}{
		{"client certificate and server name", config.Sink{CAFile: pki.caFile, CertFile: pki.clientCert, KeyFile: pki.clientKey, ServerName: "syslog.test"}, true, ""},
		{"address IP in the certificate", config.Sink{CAFile: pki.caFile, CertFile: pki.clientCert, KeyFile: pki.clientKey}, true, ""},
		{"wrong server name", config.Sink{CAFile: pki.caFile, CertFile: pki.clientCert, KeyFile: pki.clientKey, ServerName: "other.test"}, false, "certificate is valid for syslog.test, not other.test"},
		{"unknown CA", config.Sink{CertFile: pki.clientCert, KeyFile: pki.clientKey, ServerName: "syslog.test"}, false, "certificate signed by unknown authority"},
		{"no client certificate", config.Sink{CAFile: pki.caFile, ServerName: "syslog.test"}, false, "certificate required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newReceiver(t, serverConf)
			sk := tc.sink
			sk.Type, sk.Network, sk.Address, sk.Format = "syslog", "tls", r.addr, "cef"
			e := newSyslogLogs(t, sk, 300*time.Millisecond)
			logSeq(e.lg, 1, 20)
			if tc.delivered {
				waitFor(t, "20 events over TLS", 10*time.Second, func() bool { return len(r.messages()) == 20 })
			} else {
				time.Sleep(200 * time.Millisecond)
			}
			e.lg.Close()
			msgs := r.messages()
			if tc.delivered != (len(msgs) == 20) {
				t.Errorf("%d events delivered", len(msgs))
			}
			for i, m := range msgs {
				h, ext, err := parseCEF(m.msg)
				if err != nil || h[4] != "ok" || ext["externalId"] != fmt.Sprint(i+1) {
					t.Errorf("message %d: %q %v %v", i, m.msg, h, err)
				}
			}
			if tc.stderr != "" && !strings.Contains(e.stderr.String(), tc.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.stderr, e.stderr.String())
			}
			if n := strings.Count(e.stderr.String(), "\n"); !tc.delivered && n > 4 {
				t.Errorf("a failing handshake printed %d lines, want its error once:\n%s", n, e.stderr.String())
			}
		})
	}
}

func TestSyslogSinkUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	e := newSyslogLogs(t, config.Sink{Type: "syslog", Network: "udp", Address: pc.LocalAddr().String(), Format: "ecs", Facility: "local3", AppName: "tap-test"}, time.Second)
	logSeq(e.lg, 1, 20)
	var got []syslogMsg
	buf := make([]byte, 70000)
	pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for len(got) < 20 {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("after %d datagrams: %v", len(got), err)
		}
		m, err := parseSyslog(string(buf[:n]))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
	}
	e.lg.Close()
	for i, m := range got {
		d := map[string]any{}
		if err := json.Unmarshal([]byte(m.msg), &d); err != nil {
			t.Fatal(err)
		}
		// local3 (19) × 8 + info (6)
		if m.pri != 158 || m.app != "tap-test" || d["event.sequence"] != float64(i+1) {
			t.Errorf("datagram %d: pri %d app %s seq %v", i, m.pri, m.app, d["event.sequence"])
		}
	}
}

// TestNoSinksAsBefore: without sinks, log.stdout and log.file write the
// JSON format through one core, as before sinks existed.
func TestNoSinksAsBefore(t *testing.T) {
	out := &syncBuffer{}
	file := filepath.Join(t.TempDir(), "events.json")
	lg, err := New(Options{Stdout: true, StdoutW: out, File: file, MaxSizeMB: 1, Meta: testMeta})
	if err != nil {
		t.Fatal(err)
	}
	lg.Events.Warn("exchange", seq(7)...)
	if err := lg.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]string{"stdout": out.String(), "file": string(b)} {
		docs := jsonLines(t, got)
		if len(docs) != 1 || docs[0]["msg"] != "exchange" || docs[0]["id"] != float64(7) || docs[0]["level"] != "warn" {
			t.Errorf("%s: %s", name, got)
		}
	}
}

// TestSinksEachFormatAndLevel: sinks of every local type, each in its own
// format and level, next to log.stdout.
func TestSinksEachFormatAndLevel(t *testing.T) {
	out := &syncBuffer{}
	dir := t.TempDir()
	lg, err := New(Options{
		Level: "info", Format: "json", Stdout: true, StdoutW: out, MaxSizeMB: 1, Meta: testMeta,
		Sinks: []config.Sink{
			{Type: "file", Path: filepath.Join(dir, "all.ecs"), Format: "ecs", Level: "debug"},
			{Type: "file", Path: filepath.Join(dir, "warn.cef"), Format: "cef", Level: "warn"},
			{Type: "file", Path: filepath.Join(dir, "default.json")},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	lg.Events.Debug("exchange", seq(1)...)
	lg.Events.Info("exchange", seq(2)...)
	lg.Events.Warn("exchange", seq(3)...)
	if err := lg.Close(); err != nil {
		t.Fatal(err)
	}
	read := func(name string) []string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Split(strings.TrimSpace(string(b)), "\n")
	}
	if l := read("all.ecs"); len(l) != 3 || !strings.Contains(l[0], `"event.sequence":1`) {
		t.Errorf("all.ecs: %q", l)
	}
	if l := read("warn.cef"); len(l) != 1 || !strings.HasPrefix(l[0], "CEF:0|") || !strings.Contains(l[0], "externalId=3") {
		t.Errorf("warn.cef: %q", l)
	}
	if l := read("default.json"); len(l) != 2 || !strings.Contains(l[0], `"id":2`) {
		t.Errorf("default.json: %q", l)
	}
	if docs := jsonLines(t, out.String()); len(docs) != 2 {
		t.Errorf("stdout: %s", out)
	}
}

func TestNewRejects(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"format", Options{Format: "xml", Stdout: true}, `logs: format "xml": want json, ecs, cef`},
		{"sink level", Options{Sinks: []config.Sink{{Type: "stdout", Level: "loud"}}}, `logs: log.sinks[0]: logs: level "loud": want debug, info, warn or error`},
		{"ca file", Options{Sinks: []config.Sink{{Type: "syslog", Network: "tls", Address: "127.0.0.1:6514", CAFile: filepath.Join(dir, "missing.pem")}}}, "missing.pem: no such file or directory"},
		{"ca file not PEM", Options{Sinks: []config.Sink{{Type: "syslog", Network: "tls", Address: "127.0.0.1:6514", CAFile: filepath.Join(dir, "ca.pem")}}}, "ca.pem: no PEM certificate in it"},
		{"file path", Options{Sinks: []config.Sink{{Type: "file", Path: filepath.Join(dir, "ca.pem", "x")}}}, "not a directory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v, want %s", err, tc.want)
			}
		})
	}
}

// TestWithFieldsReachEveryFormat: fields added with With are part of every
// record, in every format, and do not leak between loggers.
func TestWithFieldsReachEveryFormat(t *testing.T) {
	for _, f := range []string{"ecs", "cef"} {
		enc, _ := NewEncoder(f, testMeta)
		enc.AddString("session", "s1")
		child := enc.Clone()
		child.AddString("extra", "x")
		ent := zapcore.Entry{Level: zapcore.InfoLevel, Time: fixedTime, Message: "stop"}
		b1, _ := enc.EncodeEntry(ent, nil)
		b2, _ := child.EncodeEntry(ent, nil)
		if !strings.Contains(b1.String(), "s1") || strings.Contains(b1.String(), "extra") || !strings.Contains(b2.String(), "s1") || !strings.Contains(b2.String(), "x") {
			t.Errorf("%s: %s / %s", f, b1, b2)
		}
	}
}
