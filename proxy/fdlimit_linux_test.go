package proxy_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/m365tap/m365tap/internal/testnet"
	"github.com/m365tap/m365tap/logs"
	"github.com/m365tap/m365tap/proxy"
)

// exhaustFDs lowers the process's RLIMIT_NOFILE to a little above the
// descriptors open now and fills what is left with /dev/null, so that the
// next socket(2) or accept(2) of any goroutine fails with EMFILE. The limit
// is the whole process's: tests that call it must not run in parallel with
// others, and must call restore (also registered with t.Cleanup) before
// anything else needs a descriptor, t.Fatal included.
func exhaustFDs(t *testing.T) (restore func()) {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	open, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	low := old
	low.Cur = uint64(len(open) + 16)
	if low.Cur > old.Max {
		t.Skipf("hard RLIMIT_NOFILE %d is too low to lower", old.Max)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	var fill []int
	for len(fill) < 1<<16 {
		fd, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			break
		}
		fill = append(fill, fd)
	}
	done := false
	restore = func() {
		if done {
			return
		}
		done = true
		for _, fd := range fill {
			syscall.Close(fd)
		}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
			t.Errorf("restoring RLIMIT_NOFILE: %v", err)
		}
	}
	t.Cleanup(restore)
	if _, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0); err != syscall.EMFILE {
		restore()
		t.Fatalf("descriptors not exhausted: socket: %v", err)
	}
	return restore
}

// TestOutOfFileDescriptors: when the tap cannot get a socket for a lookup
// or a connection, the event says in plain words that the tap ran out of
// file descriptors, the client gets 503, and no article cause blames the
// endpoint, though login.microsoftonline.com is a required Common one.
func TestOutOfFileDescriptors(t *testing.T) {
	dns := testnet.NewDNS(t)
	dns.SetA("login.microsoftonline.com", netip.MustParseAddr("127.0.0.1"))
	mapped := map[string]netip.Addr{"login.microsoftonline.com": netip.MustParseAddr("127.0.0.1")}
	parent, _ := url.Parse("http://" + testnet.Closed(t))
	cases := []struct {
		name    string
		opts    proxy.Options
		request string
		outcome string
		errHas  string
	}{
		{"CONNECT dial", proxy.Options{Hosts: mapped},
			"CONNECT login.microsoftonline.com:443 HTTP/1.1\r\nHost: login.microsoftonline.com:443\r\n\r\n",
			"connect_unreachable", "m365tap: out of file descriptors dialing 127.0.0.1:443: the tap's own limit (EMFILE)"},
		{"plain dial", proxy.Options{Hosts: mapped},
			"GET http://login.microsoftonline.com/ HTTP/1.1\r\nHost: login.microsoftonline.com\r\n\r\n",
			"connect_unreachable", "m365tap: out of file descriptors dialing 127.0.0.1:80: the tap's own limit (EMFILE)"},
		{"CONNECT lookup", proxy.Options{DNSServers: []string{dns.Addr()}},
			"CONNECT login.microsoftonline.com:443 HTTP/1.1\r\nHost: login.microsoftonline.com:443\r\n\r\n",
			"dns_failure", "m365tap: out of file descriptors looking up login.microsoftonline.com: the tap's own limit (EMFILE)"},
		{"plain through the parent", proxy.Options{Hosts: mapped, Parent: parent},
			"GET http://login.microsoftonline.com/ HTTP/1.1\r\nHost: login.microsoftonline.com\r\n\r\n",
			"parent_unreachable", "m365tap: out of file descriptors dialing " + parent.Host},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			h := newHarness(t, tc.opts)
			n := openFDs(t)
			c, err := net.Dial("tcp", h.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// Both ends open, the client's and the one the tap accepted,
			// which takes microseconds; the count is only a hint, as an
			// earlier test's connections may still be closing.
			for deadline := time.Now().Add(time.Second); openFDs(t) < n+2 && time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(20 * time.Millisecond)

			restore := exhaustFDs(t)
			c.SetDeadline(time.Now().Add(10 * time.Second))
			_, werr := io.WriteString(c, tc.request)
			resp, rerr := http.ReadResponse(bufio.NewReader(c), nil)
			restore()
			if werr != nil || rerr != nil {
				t.Fatalf("write %v, read %v", werr, rerr)
			}
			resp.Body.Close()
			if resp.StatusCode != 503 || resp.Header.Get("X-M365tap-Outcome") != tc.outcome {
				t.Errorf("client got %d %q, want 503 %q", resp.StatusCode, resp.Header.Get("X-M365tap-Outcome"), tc.outcome)
			}
			ev := h.waitEvents(1)[0]
			want(t, ev, map[string]any{"outcome": tc.outcome, "status": 503, "rule_id": "56", "required": true,
				"cause_id": nil, "cause_title": nil, "dest_ip": nil})
			if e, _ := ev["error"].(string); !strings.Contains(e, tc.errHas) || !strings.Contains(e, "raise the limit") {
				t.Errorf("error %q, want it to contain %q and the remedy", e, tc.errHas)
			}
		})
	}
}

