package logs

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// receiver is a syslog receiver on loopback for the sink tests: it reads
// octet-counted RFC 5424 messages over TCP (or TLS) and keeps them. It can
// be stopped and started again on the same address, as a daemon restarts.
type receiver struct {
	t       testing.TB
	addr    string
	tlsConf *tls.Config
	noRead  bool // accept connections and never read them

	mu         sync.Mutex
	msgs       []syslogMsg
	errs       []error
	ln         net.Listener
	conns      map[net.Conn]bool
	wg         sync.WaitGroup
	acceptDone chan struct{}
}

func newReceiver(t testing.TB, tlsConf *tls.Config) *receiver {
	t.Helper()
	r := &receiver{t: t, addr: "127.0.0.1:0", tlsConf: tlsConf}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *receiver) start() {
	r.t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the old port may linger a moment after stop
		if ln, err = net.Listen("tcp", r.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		r.t.Fatalf("receiver: %v", err)
	}
	if r.tlsConf != nil {
		ln = tls.NewListener(ln, r.tlsConf)
	}
	r.mu.Lock()
	r.ln, r.addr, r.conns = ln, ln.Addr().String(), map[net.Conn]bool{}
	r.acceptDone = make(chan struct{})
	r.mu.Unlock()
	go func(done chan struct{}) {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.mu.Lock()
			r.conns[c] = true
			r.mu.Unlock()
			r.wg.Add(1)
			go r.serve(c)
		}
	}(r.acceptDone)
}

func (r *receiver) serve(c net.Conn) {
	defer r.wg.Done()
	if r.noRead {
		return
	}
	br := bufio.NewReader(c)
	for {
		n, err := br.ReadString(' ')
		if err != nil {
			return
		}
		size, err := strconv.Atoi(strings.TrimSuffix(n, " "))
		if err != nil || size <= 0 {
			r.fail(errors.New("bad frame length " + strconv.Quote(n)))
			return
		}
		b := make([]byte, size)
		if _, err := io.ReadFull(br, b); err != nil {
			return // the connection ended inside a frame: the sender sends it again
		}
		m, err := parseSyslog(string(b))
		if err != nil {
			r.fail(err)
			return
		}
		r.mu.Lock()
		r.msgs = append(r.msgs, m)
		r.mu.Unlock()
	}
}

func (r *receiver) fail(err error) {
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
}

// stop closes the listener, then every connection, as a daemon that
// exits. The listener goes first: a sink reconnects at once, and a
// connection accepted after the others were closed would be left open.
func (r *receiver) stop() {
	r.mu.Lock()
	ln, done := r.ln, r.acceptDone
	r.ln = nil
	r.mu.Unlock()
	if ln == nil {
		return
	}
	ln.Close()
	<-done
	r.mu.Lock()
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

func (r *receiver) messages() []syslogMsg {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errs) > 0 {
		r.t.Errorf("receiver: %v", r.errs)
		r.errs = nil
	}
	return append([]syslogMsg(nil), r.msgs...)
}

// waitFor polls until cond holds; it fails the test after timeout.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// syncBuffer is a goroutine-safe bytes.Buffer for stdout and stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// jsonLines decodes the newline-delimited JSON records in s.
func jsonLines(t testing.TB, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(s), "\n") {
		if line == "" {
			continue
		}
		m := map[string]any{}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%v in %q", err, line)
		}
		out = append(out, m)
	}
	return out
}

// droppedIn sums the dropped counts of the events_dropped records among
// JSON payloads, by reason.
func droppedIn(t testing.TB, docs []map[string]any) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, d := range docs {
		if d["msg"] == "events_dropped" || d["message"] == "events_dropped" {
			n, _ := d["dropped"].(float64)
			if n == 0 {
				n, _ = d["m365tap.dropped"].(float64)
			}
			r, _ := d["reason"].(string)
			if r == "" {
				r, _ = d["m365tap.reason"].(string)
			}
			out[r] += int(n)
		}
	}
	return out
}

// seq is an exchange-like record numbered n, the shape the outage tests
// count by.
func seq(n int) []zapcore.Field {
	return []zapcore.Field{zap.Inline(rec{
		{"id", uint64(n)}, {"client", "127.0.0.1:40000"}, {"method", "CONNECT"}, {"host", "login.microsoftonline.com"},
		{"port", 443}, {"route", "direct"}, {"outcome", "ok"}, {"class", "ok"}, {"status", 200},
		{"bytes_up", int64(n)}, {"bytes_down", int64(2 * n)}, {"duration_ms", 1.5},
	})}
}

// testPKI writes a CA, a server certificate for 127.0.0.1 and the name
// syslog.test, and a client certificate, as PEM files in dir.
type testPKI struct {
	caFile, serverCert, serverKey, clientCert, clientKey string
	pool                                                 *x509.CertPool
	server                                               tls.Certificate
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "m365tap test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p := &testPKI{pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	write := func(name string, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	p.caFile = write("ca.pem", "CERTIFICATE", caDER)
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, certName, keyName string) (string, string, tls.Certificate) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			DNSNames: []string{cn}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		cf, kf := write(certName, "CERTIFICATE", der), write(keyName, "PRIVATE KEY", kder)
		c, err := tls.LoadX509KeyPair(cf, kf)
		if err != nil {
			t.Fatal(err)
		}
		return cf, kf, c
	}
	p.serverCert, p.serverKey, p.server = leaf(2, "syslog.test", x509.ExtKeyUsageServerAuth, "server.pem", "server-key.pem")
	p.clientCert, p.clientKey, _ = leaf(3, "pc-042.test", x509.ExtKeyUsageClientAuth, "client.pem", "client-key.pem")
	return p
}
