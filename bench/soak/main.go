// Command soak runs the m365tap binary for a bounded time under moderate
// load with faults mixed in, then checks that every exchange it sent left
// exactly one event and that the tap's descriptors and goroutines returned
// to their baseline. bench/soak.sh builds the binaries and runs it.
//
// Everything stays on 127.0.0.1: the driver starts its own origins (plain
// HTTP, TLS, one that resets), a port where nothing listens, and a DNS
// server that the tap uses (--dns-server), then starts the tap itself. Each
// exchange is its own client connection with a unique User-Agent, so every
// event can be matched to the request that caused it.
//
// Goroutines are counted without touching the product: the tap runs with
// GODEBUG=schedtrace=1000,scheddetail=1, which makes the Go runtime print
// every goroutine's state to standard error every second; the count is the
// goroutines not dead in a complete listing, the runtime's own included.
package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "", "m365tap binary to run (required)")
	flag.DurationVar(&o.duration, "duration", 5*time.Minute, "how long to send load")
	flag.IntVar(&o.rate, "rate", 100, "exchanges started per second, at most")
	flag.IntVar(&o.workers, "workers", 16, "concurrent clients")
	flag.DurationVar(&o.settle, "settle", 5*time.Minute, "after the load, how long to wait at most for descriptors and goroutines to return to baseline")
	flag.StringVar(&o.dir, "dir", "", "work directory for the tap's event file (default: a temporary one)")
	flag.Parse()
	if o.bin == "" {
		fmt.Fprintln(os.Stderr, "soak: -bin is required")
		os.Exit(2)
	}
	ok, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

type options struct {
	bin      string
	duration time.Duration
	rate     int
	workers  int
	settle   time.Duration
	dir      string
}

// Bounds the check allows between the idle tap before and after the load.
const (
	fdSlack        = 2
	goroutineSlack = 5
	// exchangeTimeout bounds every client exchange, so a stuck tap shows
	// as client errors instead of a stuck soak.
	exchangeTimeout = 15 * time.Second
	// tapIdle is the tap's timeouts.idle: pooled upstream connections are
	// closed after it, so the end sample can reach the baseline.
	tapIdle = 5 * time.Second
	// schedTrace is how often the tap's runtime lists its goroutines.
	schedTrace = time.Second
)

