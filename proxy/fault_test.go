package proxy_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/m365tap/m365tap/internal/testnet"
	"github.com/m365tap/m365tap/proxy"
)

// seen is what a client saw of one exchange.
type seen struct {
	status int    // status line received from the tap; 0: none
	header string // its X-M365tap-Outcome
	auth   string // its Proxy-Authenticate
	data   []byte // plain: response body; CONNECT: bytes read through the tunnel
	err    error  // how reading data ended; nil: a clean end
}

// faultSide is one cell of the fault matrix: how the client provokes the
// fault through the tap, and what the client and the event must show.
type faultSide struct {
	opts    func(*proxy.Options) // on top of the matrix's base options; nil: none
	do      func(t *testing.T, tap string) seen
	status  int    // client's status; 0: the client got no status line
	header  string // X-M365tap-Outcome; "": the answer was passed through or there was none
	outcome string
	class   string
	errHas  string                                        // substring of the event's error; "": any
	check   func(t *testing.T, s seen, ev map[string]any) // extra checks; nil: none
}

// faultTimeout is the bound a fault must run into. Every other timeout
// stays at a generous value, so a loaded machine cannot turn a fault that
// must not time out into one that does.
const faultTimeout = 300 * time.Millisecond

// TestFaultMatrix runs every fault of issue 6 through the tap, for plain
// HTTP and for CONNECT, each against a tap of its own, and checks what the
// client saw, the event's outcome and class, and that the exchange wrote
// exactly one event: one arrived, and none more after the tap shut down.
func TestFaultMatrix(t *testing.T) {
	dns := testnet.NewDNS(t)
	dns.SetRcode("nx.test", dnsmessage.RCodeNameError)
	dns.SetRcode("servfail.test", dnsmessage.RCodeServerFailure)
	dns.SetDrop("slow.test")

	origin := testnet.NewHTTPOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/upload":
			n, err := io.Copy(io.Discard, r.Body)
			if err != nil {
				return
			}
			io.WriteString(w, strconv.FormatInt(n, 10))
		case "/stream":
			// A long body that stalls after its first 64 KiB, until the
			// tap gives up on it.
			w.Header().Set("Content-Length", "10000000")
			w.Write(make([]byte, 64<<10))
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		case "/later":
			// Answers after a pause, by which time a client that
			// half-closed has long reached the tap's EOF.
			select {
			case <-time.After(300 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
			io.WriteString(w, "hello")
		default:
			io.WriteString(w, "hello")
		}
	}))
	originAddr := origin.Listener.Addr().String()
	ca := testnet.NewCA(t)
	tlsOrigin := testnet.NewTLSOrigin(t, ca, okHandler(), testnet.TLSOptions{MaxVersion: tls.VersionTLS12})
	tlsAddr := tlsOrigin.Listener.Addr().String()
	closed := testnet.Closed(t)
	resetEarly := testnet.Reset(t, testnet.ResetAfterRequest)
	resetMid := testnet.Reset(t, testnet.ResetMidResponse)
	silent := testnet.Silent(t)
	blackhole := testnet.Blackhole(t)
	echo := testnet.Echo(t)
	sink := testnet.Sink(t)
	parent407 := testnet.NewParent(t, testnet.ParentOptions{Mode: testnet.ParentAuth407, User: "u", Pass: "p"})
	parent403 := testnet.NewParent(t, testnet.ParentOptions{Mode: testnet.ParentDeny403})
	parentSlow := testnet.NewParent(t, testnet.ParentOptions{Mode: testnet.ParentSlow})

	base := proxy.Options{
		DNSServers:            []string{dns.Addr()},
		DNSTimeout:            10 * time.Second,
		ConnectTimeout:        10 * time.Second,
		ResponseHeaderTimeout: 10 * time.Second,
		TunnelLinger:          10 * time.Second,
		AllowPorts:            []int{443},
	}
	viaParent := func(p string) func(*proxy.Options) {
		return func(o *proxy.Options) { o.Parent = faultURL(t, "http://"+p) }
	}
	shortDNS := func(o *proxy.Options) { o.DNSTimeout = faultTimeout }
	shortHeader := func(o *proxy.Options) { o.ResponseHeaderTimeout = faultTimeout }
	get := func(u string) func(*testing.T, string) seen {
		return func(t *testing.T, tap string) seen { return faultPlain(t, tap, faultGet(u), nil) }
	}
	connect := func(target string, tunnel func(*testing.T, *net.TCPConn, *bufio.Reader) seen) func(*testing.T, string) seen {
		return func(t *testing.T, tap string) seen { return faultConnect(t, tap, target, tunnel) }
	}
	tunnelDown := func(t *testing.T, c *net.TCPConn, br *bufio.Reader) seen {
		// An HTTP request inside the tunnel, then read until the end.
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		return faultReadAll(c, br)
	}
	// tlsHandshake runs a TLS client in the tunnel, trusting only the
	// system's roots (never a test CA), and gives up after wait.
	tlsHandshake := func(name string, maxVersion uint16, wait time.Duration) func(*testing.T, *net.TCPConn, *bufio.Reader) seen {
		return func(t *testing.T, c *net.TCPConn, br *bufio.Reader) seen {
			tc := tls.Client(faultBufConn{c, br}, &tls.Config{ServerName: name, MaxVersion: maxVersion})
			tc.SetDeadline(time.Now().Add(wait))
			err := tc.Handshake()
			c.Close()
			return seen{err: err}
		}
	}
	shortLinger := func(o *proxy.Options) { o.TunnelLinger = faultTimeout }

	faults := []struct {
		fault   string
		plain   faultSide
		connect faultSide
	}{
		{
			fault: "dns nxdomain",
			plain: faultSide{do: get("http://nx.test/"), status: 502, header: "dns_nxdomain",
				outcome: "dns_nxdomain", class: "failed"},
			connect: faultSide{do: connect("nx.test:443", nil), status: 502, header: "dns_nxdomain",
				outcome: "dns_nxdomain", class: "failed"},
		},
		{
			fault: "dns servfail",
			plain: faultSide{do: get("http://servfail.test/"), status: 502, header: "dns_failure",
				outcome: "dns_failure", class: "failed"},
			connect: faultSide{do: connect("servfail.test:443", nil), status: 502, header: "dns_failure",
				outcome: "dns_failure", class: "failed"},
		},
		{
			fault: "dns timeout",
			plain: faultSide{opts: shortDNS, do: get("http://slow.test/"), status: 504, header: "dns_timeout",
				outcome: "dns_timeout", class: "failed"},
			connect: faultSide{opts: shortDNS, do: connect("slow.test:443", nil), status: 504, header: "dns_timeout",
				outcome: "dns_timeout", class: "failed"},
		},
		{
			fault: "connect refused",
			plain: faultSide{do: get("http://" + closed + "/"), status: 502, header: "connect_refused",
				outcome: "connect_refused", class: "failed", errHas: "refused"},
			connect: faultSide{do: connect(closed, nil), status: 502, header: "connect_refused",
				outcome: "connect_refused", class: "failed", errHas: "refused"},
		},
		{
			// The origin reads the request and resets before answering.
			fault: "reset before response",
			plain: faultSide{do: get("http://" + resetEarly.Addr() + "/"), status: 502, header: "connection_reset",
				outcome: "connection_reset", class: "failed"},
			// The tunnel had its 200; the reset closes it with nothing carried back.
			connect: faultSide{do: connect(resetEarly.Addr(), tunnelDown), status: 200,
				outcome: "connection_reset", class: "failed",
				check: func(t *testing.T, s seen, ev map[string]any) {
					if len(s.data) != 0 {
						t.Errorf("client read %d bytes through the tunnel, want none", len(s.data))
					}
				}},
		},
		{
			// The origin sends a 200 head and part of the body, then resets.
			fault: "reset after response started",
			plain: faultSide{do: get("http://" + resetMid.Addr() + "/"), status: 200,
				outcome: "connection_reset", class: "failed",
				check: func(t *testing.T, s seen, ev map[string]any) {
					want(t, ev, map[string]any{"upstream_status": 200})
					if s.err == nil || len(s.data) >= 100000 {
						t.Errorf("client read %d bytes and %v, want a truncated body", len(s.data), s.err)
					}
				}},
			connect: faultSide{do: connect(resetMid.Addr(), tunnelDown), status: 200,
				outcome: "connection_reset", class: "failed",
				check: func(t *testing.T, s seen, ev map[string]any) {
					if !strings.HasPrefix(string(s.data), "HTTP/1.1 200 OK") {
						t.Errorf("client did not get the start of the answer: %q", faultHead(s.data))
					}
				}},
		},
		{
			// Plain: an https:// URL, for which the tap makes its own TLS
			// connection and verifies the origin's certificate (from a
			// test CA it does not trust).
			fault: "tls failure",
			plain: faultSide{do: get("https://" + tlsAddr + "/"), status: 502, header: "tls_failure",
				outcome: "tls_failure", class: "failed", errHas: "certificate"},
			// CONNECT: the client rejects the origin's certificate; in TLS
			// 1.2 its alert is plaintext, which the tap reads on the way.
			connect: faultSide{do: connect(tlsAddr, tlsHandshake("127.0.0.1", tls.VersionTLS12, 10*time.Second)),
				status: 200, outcome: "tls_failure", class: "failed",
				check: func(t *testing.T, s seen, ev map[string]any) {
					if s.err == nil {
						t.Error("client accepted a certificate from an unknown CA")
					}
					want(t, ev, map[string]any{"tls_alert": "bad_certificate", "tls_version": "1.2"})
				}},
		},
		{
			// The parent's 407 reaches the client as the parent sent it,
			// for plain HTTP and CONNECT alike; its event is written when
			// the client gives up (closes) without a next leg.
			fault: "parent 407",
			plain: faultSide{opts: viaParent(parent407.Addr()), do: get("http://origin.test/"), status: 407,
				outcome: "parent_auth_required", class: "failed", check: faultChallenge},
			connect: faultSide{opts: viaParent(parent407.Addr()), do: connect("origin.test:443", nil), status: 407,
				outcome: "parent_auth_required", class: "failed", check: faultChallenge},
		},
		{
			// A parent's refusal is http_error, never the tap's own denied.
			fault: "parent 403",
			plain: faultSide{opts: viaParent(parent403.Addr()), do: get("http://origin.test/"), status: 403,
				outcome: "http_error", class: "failed"},
			connect: faultSide{opts: viaParent(parent403.Addr()), do: connect("origin.test:443", nil), status: 403,
				outcome: "http_error", class: "failed"},
		},
		{
			fault: "parent down",
			plain: faultSide{opts: viaParent(closed), do: get("http://origin.test/"), status: 502,
				header: "parent_unreachable", outcome: "parent_unreachable", class: "failed"},
			connect: faultSide{opts: viaParent(closed), do: connect("origin.test:443", nil), status: 502,
				header: "parent_unreachable", outcome: "parent_unreachable", class: "failed"},
		},
		{
			// The parent takes the request and never answers within
			// timeouts.response_header.
			fault: "parent slow",
			plain: faultSide{opts: faultChain(viaParent(parentSlow.Addr()), shortHeader), do: get("http://origin.test/"),
				status: 504, header: "response_timeout", outcome: "response_timeout", class: "failed"},
			connect: faultSide{opts: faultChain(viaParent(parentSlow.Addr()), shortHeader), do: connect("origin.test:443", nil),
				status: 504, header: "response_timeout", outcome: "response_timeout", class: "failed"},
		},
		{
			fault: "origin slow",
			plain: faultSide{opts: shortHeader, do: get("http://" + silent.Addr() + "/"), status: 504,
				header: "response_timeout", outcome: "response_timeout", class: "failed"},
			// A tunnel has no response to time: timeouts.response_header
			// does not apply inside it. What the fault looks like there is a
			// TLS client that gives up waiting for the ServerHello; the
			// tap then lingers (timeouts.tunnel_linger) for the upstream's
			// side and ends the tunnel as a failed handshake.
			connect: faultSide{opts: shortLinger, do: connect(silent.Addr(), tlsHandshake("origin.test", 0, faultTimeout)),
				status: 200, outcome: "tls_failure", class: "failed", errHas: "no ServerHello",
				check: func(t *testing.T, s seen, ev map[string]any) {
					if !faultIsTimeout(s.err) {
						t.Errorf("client handshake ended with %v, want its own timeout", s.err)
					}
					want(t, ev, map[string]any{"tls_sni": "origin.test"})
				}},
		},
		{
			// The origin accepts the connection and never finishes the TLS
			// handshake (a firewall that drops after the SYN/ACK).
			fault: "origin stalls tls handshake",
			// Plain: the tap's own handshake with an https:// origin is
			// bounded by timeouts.response_header, as no head can come
			// before it.
			plain: faultSide{opts: shortHeader, do: get("https://" + blackhole.Addr() + "/"), status: 504,
				header: "response_timeout", outcome: "response_timeout", class: "failed", errHas: "TLS handshake timeout"},
			// CONNECT: the client's handshake, which the tap only watches.
			connect: faultSide{opts: shortLinger, do: connect(blackhole.Addr(), tlsHandshake("origin.test", 0, faultTimeout)),
				status: 200, outcome: "tls_failure", class: "failed", errHas: "no ServerHello"},
		},
		{
			// The client announces a body, sends part of it and aborts.
			fault: "client abort during upload",
			plain: faultSide{do: func(t *testing.T, tap string) seen {
				req := "POST http://" + originAddr + "/upload HTTP/1.1\r\nHost: " + originAddr +
					"\r\nContent-Length: 1000000\r\n\r\n" + string(make([]byte, 64<<10))
				return faultPlain(t, tap, req, func(c *net.TCPConn, _ *bufio.Reader) bool {
					faultAbort(c)
					return false
				})
			}, outcome: "client_aborted", class: "aborted"},
			// Inside a tunnel the tap cannot know a body was announced. A
			// client that resets before anything came back is a reset by
			// the client (tunnel rule 5); one that merely closes could
			// have finished, and would be ok.
			connect: faultSide{do: connect(sink.Addr(), func(t *testing.T, c *net.TCPConn, br *bufio.Reader) seen {
				c.Write(make([]byte, 64<<10))
				testnet.WaitFor(t, func() bool { return sink.Bytes() >= 64<<10 }, 10*time.Second)
				faultAbort(c)
				return seen{}
			}), status: 200, outcome: "connection_reset", class: "failed", errHas: "client reset the connection"},
		},
		{
			// The client reads the start of a long body and aborts.
			fault: "client abort during download",
			plain: faultSide{do: func(t *testing.T, tap string) seen {
				c := faultDial(t, tap)
				io.WriteString(c, faultGet("http://"+originAddr+"/stream"))
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					return seen{err: err}
				}
				n, err := io.ReadFull(resp.Body, make([]byte, 1000))
				faultAbort(c)
				return seen{status: resp.StatusCode, data: make([]byte, n), err: err}
			}, status: 200, outcome: "client_aborted", class: "aborted",
				check: func(t *testing.T, s seen, ev map[string]any) { want(t, ev, map[string]any{"upstream_status": 200}) }},
			// The client asked and got bytes back: from outside, that is
			// a completed exchange whose client reset with unread data
			// (tunnel rule 5), which is ok. The origin answers only once
			// it has the request, as a TLS server does: a server that
			// talks first could fill the client's buffers before the tap
			// forwarded a byte of the request.
			connect: faultSide{do: connect(originAddr, func(t *testing.T, c *net.TCPConn, br *bufio.Reader) seen {
				io.WriteString(c, faultGet("http://"+originAddr+"/stream"))
				n, err := io.ReadFull(br, make([]byte, 1000))
				faultAbort(c)
				return seen{data: make([]byte, n), err: err}
			}), status: 200, outcome: "ok", class: "ok",
				check: func(t *testing.T, s seen, ev map[string]any) {
					if s.err != nil {
						t.Errorf("client read %d bytes before aborting: %v", len(s.data), s.err)
					}
				}},
		},
		{
			// The client sends its request, shuts down its write side
			// and waits for the answer.
			fault: "client half-close",
			// net/http cancels the request when the client's side of the
			// connection reaches EOF, and a half-close cannot be told
			// from a client that left: both send a FIN. The tap keeps
			// the upstream request going after a clean EOF, as long as
			// the answer makes progress within timeouts.tunnel_linger
			// (proxy/halfclose.go), so a client still reading gets its
			// answer, as through a tunnel.
			plain: faultSide{do: func(t *testing.T, tap string) seen {
				return faultPlain(t, tap, faultGet("http://"+originAddr+"/later"), func(c *net.TCPConn, _ *bufio.Reader) bool {
					c.CloseWrite()
					return true
				})
			}, status: 200, outcome: "ok", class: "ok",
				check: func(t *testing.T, s seen, ev map[string]any) {
					if string(s.data) != "hello" || s.err != nil {
						t.Errorf("client got %q, %v, want hello", s.data, s.err)
					}
				}},
			// A tunnel carries the half-close through (CloseWrite to the
			// upstream) and the client still gets everything back.
			connect: faultSide{do: connect(echo.Addr(), func(t *testing.T, c *net.TCPConn, br *bufio.Reader) seen {
				c.Write(testnet.Pattern(50000))
				c.CloseWrite()
				return faultReadAll(c, br)
			}), status: 200, outcome: "ok", class: "ok",
				check: func(t *testing.T, s seen, ev map[string]any) {
					if len(s.data) != 50000 || s.err != nil {
						t.Errorf("client got %d bytes back, %v, want 50000 and EOF", len(s.data), s.err)
					}
					want(t, ev, map[string]any{"bytes_up": 50000, "bytes_down": 50000})
				}},
		},
	}

	for _, f := range faults {
		for _, mode := range []string{"plain", "connect"} {
			side := f.plain
			if mode == "connect" {
				side = f.connect
			}
			t.Run(strings.ReplaceAll(f.fault, " ", "_")+"/"+mode, func(t *testing.T) {
				opts := base
				opts.AllowPorts = append([]int{443}, faultPorts(closed, resetEarly.Addr(), resetMid.Addr(),
					tlsAddr, silent.Addr(), blackhole.Addr(), echo.Addr(), sink.Addr(), originAddr)...)
				if side.opts != nil {
					side.opts(&opts)
				}
				h := newHarness(t, opts)
				s := side.do(t, h.addr)

				if s.status != side.status {
					t.Errorf("client got status %d, want %d (%v)", s.status, side.status, s.err)
				}
				if s.header != side.header {
					t.Errorf("client got X-M365tap-Outcome %q, want %q", s.header, side.header)
				}
				// One event arrives; shutting the tap down then flushes
				// anything still in flight, which must add nothing.
				testnet.WaitFor(t, func() bool { return len(h.log.events(t)) >= 1 }, 15*time.Second)
				h.shutdown(2 * time.Second)
				evs := h.log.events(t)
				if len(evs) != 1 {
					t.Fatalf("want exactly 1 event, got %d: %v", len(evs), evs)
				}
				ev := evs[0]
				t.Logf("client saw %d %q; event %v", s.status, s.header, ev)
				method := map[string]string{"plain": "", "connect": "CONNECT"}[mode]
				want(t, ev, map[string]any{"msg": "exchange", "outcome": side.outcome, "class": side.class})
				if method != "" {
					want(t, ev, map[string]any{"method": method})
				}
				if side.status != 0 {
					want(t, ev, map[string]any{"status": side.status})
				}
				if e, _ := ev["error"].(string); side.outcome != "ok" && e == "" {
					t.Errorf("failure event has no error text: %v", ev)
				} else if !strings.Contains(e, side.errHas) {
					t.Errorf("error %q does not contain %q", e, side.errHas)
				}
				if side.check != nil {
					side.check(t, s, ev)
				}
			})
		}
	}
}

