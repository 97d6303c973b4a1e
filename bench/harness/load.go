package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// target is where the generator sends its load: a proxy, or the origin
// itself (proxy == nil: the floor).
type target struct {
	name  string
	proxy *proxyProc
}

func (t target) viaProxy() bool { return t.proxy != nil }

// sample is one measured run of one workload against one target.
type sample struct {
	ops      int64   // completed operations inside the window
	bytes    int64   // body/tunnel bytes inside the window
	secs     float64 // window length
	p50, p99 time.Duration
	errs     int64
	redials  int64 // connections the server closed (keep-alive refused)
	// CPU seconds inside the window.
	proxyCPU, originCPU, genCPU, machine float64
	load1                                float64
	// genPreempt: involuntary context switches of the generator inside
	// the window: how often the scheduler took the CPU from it.
	genPreempt int64
}

func (s sample) opsPerSec() float64 { return float64(s.ops) / s.secs }
func (s sample) mbPerSec() float64  { return float64(s.bytes) / s.secs / 1e6 }

// foreign is the CPU (in cores) used by processes other than the
// generator, the origin and the proxy: the other engineers' load.
func (s sample) foreign() float64 {
	f := (s.machine - s.proxyCPU - s.originCPU - s.genCPU) / s.secs
	return max(f, 0)
}

// window times one run: warm-up, then the measured part.
type window struct{ t0, t1 time.Time }

func newWindow(warm, dur time.Duration) window {
	t0 := time.Now().Add(warm)
	return window{t0, t0.Add(dur)}
}

func (w window) in(st, en time.Time) bool { return !st.Before(w.t0) && !en.After(w.t1) }

// ends: an operation counts in the window it ends in. Counting only those
// that also start inside it would drop the conc operations in flight at
// t0, which shortens a 0.7 s tunnel window by about 5 % of its tunnels and
// raises CPU per tunnel by as much.
func (w window) ends(en time.Time) bool { return !en.Before(w.t0) && !en.After(w.t1) }

// measureCPU samples CPU counters at t0 and t1 while the workers run, and
// returns a func that fills them in once the workers are done.
func measureCPU(w window, proxyPID, originPID int) func(*sample) {
	type snap struct {
		proxy, origin, gen, machine float64
		preempt                     int64
	}
	take := func() snap {
		// The harness's own tree holds the origin and the proxies: count
		// the generator alone.
		return snap{cpuSeconds(proxyPID, true), cpuSeconds(originPID, false), cpuSeconds(os.Getpid(), false), machineBusy(), selfPreempt()}
	}
	var a, b snap
	var l1 float64
	done := make(chan struct{})
	go func() {
		time.Sleep(time.Until(w.t0))
		a = take()
		l1 = load1()
		time.Sleep(time.Until(w.t1))
		b = take()
		close(done)
	}()
	return func(s *sample) {
		<-done
		s.proxyCPU, s.originCPU, s.genCPU, s.machine = b.proxy-a.proxy, b.origin-a.origin, b.gen-a.gen, b.machine-a.machine
		s.genPreempt = b.preempt - a.preempt
		s.load1 = l1
		s.secs = w.t1.Sub(w.t0).Seconds()
	}
}

func percentiles(lat [][]time.Duration) (p50, p99 time.Duration) {
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if len(all) == 0 {
		return 0, 0
	}
	slices.Sort(all)
	at := func(q float64) time.Duration { return all[min(len(all)-1, int(q*float64(len(all))))] }
	return at(0.50), at(0.99)
}

func (t target) dialProxyOr(origin string) (net.Conn, error) {
	addr := origin
	if t.proxy != nil {
		addr = t.proxy.addr
	}
	return net.DialTimeout("tcp", addr, 5*time.Second)
}

