package cli

import (
	"context"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// TestStopGrace: closing the console window (SIGTERM on Windows) leaves
// one second for open exchanges, because Windows ends the process about
// five seconds after asking; Ctrl-C, and every signal elsewhere, keep
// shutdown.grace.
func TestStopGrace(t *testing.T) {
	for _, tc := range []struct {
		sig  os.Signal
		want time.Duration
	}{
		{nil, 10 * time.Second},
		{os.Interrupt, 10 * time.Second},
		{syscall.SIGTERM, map[bool]time.Duration{true: time.Second, false: 10 * time.Second}[runtime.GOOS == "windows"]},
	} {
		s := notifyStop(context.Background())
		s.mu.Lock()
		s.sig = tc.sig
		s.mu.Unlock()
		if got := s.grace(10 * time.Second); got != tc.want {
			t.Errorf("%v: grace %v, want %v", tc.sig, got, tc.want)
		}
		if got := s.grace(500 * time.Millisecond); got != 500*time.Millisecond {
			t.Errorf("%v: a shorter grace became %v", tc.sig, got)
		}
		s.stop()
	}
}