// countingListener counts Accept calls.
type countingListener struct {
	net.Listener
	calls atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	l.calls.Add(1)
	return l.Listener.Accept()
}

// TestAcceptOutOfFileDescriptors: a connection that arrives while the tap
// cannot accept (EMFILE) waits in the kernel's backlog; net/http's server
// retries with a growing pause (5 ms doubling to 1 s) rather than spinning,
// and once descriptors are free again the connection is served and logged
// once, like any other.
func TestAcceptOutOfFileDescriptors(t *testing.T) {
	origin := testnet.NewHTTPOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }))
	log := &eventLog{}
	srv := proxy.New(proxy.Options{Log: zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(logs.EncoderConfig()), log, zapcore.DebugLevel))})
	ln, lerr := net.Listen("tcp", "127.0.0.1:0")
	if lerr != nil {
		t.Fatal(lerr)
	}
	cl := &countingListener{Listener: ln}
	served := make(chan struct{})
	go func() { srv.Serve(cl); close(served) }()
	t.Cleanup(func() { srv.Shutdown(time.Second); <-served })
	// The client's socket exists before the limit bites; only the
	// connect happens after, so only the tap's accept(2) lacks a
	// descriptor.
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "client")
	defer f.Close()
	ap := netip.MustParseAddrPort(ln.Addr().String())
	before := cl.calls.Load()

	restore := exhaustFDs(t)
	if err := syscall.Connect(fd, &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}); err != nil {
		restore()
		t.Fatal(err)
	}
	const held = 600 * time.Millisecond
	time.Sleep(held)
	calls := cl.calls.Load() - before
	restore()
	// 5+10+20+40+80+160+320 ms: about 8 calls in 600 ms; a spinning
	// loop would make thousands.
	if calls < 2 || calls > 20 {
		t.Errorf("%d Accept calls in %v with descriptors exhausted, want a handful", calls, held)
	}

	req := "GET " + origin.URL + "/ HTTP/1.1\r\nHost: " + origin.Listener.Addr().String() + "\r\nConnection: close\r\n\r\n"
	if _, err := syscall.Write(fd, []byte(req)); err != nil {
		t.Fatal(err)
	}
	tv := syscall.NsecToTimeval((5 * time.Second).Nanoseconds())
	syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
	got, _ := io.ReadAll(f)
	if !strings.HasPrefix(string(got), "HTTP/1.1 200 ") || !strings.HasSuffix(string(got), "hello") {
		t.Fatalf("client got %q", got)
	}
	testnet.WaitFor(t, func() bool { return len(log.events(t)) > 0 }, 5*time.Second)
	srv.Shutdown(time.Second)
	if ev := log.events(t); len(ev) != 1 {
		t.Errorf("%d events, want 1: %v", len(ev), ev)
	} else {
		want(t, ev[0], map[string]any{"outcome": "ok", "status": 200})
	}
}