// runPlain: conc clients, each on its own keep-alive connection, GET path
// in a closed loop.
func runPlain(t target, o originInfo, originPID, conc int, path string, warm, dur time.Duration) sample {
	w := newWindow(warm, dur)
	fill := measureCPU(w, t.proxy.pidOrZero(), originPID)
	req := getRequest(t.viaProxy(), o.HTTP, path)
	lat := make([][]time.Duration, conc)
	var ops, errs, redials atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			buf := make([]byte, 32<<10)
			var c net.Conn
			var br *bufio.Reader
			defer func() {
				if c != nil {
					c.Close()
				}
			}()
			for time.Now().Before(w.t1) {
				st := time.Now()
				var r response
				var err error
				// A keep-alive connection the server closed after its last
				// answer (tinyproxy does, without saying so) fails the next
				// request before any byte comes back: retry it once on a new
				// connection, as browsers do, and count the redial.
				for attempt := 0; attempt < 2; attempt++ {
					fresh := c == nil
					if c == nil {
						if c, err = t.dialProxyOr(o.HTTP); err != nil {
							c = nil
							break
						}
						_ = c.SetDeadline(w.t1.Add(10 * time.Second))
						br = bufio.NewReaderSize(c, 16<<10)
					}
					if _, err = c.Write(req); err == nil {
						r, err = readResponse(br, false, buf, nil)
					}
					if err == nil {
						break
					}
					c.Close()
					c = nil
					if fresh || !retryable(err) {
						break
					}
					redials.Add(1)
				}
				en := time.Now()
				if err != nil || r.status != 200 {
					if w.ends(en) {
						errs.Add(1)
					}
					if c != nil {
						c.Close()
						c = nil
					}
					if err != nil {
						time.Sleep(time.Millisecond)
					}
					continue
				}
				if w.ends(en) {
					ops.Add(1)
					lat[i] = append(lat[i], en.Sub(st))
				}
				if r.close {
					redials.Add(1)
					c.Close()
					c = nil
				}
			}
		}(i)
	}
	wg.Wait()
	s := sample{ops: ops.Load(), errs: errs.Load(), redials: redials.Load()}
	s.p50, s.p99 = percentiles(lat)
	fill(&s)
	return s
}

// retryable: the server closed a reused connection before answering.
func retryable(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func (p *proxyProc) pidOrZero() int {
	if p == nil {
		return 0
	}
	return p.pid()
}

// runLarge: conc clients, each downloading path (a large body) again and
// again on a keep-alive connection; MB/s of body bytes inside the window.
func runLarge(t target, o originInfo, originPID, conc int, path string, warm, dur time.Duration) sample {
	w := newWindow(warm, dur)
	fill := measureCPU(w, t.proxy.pidOrZero(), originPID)
	req := getRequest(t.viaProxy(), o.HTTP, path)
	var counter, errs, ops atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 256<<10)
			var c net.Conn
			var br *bufio.Reader
			defer func() {
				if c != nil {
					c.Close()
				}
			}()
			for time.Now().Before(w.t1) {
				var r response
				var err error
				for attempt := 0; attempt < 2; attempt++ {
					fresh := c == nil
					if c == nil {
						if c, err = t.dialProxyOr(o.HTTP); err != nil {
							c = nil
							break
						}
						// The window's end interrupts the body being read.
						_ = c.SetDeadline(w.t1)
						br = bufio.NewReaderSize(c, 64<<10)
					}
					if _, err = c.Write(req); err == nil {
						r, err = readResponse(br, false, buf, &counter)
					}
					if err == nil {
						break
					}
					c.Close()
					c = nil
					if fresh || !retryable(err) || r.body > 0 {
						break
					}
				}
				if err != nil || r.status != 200 {
					if time.Now().Before(w.t1) {
						errs.Add(1)
						time.Sleep(time.Millisecond)
					}
					if c != nil {
						c.Close()
						c = nil
					}
					continue
				}
				ops.Add(1)
				if r.close {
					c.Close()
					c = nil
				}
			}
		}()
	}
	s := sampleBytes(w, &counter)
	wg.Wait()
	s.errs, s.ops = errs.Load(), ops.Load()
	fill(&s)
	return s
}

// sampleBytes reads a byte counter at the window's edges.
func sampleBytes(w window, counter *atomic.Int64) sample {
	time.Sleep(time.Until(w.t0))
	a := counter.Load()
	time.Sleep(time.Until(w.t1))
	return sample{bytes: counter.Load() - a}
}

// runBulk: n tunnels (CONNECT to the TCP source; direct: a plain connection
// to it), each read as fast as the path allows.
func runBulk(t target, o originInfo, originPID, n int, warm, dur time.Duration) sample {
	w := newWindow(warm, dur)
	fill := measureCPU(w, t.proxy.pidOrZero(), originPID)
	var counter, errs atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := t.dialProxyOr(o.Source)
			if err != nil {
				errs.Add(1)
				return
			}
			defer c.Close()
			_ = c.SetDeadline(w.t1)
			var r io.Reader = c
			if t.viaProxy() {
				br, err := connectTunnel(c, o.Source)
				if err != nil {
					errs.Add(1)
					return
				}
				r = br
			}
			buf := make([]byte, 256<<10)
			for {
				k, err := r.Read(buf)
				counter.Add(int64(k))
				if err != nil {
					if time.Now().Before(w.t1) {
						errs.Add(1)
					}
					return
				}
			}
		}()
	}
	s := sampleBytes(w, &counter)
	wg.Wait()
	s.errs = errs.Load()
	fill(&s)
	return s
}

func tlsConfig(o originInfo) *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(o.CAPEM))
	// No session cache: every tunnel does a full handshake.
	return &tls.Config{RootCAs: pool, ServerName: tlsServerName, MinVersion: tls.VersionTLS12}
}