// faultPlain sends a raw request to the tap and reads its answer. after,
// when set, runs once the request is written; false means the client left
// and there is nothing more to read.
func faultPlain(t *testing.T, tap, req string, after func(*net.TCPConn, *bufio.Reader) bool) seen {
	t.Helper()
	return faultPlainConn(t, faultDial(t, tap), req, after)
}

func faultPlainConn(t *testing.T, c *net.TCPConn, req string, after func(*net.TCPConn, *bufio.Reader) bool) seen {
	t.Helper()
	br := bufio.NewReader(c)
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	var s seen
	if after != nil && !after(c, br) {
		return s
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		s.err = err
		return s
	}
	s.status, s.header, s.auth = resp.StatusCode, resp.Header.Get("X-M365tap-Outcome"), resp.Header.Get("Proxy-Authenticate")
	s.data, s.err = io.ReadAll(resp.Body)
	resp.Body.Close()
	return s
}

// faultConnect opens a CONNECT tunnel by hand. tunnel, when set and the
// tap answered 200, drives the tunnel and reports what came back.
func faultConnect(t *testing.T, tap, target string, tunnel func(*testing.T, *net.TCPConn, *bufio.Reader) seen) seen {
	t.Helper()
	c := faultDial(t, tap)
	if _, err := io.WriteString(c, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		return seen{err: err}
	}
	var s seen
	if resp.StatusCode == http.StatusOK && tunnel != nil {
		s = tunnel(t, c, br)
	} else if resp.StatusCode != http.StatusOK {
		s.data, s.err = io.ReadAll(resp.Body)
		c.Close() // a client that gives up
	}
	s.status, s.header, s.auth = resp.StatusCode, resp.Header.Get("X-M365tap-Outcome"), resp.Header.Get("Proxy-Authenticate")
	return s
}

