package proxy_test

import (
	"io"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/m365tap/m365tap/internal/testnet"
	"github.com/m365tap/m365tap/proxy"
)

// pipeFDs counts this process's descriptors that are pipes. Pipes that Go's
// pool let go of (the race detector makes sync.Pool drop items at random)
// are closed by their finalizers, so collect first; a pipe held by a
// waiting splice stays.
func pipeFDs(t *testing.T) int {
	t.Helper()
	for range 3 {
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, "pipe:") {
			n++
		}
	}
	return n
}

// TestIdleTunnelsHoldNoPipe: a tunnel that carried data and now waits holds
// its two sockets and no splice pipe, with and without an idle bound. A
// splice that waits for data inside the kernel call would hold a pipe (two
// descriptors) per direction, four per tunnel.
func TestIdleTunnelsHoldNoPipe(t *testing.T) {
	const tunnels = 16
	for _, idle := range []time.Duration{0, 10 * time.Minute} {
		t.Run(idle.String(), func(t *testing.T) {
			echo := testnet.Echo(t)
			h := newHarness(t, proxy.Options{AllowPorts: []int{mustPort(echo.Addr())}, TunnelIdle: idle})
			ping := func(c io.ReadWriter) {
				t.Helper()
				buf := make([]byte, 4)
				if _, err := c.Write([]byte("ping")); err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
					t.Fatalf("echo: %q %v", buf, err)
				}
			}
			type rw struct {
				io.Reader
				io.Writer
			}
			var open []rw
			for range tunnels {
				c, resp, br := rawConnect(t, h.addr, echo.Addr(), nil)
				if resp.StatusCode != 200 {
					t.Fatal(resp.Status)
				}
				// The first bytes pass the TLS observer; the second
				// round goes through the splice pump.
				ping(rw{br, c})
				ping(rw{br, c})
				open = append(open, rw{br, c})
				if len(open) == 1 {
					// From here on Go's pool holds the pipes that the
					// splices borrow and give back.
					time.Sleep(20 * time.Millisecond)
				}
			}
			time.Sleep(100 * time.Millisecond)
			before := pipeFDs(t)
			// Every tunnel still works after waiting.
			for _, c := range open {
				ping(c)
			}
			time.Sleep(100 * time.Millisecond)
			// Pipes in use at rest: only what Go's pool keeps, shared by
			// all tunnels; never some per tunnel.
			if got := pipeFDs(t); got >= tunnels || before >= tunnels {
				t.Fatalf("%d idle tunnels hold %d (then %d) pipe descriptors", tunnels, before, got)
			}
		})
	}
}
