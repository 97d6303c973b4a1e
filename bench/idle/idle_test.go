package idle_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/elazarl/goproxy"

	"github.com/m365tap/m365tap/internal/testnet"
	"github.com/m365tap/m365tap/proxy"
	"github.com/m365tap/m365tap/rules"
)

const tunnels = 1000

// echo serves a TCP echo on loopback for the test's lifetime.
func echo(tb testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

func serve(tb testing.TB, h http.Handler, serveFn func(net.Listener) error) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go func() { _ = serveFn(ln) }()
	tb.Cleanup(func() { ln.Close() })
	_ = h
	return ln.Addr().String()
}

// open makes n tunnels through proxyAddr to target, each proven with one
// echoed byte, and leaves them idle.
func open(tb testing.TB, proxyAddr, target string, n int) []net.Conn {
	conns := make([]net.Conn, 0, n)
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", proxyAddr)
		if err != nil {
			tb.Fatal(err)
		}
		fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
		if err != nil || resp.StatusCode != 200 {
			tb.Fatalf("CONNECT: %v %v", resp, err)
		}
		if _, err := c.Write([]byte{'x'}); err != nil {
			tb.Fatal(err)
		}
		if _, err := io.ReadFull(br, make([]byte, 1)); err != nil {
			tb.Fatal(err)
		}
		conns = append(conns, c)
	}
	return conns
}

type snapshot struct{ heap, stack, goroutines float64 }

func take() snapshot {
	for i := 0; i < 3; i++ {
		runtime.GC()
	}
	time.Sleep(100 * time.Millisecond)
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return snapshot{float64(m.HeapInuse), float64(m.StackInuse), float64(runtime.NumGoroutine())}
}

// measure reports what n idle tunnels add. With IDLE_HEAP_PROFILE set, it
// also writes a heap profile (in-use objects) taken while they are open.
func measure(b *testing.B, name, proxyAddr, target string) {
	b.Helper()
	before := take()
	conns := open(b, proxyAddr, target, tunnels)
	after := take()
	if dir := os.Getenv("IDLE_HEAP_PROFILE"); dir != "" {
		f, err := os.Create(dir + "/heap-" + name + ".out")
		if err == nil {
			_ = pprof.Lookup("heap").WriteTo(f, 0)
			f.Close()
		}
	}
	for _, c := range conns {
		c.Close()
	}
	n := float64(tunnels)
	b.ReportMetric((after.heap-before.heap)/n, "heap-B/tunnel")
	b.ReportMetric((after.stack-before.stack)/n, "stack-B/tunnel")
	b.ReportMetric((after.goroutines-before.goroutines)/n, "goroutines/tunnel")
}

// BenchmarkIdleTunnels: each iteration opens 1,000 idle tunnels to an echo
// server and reports heap, stack and goroutines per tunnel. Run with
// -benchtime 1x.
func BenchmarkIdleTunnels(b *testing.B) {
	target := echo(b)
	_, portStr, _ := net.SplitHostPort(target)
	port, _ := strconv.Atoi(portStr)
	b.Run("m365tap", func(b *testing.B) {
		cat, err := rules.EmbeddedCatalogue()
		if err != nil {
			b.Fatal(err)
		}
		set, err := rules.Compile(cat, nil)
		if err != nil {
			b.Fatal(err)
		}
		var cur atomic.Pointer[rules.Set]
		cur.Store(set)
		// As the tap runs by default: timeouts.tunnel_idle is 10m.
		srv := proxy.New(proxy.Options{AllowPorts: []int{port}, Rules: &cur, TunnelIdle: 10 * time.Minute,
			MaxConns: 100000, MaxConnsPerClient: 100000, DNSServers: []string{testnet.Closed(b)}})
		addr := serve(b, srv, srv.Serve)
		b.Cleanup(func() { srv.Shutdown(time.Second) })
		for b.Loop() {
			measure(b, "m365tap", addr, target)
		}
	})
	b.Run("goproxy", func(b *testing.B) {
		gp := goproxy.NewProxyHttpServer()
		gp.Logger = nopLogger{}
		hs := &http.Server{Handler: gp}
		addr := serve(b, gp, hs.Serve)
		b.Cleanup(func() { hs.Close() })
		for b.Loop() {
			measure(b, "goproxy", addr, target)
		}
	})
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}