// runTunnels: conc clients, each in a loop: connect to the proxy, CONNECT
// to the TLS origin, full TLS handshake, one GET, close. Direct: the same
// without the proxy.
func runTunnels(t target, o originInfo, originPID, conc int, warm, dur time.Duration) sample {
	return runTunnelsTLS(t, o, originPID, conc, 0, warm, dur)
}

// runTunnelsByName is runTunnels with CONNECT to the origin's name
// (origin.bench.test, from the origin's DNS server) instead of its
// address, as real clients CONNECT: the proxy resolves it per tunnel or
// answers from its cache.
func runTunnelsByName(t target, o originInfo, originPID, conc int, warm, dur time.Duration) sample {
	named := o
	named.TLS = net.JoinHostPort(tlsServerName, portOf(o.TLS))
	if t.viaProxy() {
		// Only the CONNECT names it; the proxy is dialled by address.
		return runTunnelsTLS(t, named, originPID, conc, 0, warm, dur)
	}
	return runTunnelsTLS(t, o, originPID, conc, 0, warm, dur)
}

// runTunnelsTLS is runTunnels with the client's highest TLS version
// (0: TLS 1.3). Under TLS 1.2 the server's certificate crosses the tunnel
// in clear, and the tap reads it (tls_issuer, tls_subject) before the
// tunnel goes to splice; under TLS 1.3 it is encrypted.
func runTunnelsTLS(t target, o originInfo, originPID, conc int, maxVersion uint16, warm, dur time.Duration) sample {
	w := newWindow(warm, dur)
	fill := measureCPU(w, t.proxy.pidOrZero(), originPID)
	cfg := tlsConfig(o)
	cfg.MaxVersion = maxVersion
	// Connection: close makes the origin close first, so the proxy's
	// upstream socket leaves no TIME_WAIT on an ephemeral port (Squid binds
	// before connecting and would run out of ports otherwise).
	req := []byte("GET /small HTTP/1.1\r\nHost: " + tlsServerName + "\r\nUser-Agent: m365tap-bench/1\r\nConnection: close\r\n\r\n")
	lat := make([][]time.Duration, conc)
	var ops, errs atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			buf := make([]byte, 16<<10)
			for time.Now().Before(w.t1) {
				st := time.Now()
				err := oneTunnel(t, o, cfg, req, buf, w.t1.Add(10*time.Second))
				en := time.Now()
				if !w.ends(en) {
					continue
				}
				if err != nil {
					errs.Add(1)
					time.Sleep(time.Millisecond)
					continue
				}
				ops.Add(1)
				lat[i] = append(lat[i], en.Sub(st))
			}
		}(i)
	}
	wg.Wait()
	s := sample{ops: ops.Load(), errs: errs.Load()}
	s.p50, s.p99 = percentiles(lat)
	fill(&s)
	return s
}

func oneTunnel(t target, o originInfo, cfg *tls.Config, req, buf []byte, deadline time.Time) error {
	c, err := t.dialProxyOr(o.TLS)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(deadline)
	var raw net.Conn = c
	if t.viaProxy() {
		br, err := connectTunnel(c, o.TLS)
		if err != nil {
			return err
		}
		raw = &bufConn{Conn: c, br: br}
	}
	tc := tls.Client(raw, cfg)
	if err := tc.Handshake(); err != nil {
		return err
	}
	if _, err := tc.Write(req); err != nil {
		return err
	}
	r, err := readResponse(bufio.NewReaderSize(tc, 4096), false, buf, nil)
	if err != nil {
		return err
	}
	if r.status != 200 {
		return errors.New("tunnel GET: status " + itoa(r.status))
	}
	return nil
}

// memResult is the proxy's RSS idle and with n idle tunnels open.
type memResult struct {
	idleKiB int64
	idleFDs int
	at      []memPoint
	err     string
}

type memPoint struct {
	want, open int
	rssKiB     int64
	fds        int     // open descriptors of the proxy (and children)
	secs       float64 // time to open them
}