func run(o options) (bool, error) {
	if o.dir == "" {
		d, err := os.MkdirTemp("", "m365tap-soak-")
		if err != nil {
			return false, err
		}
		defer os.RemoveAll(d)
		o.dir = d
	}
	fx, err := startFixtures()
	if err != nil {
		return false, err
	}
	defer fx.close()

	tap, err := startTap(o, fx)
	if err != nil {
		return false, err
	}
	defer tap.kill()
	fmt.Printf("m365tap soak: %v of load, at most %d exchanges/s from %d clients; tap pid %d on %s\n",
		o.duration, o.rate, o.workers, tap.cmd.Process.Pid, tap.addr)

	// The idle tap's baseline, once its start-up goroutines have settled.
	time.Sleep(3 * time.Second)
	start := tap.sample()

	d := &driver{tap: tap.addr, fx: fx, kinds: kinds(), sent: map[string]string{}, perKind: map[string]*kindStats{}}
	for _, k := range d.kinds {
		d.perKind[k.name] = &kindStats{outcomes: map[string]int{}, clientErrs: map[string]int{}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.duration)
	defer cancel()
	var middle sample
	midDone := make(chan struct{})
	go func() {
		defer close(midDone)
		select {
		case <-time.After(o.duration / 2):
			middle = tap.sample()
		case <-ctx.Done():
		}
	}()
	began := time.Now()
	d.load(ctx, o)
	loadTime := time.Since(began)
	<-midDone

	// Back to baseline: wait for pooled connections to time out.
	loadEnd := time.Now()
	end := tap.sample()
	for time.Since(loadEnd) < o.settle {
		if end.fds <= start.fds+fdSlack && end.goroutines >= 0 && end.goroutines <= start.goroutines+goroutineSlack {
			break
		}
		time.Sleep(time.Second)
		end = tap.sample()
	}
	settled := time.Since(loadEnd).Round(time.Second)

	stopErr := tap.stop()
	ev, err := readEvents(o.dir)
	if err != nil {
		return false, err
	}
	return d.report(o, loadTime, ev, start, middle, end, settled, stopErr), nil
}

// ---- fixtures -------------------------------------------------------------

type fixtures struct {
	origin, tlsOrigin, reset, closed, dns string
	roots                                 *x509.CertPool
	closers                               []io.Closer
	wg                                    sync.WaitGroup
}

func (f *fixtures) close() {
	for _, c := range f.closers {
		c.Close()
	}
	f.wg.Wait()
}

func startFixtures() (*fixtures, error) {
	f := &fixtures{}
	listen := func() (net.Listener, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err == nil {
			f.closers = append(f.closers, ln)
		}
		return ln, err
	}

	// Plain origin: a small answer, a long one, and an upload sink.
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "soak ok\n") })
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		// Up to 16 MiB, until the tap gives up on it.
		w.Header().Set("Content-Length", strconv.Itoa(16<<20))
		chunk := make([]byte, 64<<10)
		for i := 0; i < 256; i++ {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%d\n", n)
	})
	ln, err := listen()
	if err != nil {
		return nil, err
	}
	f.origin = ln.Addr().String()
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 10 * time.Second}
	f.closers = append(f.closers, srv)
	go srv.Serve(ln)

	// TLS origin with a certificate made here, which only the driver trusts.
	cert, roots, err := selfSigned()
	if err != nil {
		return nil, err
	}
	f.roots = roots
	ln, err = listen()
	if err != nil {
		return nil, err
	}
	f.tlsOrigin = ln.Addr().String()
	// Tunnels the clients abort end the origin's handshakes early: quiet.
	tsrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 10 * time.Second,
		ErrorLog:  log.New(io.Discard, "", 0),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}}
	f.closers = append(f.closers, tsrv)
	go tsrv.ServeTLS(ln, "", "")

	// Resetting origin: reads the first flight, then aborts with a RST.
	ln, err = listen()
	if err != nil {
		return nil, err
	}
	f.reset = ln.Addr().String()
	f.wg.Add(1)
	go func(ln net.Listener) {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				c.Read(make([]byte, 4096))
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			}()
		}
	}(ln)

	// A port where nothing listens, held as the local end of an idle
	// loopback connection so no listener can take it.
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	hold, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return nil, err
	}
	peer, err := ln.Accept()
	ln.Close()
	if err != nil {
		return nil, err
	}
	f.closers = append(f.closers, hold, peer)
	f.closed = hold.LocalAddr().String()

	f.dns, err = f.startDNS()
	return f, err
}

func selfSigned() (tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "m365tap soak origin"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(48 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool, nil
}

// dnsName resolves to 127.0.0.1; every other name is NXDOMAIN.
const dnsName = "origin.soak.test."

// startDNS serves UDP and TCP on one loopback port.
func (f *fixtures) startDNS() (string, error) {
	var (
		udp net.PacketConn
		tcp net.Listener
		err error
	)
	for i := 0; i < 10; i++ {
		udp, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		tcp, err = net.Listen("tcp", udp.LocalAddr().String())
		if err == nil {
			break
		}
		udp.Close()
	}
	if err != nil {
		return "", err
	}
	f.closers = append(f.closers, udp, tcp)
	f.wg.Add(2)
	go func() {
		defer f.wg.Done()
		buf := make([]byte, 1500)
		for {
			n, from, err := udp.ReadFrom(buf)
			if err != nil {
				return
			}
			if out := dnsAnswer(buf[:n]); out != nil {
				udp.WriteTo(out, from)
			}
		}
	}()
	go func() {
		defer f.wg.Done()
		for {
			c, err := tcp.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				var l [2]byte
				for {
					if _, err := io.ReadFull(c, l[:]); err != nil {
						return
					}
					q := make([]byte, binary.BigEndian.Uint16(l[:]))
					if _, err := io.ReadFull(c, q); err != nil {
						return
					}
					out := dnsAnswer(q)
					if out == nil {
						return
					}
					c.Write(binary.BigEndian.AppendUint16(nil, uint16(len(out))))
					c.Write(out)
				}
			}()
		}
	}()
	return udp.LocalAddr().String(), nil
}

func dnsAnswer(query []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired}
	known := strings.EqualFold(q.Name.String(), dnsName)
	if !known {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	b.StartQuestions()
	b.Question(q)
	b.StartAnswers()
	if known && q.Type == dnsmessage.TypeA {
		b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 5},
			dnsmessage.AResource{A: [4]byte{127, 0, 0, 1}})
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}

