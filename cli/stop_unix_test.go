//go:build unix

package cli

import (
	"context"
	"syscall"
	"testing"
	"time"
)

// TestStopOnSignal: a real SIGTERM cancels the context and is remembered.
func TestStopOnSignal(t *testing.T) {
	s := notifyStop(context.Background())
	defer s.stop()
	syscall.Kill(syscall.Getpid(), syscall.SIGTERM)
	select {
	case <-s.ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("SIGTERM did not cancel the context")
	}
	if s.signal() != syscall.SIGTERM {
		t.Errorf("signal %v, want SIGTERM", s.signal())
	}
}
