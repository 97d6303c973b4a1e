package proxy

import (
	"context"
	"net/http"

	"github.com/m365tap/m365tap/upstream"
)

// sendPlain carries a plain request that no credential binds to a
// connection: on the tap's own pool (upstream.Pool) when it has no body and
// asks for no upgrade, on net/http's Transport otherwise. Both dial through
// the same dialer, so the events are the same whichever carried it.
func (s *Server) sendPlain(ex *exchange, r *http.Request) (*http.Response, error) {
	if s.pool == nil || !pooled(r) {
		return s.tr.RoundTrip(r)
	}
	return s.pooledRoundTrip(ex, r)
}

// pooled reports a request the pool can carry: http://, no body to send
// while an answer may already be coming, no protocol switch.
func pooled(r *http.Request) bool {
	return r.URL.Scheme == "http" &&
		(r.Body == nil || r.Body == http.NoBody) && r.ContentLength == 0 &&
		len(r.TransferEncoding) == 0 && len(r.Header["Upgrade"]) == 0
}

// replayable are the requests the Transport also sends again on a fresh
// connection when a pooled one turns out to be closed: idempotent methods
// (RFC 9110 section 9.2.2) without a body.
func replayable(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return len(r.Header["Idempotency-Key"]) > 0 || len(r.Header["X-Idempotency-Key"]) > 0
}

func (s *Server) poolKey(ex *exchange) upstream.PoolKey {
	if ex.route == RouteParent {
		p := s.parent
		if ex.parent != nil {
			p = ex.parent
		}
		return upstream.PoolKey{Host: p.addr, Proxy: true}
	}
	return upstream.PoolKey{Host: ex.host, Port: ex.port}
}

// pooledRoundTrip sends r on an idle pooled connection, or a new one. A
// reused connection the peer closed while it idled fails before any answer;
// a replayable request then goes again on a new connection, as it would
// from the Transport (and from the PC's own HTTP stack). Other requests are
// sent on a reused connection only when a non-blocking peek finds it alive.
func (s *Server) pooledRoundTrip(ex *exchange, r *http.Request) (*http.Response, error) {
	ctx := r.Context()
	replay := replayable(r)
	for {
		c := s.pool.Get(s.poolKey(ex))
		if c != nil && !replay && c.Dead() {
			_ = c.Close()
			continue
		}
		if c == nil {
			var err error
			if c, err = s.dialPooled(ctx, ex); err != nil {
				return nil, err
			}
		}
		// The client going away (or the tap stopping) ends the wait for
		// the answer and its body, as canceling the request does on the
		// Transport.
		resp, err := c.Send(ctx, r, s.now().Add(s.opts.ResponseHeaderTimeout))
		if err == nil {
			return resp, nil
		}
		_ = c.Close()
		if !c.Reused() || !replay || ctx.Err() != nil || err == upstream.ErrHeaderTimeout {
			return nil, err
		}
	}
}

// dialPooled opens a new connection for r's route through the tap's dialer.
func (s *Server) dialPooled(ctx context.Context, ex *exchange) (*upstream.Conn, error) {
	if ex.route == RouteParent {
		tc, err := s.dial.dialParent(ctx, ex)
		if err != nil {
			return nil, err
		}
		return s.pool.New(tc, s.poolKey(ex)), nil // the key after any failover
	}
	tc, err := s.dial.dialDirect(ctx, ex, ex.host, ex.port)
	if err != nil {
		return nil, err
	}
	return s.pool.New(tc, s.poolKey(ex)), nil
}