// openIdle opens tunnels to the echo server through the proxy until n are
// open, each proven end to end with one byte echoed, and leaves them idle.
func openIdle(p *proxyProc, echo string, conns *[]net.Conn, n int) error {
	need := n - len(*conns)
	if need <= 0 {
		return nil
	}
	var mu sync.Mutex
	var firstErr error
	var next atomic.Int64
	var wg sync.WaitGroup
	for k := 0; k < 32; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			one := []byte{'x'}
			for next.Add(1) <= int64(need) {
				c, err := net.DialTimeout("tcp", p.addr, 5*time.Second)
				if err == nil {
					_ = c.SetDeadline(time.Now().Add(10 * time.Second))
					var br *bufio.Reader
					if br, err = connectTunnel(c, echo); err == nil {
						if _, err = c.Write(one); err == nil {
							_, err = io.ReadFull(br, one[:1])
						}
					}
					_ = c.SetDeadline(time.Time{})
					if err != nil {
						c.Close()
					}
				}
				mu.Lock()
				if err != nil {
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				*conns = append(*conns, c)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// closeFromOrigin asks the echo server to close each tunnel ('q'), waits
// for the close to come through the proxy, then closes the client side.
func closeFromOrigin(conns []net.Conn) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for k := 0; k < 32; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 64)
			for {
				i := int(next.Add(1)) - 1
				if i >= len(conns) {
					return
				}
				c := conns[i]
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.Write([]byte{'q'}); err == nil {
					for {
						if _, err := c.Read(buf); err != nil {
							break
						}
					}
				}
				c.Close()
			}
		}()
	}
	wg.Wait()
}

func runMemory(p *proxyProc, o originInfo, counts []int) memResult {
	var res memResult
	// One exchange of each kind, so lazily built state exists, then idle.
	tt := target{name: p.name, proxy: p}
	if c, err := tt.dialProxyOr(o.HTTP); err == nil {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(c)
		if _, err := c.Write(getRequest(true, o.HTTP, "/small")); err == nil {
			_, _ = readResponse(br, false, make([]byte, 4096), nil)
		}
		c.Close()
	}
	var conns []net.Conn
	defer func() { closeFromOrigin(conns) }()
	if err := openIdle(p, o.Echo, &conns, 1); err != nil {
		res.err = "warm-up tunnel: " + err.Error()
		return res
	}
	closeFromOrigin(conns)
	conns = conns[:0]
	time.Sleep(1500 * time.Millisecond)
	res.idleKiB = rssKiB(p.pid())
	res.idleFDs = fdCount(p.pid())
	for _, n := range counts {
		st := time.Now()
		err := openIdle(p, o.Echo, &conns, n)
		el := time.Since(st)
		time.Sleep(1500 * time.Millisecond)
		res.at = append(res.at, memPoint{want: n, open: len(conns), rssKiB: rssKiB(p.pid()), fds: fdCount(p.pid()), secs: el.Seconds()})
		if err != nil {
			res.err = "at " + itoa(len(conns)) + " tunnels: " + err.Error()
			break
		}
	}
	return res
}

// runOpen: conc keep-alive connections that send at a fixed total rate
// whatever the answers do (an open loop, as independent clients are): each
// request has a scheduled start, and its latency is counted from that
// start, so a proxy that stalls for 20 ms is charged 20 ms on every request
// that should have gone out during the stall, not only on the few that
// were in flight (a closed loop, wrk's and runPlain's, stops sending while
// it waits and so hides most of a stall). A connection that falls behind
// sends the late requests back to back.
func runOpen(t target, o originInfo, originPID, conc int, rate float64, path string, warm, dur time.Duration) sample {
	w := newWindow(warm, dur)
	fill := measureCPU(w, t.proxy.pidOrZero(), originPID)
	req := getRequest(t.viaProxy(), o.HTTP, path)
	lat := make([][]time.Duration, conc)
	interval := time.Duration(float64(conc) / rate * float64(time.Second))
	start := time.Now()
	var ops, errs atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			buf := make([]byte, 32<<10)
			var c net.Conn
			var br *bufio.Reader
			defer func() {
				if c != nil {
					c.Close()
				}
			}()
			// Connections are spread evenly over one interval.
			next := start.Add(interval * time.Duration(i) / time.Duration(conc))
			for next.Before(w.t1) {
				if d := time.Until(next); d > 0 {
					time.Sleep(d)
				}
				var r response
				var err error
				if c == nil {
					if c, err = t.dialProxyOr(o.HTTP); err == nil {
						_ = c.SetDeadline(w.t1.Add(10 * time.Second))
						br = bufio.NewReaderSize(c, 16<<10)
					} else {
						c = nil
					}
				}
				if err == nil {
					if _, err = c.Write(req); err == nil {
						r, err = readResponse(br, false, buf, nil)
					}
				}
				en := time.Now()
				if w.in(next, next) {
					if err != nil || r.status != 200 {
						errs.Add(1)
					} else {
						ops.Add(1)
						lat[i] = append(lat[i], en.Sub(next))
					}
				}
				if err != nil || r.close {
					if c != nil {
						c.Close()
						c = nil
					}
				}
				next = next.Add(interval)
			}
		}(i)
	}
	wg.Wait()
	s := sample{ops: ops.Load(), errs: errs.Load()}
	s.p50, s.p99 = percentiles(lat)
	fill(&s)
	return s
}

// selfPreempt is the involuntary context switches of this process (all
// its threads).
func selfPreempt() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Nivcsw
}
