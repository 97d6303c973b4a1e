package proxy_test

import (
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/m365tap/m365tap/internal/testnet"
	"github.com/m365tap/m365tap/proxy"
)

// TestRefusalsDuringShutdown: connections over access.max_conns_per_client
// keep arriving while the tap shuts down. Every one the tap answered with
// its refusal has its denied event written by the time Shutdown returns,
// and none is written after: events == refused connections.
func TestRefusalsDuringShutdown(t *testing.T) {
	for round := range 5 {
		h := newHarness(t, proxy.Options{MaxConnsPerClient: 1})
		// The one connection allowed, held open without a request: it is
		// not an exchange and writes no event.
		held, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close()
		first := connAnswer(t, h.addr)
		if !strings.HasPrefix(first, "HTTP/1.1 429 ") {
			t.Fatalf("second connection got %q, want 429", first)
		}

		const clients = 150
		var answered atomic.Int64
		var wg sync.WaitGroup
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Refused by the kernel once the listener is closed, or
				// reset if it was still in the backlog: no answer, no
				// event. Only a refusal the tap wrote counts.
				if strings.HasPrefix(connAnswer(t, h.addr), "HTTP/1.1 429 ") {
					answered.Add(1)
				}
			}()
		}
		testnet.WaitFor(t, func() bool { return answered.Load() >= 10 }, 10*time.Second)
		h.shutdown(0)
		atShutdown := len(h.log.events(t))
		wg.Wait()
		time.Sleep(100 * time.Millisecond)
		after := h.log.events(t)
		got := int(answered.Load()) + 1 // and the first refusal
		if atShutdown != got || len(after) != got {
			t.Fatalf("round %d: %d refusals answered, %d events when Shutdown returned, %d later", round, got, atShutdown, len(after))
		}
		for _, ev := range after {
			want(t, ev, map[string]any{"outcome": "denied", "status": 429})
		}
	}
}

// connAnswer dials addr and reads whatever comes back until the end; ""
// when the dial fails.
func connAnswer(t *testing.T, addr string) string {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return ""
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(c)
	return string(b)
}