func faultDial(t *testing.T, tap string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", tap)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// A bound for the whole exchange, so a tap that hangs fails the case
	// instead of the test binary.
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return c.(*net.TCPConn)
}

func faultGet(u string) string {
	host := strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://")
	host, _, _ = strings.Cut(host, "/")
	return "GET " + u + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n"
}

// faultReadAll reads a tunnel until it ends.
func faultReadAll(c *net.TCPConn, br *bufio.Reader) seen {
	data, err := io.ReadAll(br)
	return seen{data: data, err: err}
}

// faultAbort leaves with a TCP reset, as a client killed mid-transfer does.
func faultAbort(c *net.TCPConn) {
	c.SetLinger(0)
	c.Close()
}

// faultBufConn reads through the bufio.Reader that took the tap's answer, so no
// byte read behind the answer is lost.
type faultBufConn struct {
	*net.TCPConn
	br *bufio.Reader
}

func (c faultBufConn) Read(p []byte) (int, error) { return c.br.Read(p) }

func faultChallenge(t *testing.T, s seen, ev map[string]any) {
	t.Helper()
	if !strings.Contains(s.auth, testnet.ParentRealm) {
		t.Errorf("client got Proxy-Authenticate %q, want the parent's challenge", s.auth)
	}
	want(t, ev, map[string]any{"route": "parent", "upstream_status": 407})
}

func faultChain(fs ...func(*proxy.Options)) func(*proxy.Options) {
	return func(o *proxy.Options) {
		for _, f := range fs {
			f(o)
		}
	}
}

func faultPorts(addrs ...string) []int {
	out := make([]int, len(addrs))
	for i, a := range addrs {
		out[i] = int(netip.MustParseAddrPort(a).Port())
	}
	return out
}

func faultURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func faultIsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func faultHead(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
