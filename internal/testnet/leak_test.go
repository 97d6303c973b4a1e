package testnet

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// fixtureLine reports whether a line of a goroutine dump is a frame in the
// package's non-test sources, or in net/http's server connection loop,
// which only fixtures run in this binary.
func fixtureLine(line string) bool {
	if strings.Contains(line, "net/http.(*conn).serve") {
		return true
	}
	_, file, ok := strings.Cut(line, "/internal/testnet/")
	return ok && strings.Contains(file, ".go:") && !strings.Contains(file, "_test.go:")
}

// fixtureGoroutines returns the stacks of goroutines other than the caller
// that are running fixture code.
func fixtureGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	stacks := strings.Split(string(buf), "\n\n")
	var out []string
	for _, s := range stacks[1:] { // the first is this goroutine
		for line := range strings.SplitSeq(s, "\n") {
			if fixtureLine(line) {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

// settledFixtureGoroutines is fixtureGoroutines once it is empty, or after
// two seconds. Cleanup waits for every fixture goroutine to signal that it
// is done; the last few instructions after that signal may still be
// running, which is not a leak. A real leak outlasts the grace period.
func settledFixtureGoroutines() []string {
	deadline := time.Now().Add(2 * time.Second)
	for {
		leftover := fixtureGoroutines()
		if len(leftover) == 0 || time.Now().After(deadline) {
			return leftover
		}
		time.Sleep(pollInterval)
	}
}

// TestFixturesLeaveNothingRunning is sequential on purpose: parallel tests
// are still paused at t.Parallel while it runs, so any fixture goroutine
// alive after its subtest's cleanup is a leak.
func TestFixturesLeaveNothingRunning(t *testing.T) {
	// Earlier tests' fixtures (with -count > 1) have been cleaned up, but a
	// goroutine that has signalled its WaitGroup still needs a moment to
	// return.
	if leftover := settledFixtureGoroutines(); len(leftover) > 0 {
		t.Fatalf("fixture goroutines before the test:\n%s", strings.Join(leftover, "\n\n"))
	}

	// Each case leaves connections open on purpose; cleanup must close them.
	cases := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"dns", func(t *testing.T) {
			d := NewDNS(t)
			d.SetDrop("drop.test")
			c, err := d.Dial(context.Background(), "tcp", "")
			must(t, err)
			defer c.Close()
			_, err = c.Write([]byte{0, 12, 0, 1})
			must(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			_, _ = d.Resolver().LookupNetIP(ctx, "ip", "drop.test.")
		}},
		{"tcp servers", func(t *testing.T) {
			serve := Serve(t, func(c *net.TCPConn) { _, _ = io.Copy(io.Discard, c) })
			for _, s := range []*Server{Blackhole(t), Silent(t), Echo(t), Sink(t), Source(t, 10<<20), Reset(t, ResetMidResponse), serve} {
				c := dial(t, s.Addr())
				_, _ = c.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
			}
			Closed(t)
		}},
		{"origins", func(t *testing.T) {
			ca := NewCA(t)
			var started sync.WaitGroup
			started.Add(2)
			block := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				started.Done()
				<-r.Context().Done()
			})
			plain := dial(t, NewHTTPOrigin(t, block).Listener.Addr().String())
			secure, err := tls.Dial("tcp", NewTLSOrigin(t, ca, block, TLSOptions{}).Listener.Addr().String(), &tls.Config{ServerName: "127.0.0.1", RootCAs: ca.Pool()})
			must(t, err)
			defer secure.Close()
			for _, c := range []net.Conn{plain, secure} {
				_, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
				must(t, err)
			}
			started.Wait()
		}},
		{"parents", func(t *testing.T) {
			echo := Echo(t)
			for _, mode := range []ParentMode{ParentForward, ParentAuth407, ParentDeny403, ParentSlow} {
				p := NewParent(t, ParentOptions{Mode: mode, Dial: hosts{"echo.test:7": echo.Addr()}.dial})
				c := dial(t, p.Addr())
				_, err := io.WriteString(c, "CONNECT echo.test:7 HTTP/1.1\r\nHost: echo.test:7\r\n\r\n")
				must(t, err)
				if mode != ParentSlow {
					must(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
					_, err = c.Read(make([]byte, 1))
					must(t, err)
				}
			}
			WaitFor(t, func() bool { return echo.Accepted() == 1 }, 5*time.Second)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, tc.run)
		leftover := settledFixtureGoroutines()
		if len(leftover) > 0 {
			t.Errorf("%s: goroutines still running after cleanup:\n%s", tc.name, strings.Join(leftover, "\n\n"))
		}
	}
}