// ---- the tap process --------------------------------------------------------

type tapProc struct {
	cmd     *exec.Cmd
	addr    string
	exited  chan struct{}
	waitErr error

	mu         sync.Mutex
	cond       *sync.Cond
	listings   int   // scheduler listings completed
	goroutines int64 // in the latest complete listing; -1 before the first
}

func startTap(o options, fx *fixtures) (*tapProc, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	ports := []string{"443"}
	for _, a := range []string{fx.tlsOrigin, fx.reset} {
		ports = append(ports, strconv.Itoa(int(netip.MustParseAddrPort(a).Port())))
	}
	cmd := exec.Command(o.bin, "--listen", addr, "--dns-server", fx.dns)
	cmd.Env = append(os.Environ(),
		"GODEBUG=schedtrace="+strconv.Itoa(int(schedTrace.Milliseconds()))+",scheddetail=1",
		"M365TAP_LOG_STDOUT=false",
		"M365TAP_LOG_FILE="+filepath.Join(o.dir, "events.json"),
		"M365TAP_LOG_MAX_SIZE_MB=100000",
		"M365TAP_LOG_COMPRESS=false",
		"M365TAP_ACCESS_PORTS="+strings.Join(ports, ","),
		"M365TAP_TIMEOUTS_IDLE="+tapIdle.String(),
		"M365TAP_SHUTDOWN_GRACE=5s",
		// A rule file or updated catalogue of the user running the soak
		// has no business here.
		"M365TAP_RULES_CATALOGUE="+filepath.Join(o.dir, "no-catalogue.json"),
	)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	t := &tapProc{cmd: cmd, addr: addr, exited: make(chan struct{}), goroutines: -1}
	t.cond = sync.NewCond(&t.mu)
	listening := make(chan struct{})
	var once sync.Once
	go t.readStderr(stderr, func() { once.Do(func() { close(listening) }) })
	go func() { t.waitErr = cmd.Wait(); close(t.exited) }()
	select {
	case <-listening:
	case <-t.exited:
		return nil, fmt.Errorf("tap exited at start: %v", t.waitErr)
	case <-time.After(30 * time.Second):
		t.kill()
		return nil, errors.New("tap did not start listening within 30s")
	}
	return t, nil
}

var gLine = regexp.MustCompile(`^\s+G\d+: status=(\d+)`)

// readStderr passes the tap's own lines through and counts goroutines in
// each scheduler listing (status 6 is a dead goroutine kept for reuse).
func (t *tapProc) readStderr(r io.Reader, listening func()) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	count, inListing := int64(0), false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "SCHED "):
			// A listing ends where the next begins.
			if inListing {
				t.mu.Lock()
				t.goroutines, t.listings = count, t.listings+1
				t.mu.Unlock()
				t.cond.Broadcast()
			}
			count, inListing = 0, true
		case gLine.MatchString(line):
			if m := gLine.FindStringSubmatch(line); m[1] != "6" {
				count++
			}
		case strings.HasPrefix(line, "  P") || strings.HasPrefix(line, "  M"):
		default:
			if strings.Contains(line, "listening on") {
				listening()
			}
			fmt.Fprintln(os.Stderr, "tap:", line)
		}
	}
}

type sample struct {
	fds, threads int
	rssKiB       int64
	goroutines   int64
	pipes        int            // of fds: Go's splice pipe pool, and stdout and stderr
	sockets      []string       // the tap's TCP sockets other than listeners
	fdKinds      map[string]int // descriptors by what they point to
}

// goroutineCount waits for a scheduler listing that began after the call
// (at most two trace periods) and returns its count.
func (t *tapProc) goroutineCount() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	want := t.listings + 2
	timeout := time.AfterFunc(3*schedTrace, func() { t.cond.Broadcast() })
	defer timeout.Stop()
	deadline := time.Now().Add(3 * schedTrace)
	for t.listings < want && time.Now().Before(deadline) {
		t.cond.Wait()
	}
	if t.listings < want {
		return -1
	}
	return t.goroutines
}

