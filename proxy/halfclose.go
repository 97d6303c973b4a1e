package proxy

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// A plain-HTTP client may send its request and then shut down its write
// side (shutdown(2) SHUT_WR, Go's CloseWrite, "nc -N") while it waits for
// the answer. net/http cannot tell that from a client that left: both
// reach EOF on the connection, and net/http cancels the request's context
// either way. Passed on, that cancel would end the upstream request and the
// client, still reading, would get the tap's 502 instead of its answer.
//
// So the upstream round trip runs under a context of its own (see
// upstreamContext). It follows the request's context when the connection
// failed otherwise (a reset, a close by shutdown) and when the tap is
// shutting down. After a clean EOF it goes on as for any client: the
// response head is awaited within timeouts.response_header, and then, as a
// tunnel does after a half-close, the answer must make progress: the round
// trip is canceled once no response byte reached the client for
// timeouts.tunnel_linger, which bounds a stalled origin whose client may be
// long gone. A client that in fact closed completely answers what the tap
// writes to it with a reset, which fails the next write or is seen in the
// socket's state (Linux) within lingerPoll; only an answer sent whole
// before that reset comes back is logged as delivered.

// halfClose is an exchange's record of its client's end, embedded so that
// a request allocates nothing more for it until the client half-closes.
type halfClose struct {
	mu     sync.Mutex
	cancel context.CancelCauseFunc
	done   bool        // the handler returned
	head   bool        // the response head arrived: the linger runs
	timer  *time.Timer // while lingering: the next look at the client
	stop   func() bool // while lingering: unregisters the shutdown hook

	lingering atomic.Bool
	last      atomic.Int64 // while lingering: unix ns of the head or the last byte to the client
	expired   atomic.Bool  // the linger ran out: the exchange ends client_aborted
}

// lingerPoll is how often a lingering exchange looks at its client's
// socket. A client that closed for good answers the bytes the tap sends it
// with a reset, which Linux shows in the socket's state; the exchange then
// ends at once, as for a client that reset in the first place.
const lingerPoll = 50 * time.Millisecond

// upstreamContext is the context for a plain request's round trip, and the
// function to call once the handler is done with it. Requests that did not
// come through the tap's listener keep their own context.
func (s *Server) upstreamContext(r *http.Request, ex *exchange) (context.Context, func()) {
	cc, _ := r.Context().Value(connKey{}).(*clientConn)
	if cc == nil {
		return r.Context(), func() {}
	}
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(r.Context()))
	hc := &ex.half
	hc.cancel = cancel
	stop := context.AfterFunc(r.Context(), func() { s.clientEnded(hc, cc) })
	return ctx, func() {
		stop()
		hc.mu.Lock()
		hc.done = true
		if hc.timer != nil {
			hc.timer.Stop()
			hc.stop()
		}
		hc.mu.Unlock()
		cancel(nil)
	}
}

// clientEnded runs when net/http canceled the request's context while the
// handler still ran: the client's side ended, or the tap closed it.
func (s *Server) clientEnded(hc *halfClose, cc *clientConn) {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	if hc.done {
		return
	}
	if !cc.readEOF.Load() || s.forced.Load() || receivedReset(cc.TCPConn) {
		hc.cancel(context.Canceled)
		return
	}
	hc.last.Store(s.now().UnixNano())
	hc.lingering.Store(true)
	hc.timer = time.AfterFunc(lingerPoll, func() { s.lingerCheck(hc, cc) })
	// Shutdown closes the connection, but its read side has already ended,
	// so net/http has nothing left to cancel: Shutdown must.
	hc.stop = context.AfterFunc(s.forcedCtx, func() { hc.cancel(context.Canceled) })
}

// lingerCheck ends a lingering exchange whose client reset, or that went
// timeouts.tunnel_linger since its head or its last byte to the client;
// until the head arrives, timeouts.response_header bounds the wait.
func (s *Server) lingerCheck(hc *halfClose, cc *clientConn) {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	switch {
	case hc.done:
		return
	case receivedReset(cc.TCPConn):
		hc.cancel(context.Canceled)
		return
	case hc.head && s.now().Sub(time.Unix(0, hc.last.Load())) >= s.opts.TunnelLinger:
		hc.expired.Store(true)
		hc.cancel(context.Canceled)
		return
	}
	hc.timer.Reset(lingerPoll)
}

// gotHead notes that the response head arrived, which starts the linger
// of a client that half-closed.
func (hc *halfClose) gotHead(now time.Time) {
	hc.mu.Lock()
	hc.head = true
	hc.last.Store(now.UnixNano())
	hc.mu.Unlock()
}

// progress notes that bytes reached a half-closed client.
func (hc *halfClose) progress(now func() time.Time) {
	if hc.lingering.Load() {
		hc.last.Store(now().UnixNano())
	}
}

// halfClosedErr is the reason an exchange whose linger ran out ends
// client_aborted.
func (s *Server) halfClosedErr() error {
	return errorf("client half-closed the connection and no response byte reached it within timeouts.tunnel_linger (%s)", s.opts.TunnelLinger)
}
