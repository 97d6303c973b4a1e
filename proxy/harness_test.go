package proxy_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/m365tap/m365tap/internal/testnet"
	"github.com/m365tap/m365tap/logs"
	"github.com/m365tap/m365tap/proxy"
	"github.com/m365tap/m365tap/rules"
)

// eventLog is the tap's JSON event stream, as a SIEM would read it.
type eventLog struct{ testnet.Lines }

// events returns the decoded "exchange" records written so far.
func (l *eventLog) events(t testing.TB) []map[string]any {
	t.Helper()
	return testnet.JSONRecords(t, l.Lines.Lines(), "exchange")
}

type harness struct {
	t      testing.TB
	srv    *proxy.Server
	addr   string
	log    *eventLog
	rules  *atomic.Pointer[rules.Set]
	closed bool
}

// newHarness starts the tap on loopback with the real embedded rules. The
// options' Rules (and Log, unless given) are filled in.
func newHarness(t testing.TB, opts proxy.Options) *harness {
	t.Helper()
	return newHarnessOn(t, nil, opts)
}

// newHarnessOn is newHarness serving on ln (nil: a new 127.0.0.1 listener).
func newHarnessOn(t testing.TB, ln net.Listener, opts proxy.Options) *harness {
	t.Helper()
	cat, err := rules.EmbeddedCatalogue()
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.Compile(cat, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, log: &eventLog{}, rules: new(atomic.Pointer[rules.Set])}
	h.rules.Store(set)
	opts.Rules = h.rules
	if len(opts.DNSServers) == 0 {
		// Never the system resolver: a name a test forgot to map fails
		// here, on loopback, instead of leaving the machine.
		opts.DNSServers = []string{testnet.Closed(t)}
	}
	if opts.Log == nil {
		opts.Log = zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(logs.EncoderConfig()), h.log, zapcore.DebugLevel))
	}
	h.srv = proxy.New(opts)
	if ln == nil {
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	h.addr = ln.Addr().String()
	done := make(chan struct{})
	go func() { _ = h.srv.Serve(ln); close(done) }()
	t.Cleanup(func() {
		h.shutdown(time.Second)
		<-done
	})
	return h
}

func (h *harness) shutdown(grace time.Duration) {
	if h.closed {
		return
	}
	h.closed = true
	h.srv.Shutdown(grace)
}

// client is a real net/http client that uses the tap as its proxy.
func (h *harness) client() *http.Client {
	u := &url.URL{Scheme: "http", Host: h.addr}
	tr := &http.Transport{Proxy: http.ProxyURL(u), DisableKeepAlives: true}
	h.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// waitEvents waits until n events were written and returns them; it fails
// if more than n arrive within a short settle time.
func (h *harness) waitEvents(n int) []map[string]any {
	h.t.Helper()
	testnet.WaitFor(h.t, func() bool { return len(h.log.events(h.t)) >= n }, 10*time.Second)
	time.Sleep(50 * time.Millisecond)
	ev := h.log.events(h.t)
	if len(ev) != n {
		h.t.Fatalf("want exactly %d events, got %d: %v", n, len(ev), ev)
	}
	return ev
}

// rawConnect opens a CONNECT tunnel by hand and returns the connection and
// the proxy's answer.
func rawConnect(t testing.TB, proxyAddr, target string, extra []byte) (net.Conn, *http.Response, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	req := "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n\r\n"
	if _, err := c.Write(append([]byte(req), extra...)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Time{})
	return c, resp, br
}

func hostsFor(addr string, names ...string) map[string]netip.Addr {
	ap := netip.MustParseAddrPort(addr)
	m := map[string]netip.Addr{}
	for _, n := range names {
		m[n] = ap.Addr()
	}
	return m
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// want checks selected fields of an event; numbers compare as float64.
func want(t testing.TB, ev map[string]any, fields map[string]any) {
	t.Helper()
	for k, v := range fields {
		got, ok := ev[k]
		switch v := v.(type) {
		case int:
			if !ok || got != float64(v) {
				t.Errorf("%s = %v, want %v (event %v)", k, got, v, ev)
			}
		case nil:
			if ok {
				t.Errorf("%s = %v, want absent (event %v)", k, got, ev)
			}
		default:
			if !ok || got != v {
				t.Errorf("%s = %v, want %v (event %v)", k, got, v, ev)
			}
		}
	}
}

// listen443 listens on port 443 of a random 127/8 address, so Microsoft host
// names can be mapped to it with hosts overrides and still match rules that
// list only ports 80 and 443. Binding 443 needs root (CI runs as root).
func listen443(t testing.TB) net.Listener { return testnet.ListenWellKnown(t, 443) }

// tlsOrigin443 is a TLS origin on port 443 presenting a leaf for names.
func tlsOrigin443(t testing.TB, ca *testnet.CA, h http.Handler, maxVersion uint16, names ...string) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = listen443(t)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Leaf(t, names...)}, MaxVersion: maxVersion, NextProtos: []string{"http/1.1"}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// hostsDial is a dial function for test parents that maps names like the
// tap's hosts overrides do.
func hostsDial(m map[string]netip.Addr) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, p, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if ip, ok := m[host]; ok {
			addr = net.JoinHostPort(ip.String(), p)
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
}

func newOptionsWithHosts(addr string, names ...string) proxy.Options {
	return proxy.Options{Hosts: hostsFor(addr, names...)}
}
