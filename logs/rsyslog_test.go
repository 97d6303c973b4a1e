package logs

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/m365tap/m365tap/config"
)

// These tests ship to a real rsyslog (Debian's rsyslog and rsyslog-gnutls,
// which .ci/run installs): the test writes a configuration into a temporary
// directory, with imtcp on a loopback port (octet-counted framing is on by
// default), a second imtcp input with the gtls stream driver that demands
// a client certificate (RFC 5425), and imudp, all writing each message's
// raw text (%rawmsg%, the RFC 5424 message without its framing) as one line
// of a file; then it starts rsyslogd in the foreground as a child process.

// rsyslog is one rsyslogd the test runs.
type rsyslog struct {
	t                   testing.TB
	bin, dir, conf, out string
	tcp, tls, udp       string // host:port of each input
	relp                string // the imrelp input of newRELPRsyslog
	cmd                 *exec.Cmd
	waitExit            chan error
	stderr              *syncBuffer
}

// needRsyslog finds rsyslogd and its TLS driver. Without them the test is
// skipped, unless CI is set: CI installs them, so their absence is a
// failure there.
func needRsyslog(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("rsyslogd")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/rsyslogd"); serr == nil {
			bin, err = "/usr/sbin/rsyslogd", nil
		}
	}
	gtls, _ := filepath.Glob("/usr/lib/*/rsyslog/lmnsd_gtls.so")
	more, _ := filepath.Glob("/usr/lib/rsyslog/lmnsd_gtls.so")
	missing := ""
	switch {
	case err != nil:
		missing = "rsyslogd is not installed"
	case len(gtls)+len(more) == 0:
		missing = "rsyslog's TLS driver (lmnsd_gtls.so) is not installed"
	}
	if missing != "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s; .ci/run installs rsyslog and rsyslog-gnutls", missing)
		}
		t.Skipf("%s (apt-get install rsyslog rsyslog-gnutls); with CI set this fails instead", missing)
	}
	return bin
}

func freePort(t testing.TB, network string) string {
	t.Helper()
	if network == "udp" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		return pc.LocalAddr().String()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func newRsyslog(t testing.TB, pki *testPKI) *rsyslog {
	t.Helper()
	r := &rsyslog{t: t, bin: needRsyslog(t), dir: t.TempDir(), stderr: &syncBuffer{}}
	r.tcp, r.tls, r.udp = freePort(t, "tcp"), freePort(t, "tcp"), freePort(t, "udp")
	r.out = filepath.Join(r.dir, "received.log")
	port := func(a string) string { _, p, _ := net.SplitHostPort(a); return p }
	conf := fmt.Sprintf(`global(
  workDirectory="%[1]s"
  maxMessageSize="256k"
  defaultNetstreamDriverCAFile="%[2]s"
  defaultNetstreamDriverCertFile="%[3]s"
  defaultNetstreamDriverKeyFile="%[4]s"
)
module(load="imtcp")
module(load="imudp")
input(type="imtcp" address="127.0.0.1" port="%[5]s" ruleset="tap")
input(type="imtcp" address="127.0.0.1" port="%[6]s" ruleset="tap"
      streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="x509/certvalid")
input(type="imudp" address="127.0.0.1" port="%[7]s" ruleset="tap")
template(name="raw" type="string" string="%%rawmsg%%\n")
ruleset(name="tap") {
  action(type="omfile" file="%[8]s" template="raw")
}
`, r.dir, pki.caFile, pki.serverCert, pki.serverKey, port(r.tcp), port(r.tls), port(r.udp), r.out)
	r.conf = filepath.Join(r.dir, "rsyslog.conf")
	if err := os.WriteFile(r.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *rsyslog) start() {
	r.t.Helper()
	r.cmd = exec.Command(r.bin, "-n", "-f", r.conf, "-i", filepath.Join(r.dir, "rsyslogd.pid"))
	r.cmd.Stdout, r.cmd.Stderr = r.stderr, r.stderr
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("rsyslogd: %v", err)
	}
	exited := make(chan error, 1)
	go func(c *exec.Cmd) { exited <- c.Wait() }(r.cmd)
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", r.tcp, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			r.cmd = nil
			r.t.Fatalf("rsyslogd exited at start: %v\n%s", err, r.stderr)
		default:
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("rsyslogd did not listen on %s within 15s:\n%s", r.tcp, r.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.waitExit = exited
}

// stop ends rsyslogd with SIGTERM, as a service stop does, and waits.
func (r *rsyslog) stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.waitExit:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.waitExit
	}
	r.cmd = nil
}

