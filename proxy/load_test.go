package proxy_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/m365tap/m365tap/internal/testnet"
	"github.com/m365tap/m365tap/proxy"
)

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

// TestConcurrentExactlyOneEvent pushes plain requests, keep-alive reuse and
// tunnels through the tap at once, then checks one event per exchange, and
// that goroutines and file descriptors return to their baseline.
func TestConcurrentExactlyOneEvent(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	echo := testnet.Echo(t)
	runtime.GC()
	baseG, baseFD := runtime.NumGoroutine(), openFDs(t)

	h := newHarness(t, proxy.Options{AllowPorts: []int{mustPort(echo.Addr())}})
	const workers, perWorker = 16, 25
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			client := h.client()
			for i := 0; i < perWorker; i++ {
				if i%5 == 4 {
					c, resp, br := rawConnect(t, h.addr, echo.Addr(), nil)
					if resp.StatusCode != 200 {
						t.Errorf("CONNECT status %d", resp.StatusCode)
						return
					}
					c.Write([]byte("ping"))
					io.ReadFull(br, make([]byte, 4))
					c.Close()
					continue
				}
				resp, err := client.Get(origin.URL)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}(w)
	}
	wg.Wait()
	events := h.waitEvents(workers * perWorker)
	ids := map[float64]bool{}
	for _, ev := range events {
		if ev["outcome"] != "ok" {
			t.Errorf("unexpected outcome: %v", ev)
		}
		id := ev["id"].(float64)
		if ids[id] {
			t.Errorf("id %v logged twice", id)
		}
		ids[id] = true
	}
	h.shutdown(time.Second)
	origin.Close()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	testnet.WaitFor(t, func() bool {
		return runtime.NumGoroutine() <= baseG+2 && openFDs(t) <= baseFD+2
	}, 5*time.Second)
}
