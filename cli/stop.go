package cli

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"time"
)

// stopRequest is the first request to stop: a context cancelled by it, and
// which signal it was. On Windows Go delivers Ctrl-C and Ctrl-Break as
// os.Interrupt, and closing the console window, logging off and shutting
// down as syscall.SIGTERM.
type stopRequest struct {
	ctx    context.Context
	cancel context.CancelFunc
	ch     chan os.Signal
	done   chan struct{}
	mu     sync.Mutex
	sig    os.Signal
}

func notifyStop(parent context.Context) *stopRequest {
	s := &stopRequest{ch: make(chan os.Signal, 1), done: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(parent)
	signal.Notify(s.ch, stopSignals...)
	go func() {
		defer close(s.done)
		select {
		case sig := <-s.ch:
			s.mu.Lock()
			s.sig = sig
			s.mu.Unlock()
			s.cancel()
		case <-s.ctx.Done():
		}
	}()
	return s
}

// signal is the signal that asked to stop, or nil.
func (s *stopRequest) signal() os.Signal {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sig
}

// grace is how long exchanges may finish: the configured shutdown.grace,
// cut short where the system ends the process soon after its request.
func (s *stopRequest) grace(configured time.Duration) time.Duration {
	if limit := stopLimit(s.signal()); limit > 0 && configured > limit {
		return limit
	}
	return configured
}

// stop ends the notification; signals after it take their default action.
func (s *stopRequest) stop() {
	signal.Stop(s.ch)
	s.cancel()
	<-s.done
}