// lines reads what rsyslog wrote so far, one RFC 5424 message a line.
func (r *rsyslog) lines() []syslogMsg {
	r.t.Helper()
	f, err := os.Open(r.out)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		r.t.Fatal(err)
	}
	defer f.Close()
	var out []syslogMsg
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m, err := parseSyslog(sc.Text())
		if err != nil {
			r.t.Fatalf("rsyslog wrote %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

type fixedClock struct{}

func (fixedClock) Now() time.Time                         { return fixedTime }
func (fixedClock) NewTicker(d time.Duration) *time.Ticker { return time.NewTicker(d) }

// TestRsyslogRoundTrip sends every record shape, the hostile ones and a
// few hundred exchanges over TCP and TLS in every format (and the shapes
// over UDP), reads rsyslog's file back and compares each message with
// what was sent, field by field: the RFC 5424 header, then the payload's
// fields (JSON keys, or the CEF header and extension).
func TestRsyslogRoundTrip(t *testing.T) {
	pki := newTestPKI(t)
	rs := newRsyslog(t, pki)

	var sinks []config.Sink
	for _, network := range []string{"tcp", "tls", "udp"} {
		for _, format := range Formats {
			sk := config.Sink{Type: "syslog", Network: network, Format: format, AppName: network + "-" + format, Facility: "local4"}
			switch network {
			case "tcp":
				sk.Address = rs.tcp
			case "udp":
				sk.Address = rs.udp
			case "tls":
				sk.Address, sk.CAFile, sk.CertFile, sk.KeyFile, sk.ServerName = rs.tls, pki.caFile, pki.clientCert, pki.clientKey, "syslog.test"
			}
			sinks = append(sinks, sk)
		}
	}
	stderr := &syncBuffer{}
	lg, err := New(Options{Level: "debug", Sinks: sinks, Meta: testMeta, Stderr: stderr, DrainTimeout: 10 * time.Second, tune: fast})
	if err != nil {
		t.Fatal(err)
	}
	events := lg.Events.WithOptions(zap.WithClock(fixedClock{}))

	var sent []record
	for _, h := range hostile {
		sent = append(sent, hostileRecord(h))
	}
	sent = append(sent, records...)
	const exchanges = 300
	for i := 1; i <= exchanges; i++ {
		sent = append(sent, record{fmt.Sprint("seq", i), zapcore.InfoLevel, "exchange", seq(i)[0].Interface.(rec)})
	}
	udpSent := 0
	for _, r := range sent {
		if ce := events.Check(r.level, r.msg); ce != nil {
			ce.Write(zap.Inline(r.r))
		}
		udpSent++
		if udpSent%50 == 0 {
			time.Sleep(5 * time.Millisecond) // UDP: give rsyslog time to read its socket
		}
	}
	waitFor(t, "every TCP and TLS message in rsyslog's file", 30*time.Second, func() bool {
		n := 0
		for _, m := range rs.lines() {
			if !strings.HasPrefix(m.app, "udp") {
				n++
			}
		}
		return n >= 6*len(sent)
	})
	if err := lg.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the last UDP datagrams

	byApp := map[string][]syslogMsg{}
	for _, m := range rs.lines() {
		byApp[m.app] = append(byApp[m.app], m)
	}
	for _, sk := range sinks {
		t.Run(sk.AppName, func(t *testing.T) {
			got := byApp[sk.AppName]
			if sk.Network == "udp" {
				// RFC 5426 has no acknowledgement: loss is possible and
				// unseen. On loopback nothing is expected to be lost.
				t.Logf("udp %s: %d of %d messages arrived", sk.Format, len(got), len(sent))
				if len(got) == 0 {
					t.Fatal("nothing arrived over UDP")
				}
			} else if len(got) != len(sent) {
				t.Fatalf("%d messages arrived, %d were sent", len(got), len(sent))
			}
			j := 0
			for _, m := range got {
				// UDP may have lost some: find the record this one is.
				for ; j < len(sent); j++ {
					want := sent[j]
					if err := compareMessage(m, want, sk); err == nil {
						break
					} else if sk.Network != "udp" {
						t.Fatalf("message %d (%s): %v\n got: %s", j, want.name, err, m.msg)
					}
				}
				if j == len(sent) {
					t.Fatalf("message %q matches nothing that was sent", m.msg)
				}
				j++
			}
		})
	}
	if strings.Contains(stderr.String(), "dropped") {
		t.Errorf("stderr: %s", stderr)
	}
}

// compareMessage compares one received message with the record that was
// sent, field by field.
func compareMessage(m syslogMsg, r record, sk config.Sink) error {
	pri := 20*8 + syslogSeverity(r.level) // local4
	if m.pri != pri || m.timestamp != "2026-11-24T16:12:36.379166Z" || m.hostname != "pc-042" ||
		m.app != sk.AppName || m.procid != fmt.Sprint(os.Getpid()) || m.msgid != r.msg || m.sd != "-" {
		return fmt.Errorf("header %+v, want pri %d msgid %s", m, pri, r.msg)
	}
	want := strings.TrimSuffix(encodeWith(sk.Format, r), "\n")
	if sk.Format == "cef" {
		gh, ge, err := parseCEF(m.msg)
		if err != nil {
			return err
		}
		wh, we, err := parseCEF(want)
		if err != nil {
			return err
		}
		if gh != wh {
			return fmt.Errorf("CEF header %q, want %q", gh, wh)
		}
		for k, v := range we {
			if ge[k] != v {
				return fmt.Errorf("CEF %s = %q, want %q", k, ge[k], v)
			}
		}
		if len(ge) != len(we) {
			return fmt.Errorf("CEF has %d keys, want %d", len(ge), len(we))
		}
		return nil
	}
	var got, exp map[string]any
	if err := json.Unmarshal([]byte(m.msg), &got); err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(want), &exp); err != nil {
		return err
	}
	for k, v := range exp {
		if !reflect.DeepEqual(got[k], v) {
			return fmt.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if len(got) != len(exp) {
		return fmt.Errorf("%d keys, want %d", len(got), len(exp))
	}
	return nil
}

func encodeWith(format string, r record) string {
	enc, _ := NewEncoder(format, testMeta)
	buf, _ := enc.EncodeEntry(zapcore.Entry{Level: r.level, Time: fixedTime, Message: r.msg}, []zapcore.Field{zap.Inline(r.r)})
	defer buf.Free()
	return buf.String()
}

// queued is how many records a sink holds, sent or not.
func queued(lg *Logs, i int) int {
	s := lg.shippers[i]
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// TestRsyslogOutage stops the daemon while events keep being logged and
// starts it again: every event up to the queue bound arrives after the
// recovery, and the events_dropped records count exactly the rest.
func TestRsyslogOutage(t *testing.T) {
	for _, network := range []string{"tcp", "tls"} {
		t.Run(network, func(t *testing.T) {
			pki := newTestPKI(t)
			rs := newRsyslog(t, pki)
			const queue, before, during = 200, 100, 300
			sk := config.Sink{Type: "syslog", Network: network, Address: rs.tcp, QueueSize: queue}
			if network == "tls" {
				sk.Address, sk.CAFile, sk.CertFile, sk.KeyFile = rs.tls, pki.caFile, pki.clientCert, pki.clientKey
			}
			e := newSyslogLogs(t, sk, 10*time.Second)
			logSeq(e.lg, 1, before)
			waitFor(t, "the first events", 20*time.Second, func() bool { return len(rs.lines()) == before && queued(e.lg, 0) == 0 })

			rs.stop()
			logSeq(e.lg, before+1, before+during) // queue of them are kept, the rest counted
			time.Sleep(300 * time.Millisecond)    // a few refused reconnections
			rs.start()

			const lost = during - queue
			waitFor(t, "recovery", 30*time.Second, func() bool {
				_, docs := payloadIDs(t, rs.lines())
				return droppedIn(t, docs)["queue_full"] == lost && len(docs) >= before+queue+1
			})
			if err := e.lg.Close(); err != nil {
				t.Fatal(err)
			}
			ids, docs := payloadIDs(t, rs.lines())
			sort.Ints(ids)
			if !equalInts(ids, span(1, before+queue)) {
				t.Errorf("received %d exchanges, %v...%v; want 1..%d each once", len(ids), ids[:min(5, len(ids))], ids[max(0, len(ids)-5):], before+queue)
			}
			if got := droppedIn(t, docs); got["queue_full"] != lost {
				t.Errorf("events_dropped at rsyslog: %v, want queue_full %d", got, lost)
			}
			if got := droppedIn(t, jsonLines(t, e.stdout.String())); got["queue_full"] != lost || got["shutdown"] != 0 {
				t.Errorf("events_dropped on the local sink: %v, want queue_full %d", got, lost)
			}
			t.Logf("sent %d, received %d, reported dropped %d\nstderr:\n%s", before+during, len(ids), lost, e.stderr)
		})
	}
}
