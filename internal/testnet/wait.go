package testnet

import (
	"log"
	"net"
	"strings"
	"testing"
	"time"
)

// pollInterval is short enough that WaitFor adds little latency to a test
// and long enough that a polled counter behind a mutex sees no contention.
const pollInterval = 5 * time.Millisecond

// WaitFor polls cond until it reports true and fails the test if that does
// not happen within timeout. It exists because fixtures observe the other
// side of a socket: the client's call returns before the server goroutine
// has counted what it read.
//
// Like t.Fatal, it must be called from the goroutine running the test.
func WaitFor(t testing.TB, cond func() bool, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("testnet: condition not met within %v", timeout)
		}
		time.Sleep(pollInterval)
	}
}

// FreeAddr returns a loopback address that was free a moment ago, for a
// server the test must start on a known address. Nothing holds it, so
// another process may take it first; prefer listening on port 0 and asking
// the listener, and use Closed for an address that must refuse.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testnet: reserve address: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatalf("testnet: release address: %v", err)
	}
	return addr
}

// testLogger sends a server's error log (failed handshakes, handler
// panics) to the test's log, where it shows with -v or on failure instead
// of interleaving with other tests' output. It is safe only for servers
// whose cleanup waits for every connection goroutine, as t.Log panics once
// the test has finished.
func testLogger(t testing.TB) *log.Logger {
	return log.New(testWriter{t}, "", 0)
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