func (t *tapProc) sample() sample {
	pid := t.cmd.Process.Pid
	s := sample{fds: -1, threads: -1, rssKiB: -1, goroutines: t.goroutineCount()}
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		s.fds = len(ents)
		s.sockets = tcpSockets(pid, ents)
		s.fdKinds = map[string]int{}
		for _, e := range ents {
			l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
			switch {
			case strings.HasPrefix(l, "socket:"):
				l = "socket"
			case strings.HasPrefix(l, "pipe:"):
				s.pipes++
			}
			s.fdKinds[l]++
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, ":")
			f := strings.Fields(v)
			if len(f) == 0 {
				continue
			}
			n, _ := strconv.ParseInt(f[0], 10, 64)
			switch k {
			case "VmRSS":
				s.rssKiB = n
			case "Threads":
				s.threads = int(n)
			}
		}
	}
	return s
}

// tcpSockets names the TCP connections among a process's descriptors, from
// /proc/net/tcp: local and remote address and the kernel's state number.
func tcpSockets(pid int, fds []os.DirEntry) []string {
	inodes := map[string]bool{}
	for _, e := range fds {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var out []string
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || !inodes[f[9]] || f[3] == "0A" { // 0A: LISTEN
				continue
			}
			out = append(out, hexAddr(f[1])+" -> "+hexAddr(f[2])+" state "+f[3])
		}
	}
	sort.Strings(out)
	return out
}

// hexAddr renders /proc/net/tcp's IPv4 "0100007F:1F90" as 127.0.0.1:8080.
func hexAddr(s string) string {
	ip, p, ok := strings.Cut(s, ":")
	port, err := strconv.ParseUint(p, 16, 16)
	if !ok || err != nil || len(ip) != 8 {
		return s
	}
	v, err := strconv.ParseUint(ip, 16, 32)
	if err != nil {
		return s
	}
	return fmt.Sprintf("%d.%d.%d.%d:%d", byte(v), byte(v>>8), byte(v>>16), byte(v>>24), port)
}

// stop sends SIGTERM and waits for the tap to log every exchange and exit.
func (t *tapProc) stop() error {
	t.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-t.exited:
		return t.waitErr
	case <-time.After(30 * time.Second):
		t.kill()
		return errors.New("tap did not exit within 30s of SIGTERM")
	}
}

func (t *tapProc) kill() {
	select {
	case <-t.exited:
	default:
		t.cmd.Process.Kill()
		<-t.exited
	}
}

// ---- load -----------------------------------------------------------------

// kind is one sort of exchange in the mix: how often, what the event must
// say, and how the client behaves.
type kind struct {
	name    string
	weight  int
	outcome string
	run     func(d *driver, k *kind) error
}

type kindStats struct {
	sent, events int
	outcomes     map[string]int
	clientErrs   map[string]int
}

type driver struct {
	tap   string
	fx    *fixtures
	kinds []*kind
	seq   atomic.Int64

	mu      sync.Mutex
	sent    map[string]string // User-Agent -> kind
	perKind map[string]*kindStats
}

func kinds() []*kind {
	return []*kind{
		{name: "plain_ok", weight: 25, outcome: "ok", run: func(d *driver, k *kind) error {
			return d.plainGet(k, "http://"+d.fx.origin+"/ok", 200)
		}},
		{name: "plain_ok_dns", weight: 10, outcome: "ok", run: func(d *driver, k *kind) error {
			return d.plainGet(k, "http://"+strings.TrimSuffix(dnsName, ".")+":"+port(d.fx.origin)+"/ok", 200)
		}},
		{name: "plain_keepalive", weight: 10, outcome: "ok", run: (*driver).keepAlive},
		{name: "plain_refused", weight: 10, outcome: "connect_refused", run: func(d *driver, k *kind) error {
			return d.plainGet(k, "http://"+d.fx.closed+"/", 502)
		}},
		{name: "plain_nxdomain", weight: 10, outcome: "dns_nxdomain", run: func(d *driver, k *kind) error {
			return d.plainGet(k, "http://nx-"+strconv.FormatInt(d.seq.Add(1), 10)+".soak.test/", 502)
		}},
		{name: "connect_ok", weight: 15, outcome: "ok", run: (*driver).connectTLS},
		{name: "connect_reset", weight: 5, outcome: "connection_reset", run: (*driver).connectReset},
		{name: "abort_download", weight: 5, outcome: "client_aborted", run: (*driver).abortDownload},
		{name: "abort_upload", weight: 5, outcome: "client_aborted", run: (*driver).abortUpload},
		{name: "abort_tunnel", weight: 5, outcome: "client_aborted", run: (*driver).abortTunnel},
	}
}

func port(addr string) string { return strconv.Itoa(int(netip.MustParseAddrPort(addr).Port())) }

func (d *driver) load(ctx context.Context, o options) {
	total := 0
	for _, k := range d.kinds {
		total += k.weight
	}
	tokens := make(chan struct{}, o.workers)
	go func() {
		tick := time.NewTicker(time.Second / time.Duration(o.rate))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				close(tokens)
				return
			case <-tick.C:
				select {
				case tokens <- struct{}{}:
				default: // every client busy: the rate is a ceiling
				}
			}
		}
	}()
	var wg sync.WaitGroup
	for w := 0; w < o.workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range tokens {
				n := mrand.IntN(total)
				for _, k := range d.kinds {
					if n < k.weight {
						if err := k.run(d, k); err != nil {
							d.clientErr(k, err)
						}
						break
					}
					n -= k.weight
				}
			}
		}()
	}
	wg.Wait()
}

// ua names one exchange; the tap logs it as user_agent.
func (d *driver) ua(k *kind) string {
	return "m365tap-soak/" + k.name + "/" + strconv.FormatInt(d.seq.Add(1), 10)
}

// wrote records an exchange whose request reached the tap.
func (d *driver) wrote(k *kind, ua string) {
	d.mu.Lock()
	d.sent[ua] = k.name
	d.perKind[k.name].sent++
	d.mu.Unlock()
}

func (d *driver) clientErr(k *kind, err error) {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 && strings.Contains(msg, "127.0.0.1") {
		msg = msg[i+2:] // addresses differ on every line
	}
	d.mu.Lock()
	d.perKind[k.name].clientErrs[msg]++
	d.mu.Unlock()
}

func (d *driver) dial() (*net.TCPConn, error) {
	c, err := net.DialTimeout("tcp", d.tap, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(exchangeTimeout))
	return c.(*net.TCPConn), nil
}

// send writes a request; the exchange counts as sent once it is written.
func (d *driver) send(c net.Conn, k *kind, ua, req string) error {
	if _, err := io.WriteString(c, req); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	d.wrote(k, ua)
	return nil
}

func getReq(target, ua string, close bool) string {
	host := strings.TrimPrefix(target, "http://")
	host, _, _ = strings.Cut(host, "/")
	r := "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: " + ua + "\r\n"
	if close {
		r += "Connection: close\r\n"
	}
	return r + "\r\n"
}

func wantStatus(resp *http.Response, status int) error {
	if resp.StatusCode != status {
		return fmt.Errorf("status %d, want %d", resp.StatusCode, status)
	}
	return nil
}

func (d *driver) plainGet(k *kind, target string, status int) error {
	c, err := d.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	ua := d.ua(k)
	if err := d.send(c, k, ua, getReq(target, ua, true)); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	return wantStatus(resp, status)
}

// keepAlive sends two requests on one connection: two exchanges.
func (d *driver) keepAlive(k *kind) error {
	c, err := d.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for i := 0; i < 2; i++ {
		ua := d.ua(k)
		if err := d.send(c, k, ua, getReq("http://"+d.fx.origin+"/ok", ua, i == 1)); err != nil {
			return err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err := wantStatus(resp, 200); err != nil {
			return err
		}
	}
	return nil
}

// connect opens a tunnel and returns the connection with the reader that
// took the tap's answer.
func (d *driver) connect(k *kind, target string) (*net.TCPConn, *bufio.Reader, error) {
	c, err := d.dial()
	if err != nil {
		return nil, nil, err
	}
	ua := d.ua(k)
	req := "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\nUser-Agent: " + ua + "\r\n\r\n"
	if err := d.send(c, k, ua, req); err != nil {
		c.Close()
		return nil, nil, err
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err == nil {
		err = wantStatus(resp, 200)
	}
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, br, nil
}

type readerConn struct {
	*net.TCPConn
	r io.Reader
}

func (c readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// connectTLS is what Office does: a tunnel, a TLS handshake, one request.
func (d *driver) connectTLS(k *kind) error {
	c, br, err := d.connect(k, d.fx.tlsOrigin)
	if err != nil {
		return err
	}
	defer c.Close()
	tc := tls.Client(readerConn{c, br}, &tls.Config{RootCAs: d.fx.roots, ServerName: "127.0.0.1"})
	if err := tc.Handshake(); err != nil {
		return err
	}
	io.WriteString(tc, "GET /ok HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	io.Copy(io.Discard, tc) // until the origin closes
	return wantStatus(resp, 200)
}

func (d *driver) connectReset(k *kind) error {
	c, br, err := d.connect(k, d.fx.reset)
	if err != nil {
		return err
	}
	defer c.Close()
	io.WriteString(c, "hello\r\n\r\n")
	io.Copy(io.Discard, br) // ends with the reset passed on
	return nil
}

// abortDownload reads the start of a long answer and leaves with a reset.
func (d *driver) abortDownload(k *kind) error {
	c, err := d.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	ua := d.ua(k)
	if err := d.send(c, k, ua, getReq("http://"+d.fx.origin+"/stream", ua, true)); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	_, err = io.ReadFull(resp.Body, make([]byte, 32<<10))
	c.SetLinger(0)
	return err
}

// abortUpload announces a 1 MiB body, sends 16 KiB and leaves with a reset.
func (d *driver) abortUpload(k *kind) error {
	c, err := d.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	ua := d.ua(k)
	req := "POST http://" + d.fx.origin + "/upload HTTP/1.1\r\nHost: " + d.fx.origin + "\r\nUser-Agent: " + ua +
		"\r\nContent-Length: 1048576\r\n\r\n" + string(make([]byte, 16<<10))
	if err := d.send(c, k, ua, req); err != nil {
		return err
	}
	c.SetLinger(0)
	return nil
}

// abortTunnel opens a tunnel and closes it without sending a byte.
func (d *driver) abortTunnel(k *kind) error {
	c, _, err := d.connect(k, d.fx.tlsOrigin)
	if err != nil {
		return err
	}
	return c.Close()
}

// ---- events and the report --------------------------------------------------

type events struct {
	exchanges int
	other     map[string]int              // records that are not exchanges, by msg
	byUA      map[string][]map[string]any // exchange events by user_agent
	ids       map[float64]int
}

func readEvents(dir string) (*events, error) {
	files, err := filepath.Glob(filepath.Join(dir, "events*.json"))
	if err != nil {
		return nil, err
	}
	ev := &events{other: map[string]int{}, byUA: map[string][]map[string]any{}, ids: map[float64]int{}}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				fh.Close()
				return nil, fmt.Errorf("%s: not JSON: %v: %s", f, err, sc.Bytes())
			}
			if m["msg"] != "exchange" {
				ev.other[fmt.Sprint(m["msg"])]++
				continue
			}
			ev.exchanges++
			ua, _ := m["user_agent"].(string)
			ev.byUA[ua] = append(ev.byUA[ua], m)
			if id, ok := m["id"].(float64); ok {
				ev.ids[id]++
			}
		}
		fh.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	return ev, nil
}

func (d *driver) report(o options, loadTime time.Duration, ev *events, start, middle, end sample, settled time.Duration, stopErr error) bool {
	ok := true
	fail := func(format string, a ...any) {
		ok = false
		fmt.Printf("FAIL: "+format+"\n", a...)
	}
	sent := len(d.sent)
	var missing, dup, unmatched, wrongOutcome int
	for ua, kname := range d.sent {
		got := ev.byUA[ua]
		st := d.perKind[kname]
		st.events += len(got)
		switch {
		case len(got) == 0:
			missing++
		case len(got) > 1:
			dup++
		}
		for _, e := range got {
			oc := fmt.Sprint(e["outcome"])
			st.outcomes[oc]++
		}
	}
	for ua, list := range ev.byUA {
		if _, ok := d.sent[ua]; !ok {
			unmatched += len(list)
		}
	}
	dupIDs := 0
	for _, n := range ev.ids {
		if n > 1 {
			dupIDs++
		}
	}

	fmt.Printf("\nload: %v, %d exchanges sent (%.1f/s)\n", loadTime.Round(time.Millisecond), sent, float64(sent)/loadTime.Seconds())
	fmt.Printf("requests sent:   %d\n", sent)
	fmt.Printf("events written:  %d\n", ev.exchanges)
	fmt.Printf("difference:      %d\n", ev.exchanges-sent)
	fmt.Printf("(requests without an event: %d, with more than one: %d, events matching no request: %d, ids logged twice: %d)\n",
		missing, dup, unmatched, dupIDs)
	if len(ev.other) > 0 {
		keys := make([]string, 0, len(ev.other))
		for k := range ev.other {
			keys = append(keys, k+"="+strconv.Itoa(ev.other[k]))
		}
		sort.Strings(keys)
		fmt.Printf("other records:   %s\n", strings.Join(keys, " "))
	}

	fmt.Printf("\n%-16s %7s %7s  %-18s %s\n", "kind", "sent", "events", "expected outcome", "outcomes seen (client errors)")
	for _, k := range d.kinds {
		st := d.perKind[k.name]
		var parts []string
		for oc, n := range st.outcomes {
			parts = append(parts, oc+"="+strconv.Itoa(n))
			if oc != k.outcome {
				wrongOutcome += n
			}
		}
		sort.Strings(parts)
		for msg, n := range st.clientErrs {
			parts = append(parts, fmt.Sprintf("(%q x%d)", msg, n))
		}
		fmt.Printf("%-16s %7d %7d  %-18s %s\n", k.name, st.sent, st.events, k.outcome, strings.Join(parts, " "))
	}

	fmt.Printf("\n%-12s %10s %10s %10s\n", "tap", "start", "middle", "end")
	row := func(name string, f func(sample) string) {
		fmt.Printf("%-12s %10s %10s %10s\n", name, f(start), f(middle), f(end))
	}
	row("fds", func(s sample) string { return strconv.Itoa(s.fds) })
	row("  pipes", func(s sample) string { return strconv.Itoa(s.pipes) })
	row("goroutines", func(s sample) string { return strconv.FormatInt(s.goroutines, 10) })
	row("threads", func(s sample) string { return strconv.Itoa(s.threads) })
	row("rss MiB", func(s sample) string { return fmt.Sprintf("%.1f", float64(s.rssKiB)/1024) })
	fmt.Printf("(end sampled %v after the load stopped; goroutines from GODEBUG scheddetail, the runtime's own included)\n", settled)

	if sent == 0 {
		fail("no exchange was sent")
	}
	if ev.exchanges != sent || missing > 0 || dup > 0 || unmatched > 0 {
		fail("events do not match requests one to one")
	}
	if dupIDs > 0 {
		fail("%d event ids logged more than once", dupIDs)
	}
	// Pipes are judged apart: a tunnel's splice(2) borrows a pipe pair from
	// a pool in Go's internal/poll, which keeps it until two garbage
	// collections have passed, and an idle process collects only every
	// 2 minutes. They are bounded by the tunnels that ran at once.
	if end.fds-end.pipes > start.fds-start.pipes+fdSlack {
		fail("open fds other than pipes did not return to baseline: %d at start, %d at end",
			start.fds-start.pipes, end.fds-end.pipes)
		for _, l := range end.sockets {
			fmt.Println("  open at end:", l)
		}
		for k, n := range end.fdKinds {
			if n != start.fdKinds[k] {
				fmt.Printf("  %s: %d at start, %d at end\n", k, start.fdKinds[k], n)
			}
		}
	}
	if extra := end.pipes - start.pipes; extra > 2*o.workers {
		fail("%d more pipe fds at end than at start: more than %d clients' tunnels could leave pooled", extra, o.workers)
	} else if extra > 0 {
		fmt.Printf("note: %d pipe fds (%d pairs) more than at start: Go's pool of splice pipes, freed after two garbage collections\n"+
			"      (an idle process collects every 2 minutes; a longer -settle waits for them)\n", extra, extra/2)
	}
	if start.goroutines < 0 || end.goroutines < 0 {
		fail("no goroutine count from the tap's scheduler trace")
	} else if end.goroutines > start.goroutines+goroutineSlack {
		fail("goroutines did not return to baseline: %d at start, %d at end", start.goroutines, end.goroutines)
	}
	if stopErr != nil {
		fail("tap stop: %v", stopErr)
	}
	if wrongOutcome > 0 {
		fmt.Printf("note: %d events had an outcome other than their kind's expected one (listed above)\n", wrongOutcome)
	}
	fmt.Println("note: RSS is reported, not judged: the Go runtime keeps freed heap for reuse and returns it to the OS gradually")
	if ok {
		fmt.Println("soak: PASS")
	} else {
		fmt.Println("soak: FAIL")
	}
	return ok
}
