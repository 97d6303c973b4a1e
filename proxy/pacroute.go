package proxy

import (
	"context"
	"errors"
	"net/netip"
	"net/url"
	"strconv"

	"github.com/m365tap/m365tap/pac"
)

// The PAC's way out. When the PC's PAC (parent.pac) is loaded, it chooses
// each exchange's route as Windows would evaluate it for that PC: its first
// hop, DIRECT or PROXY host:port, with the URL Windows gives it (a CONNECT
// as https://host/, a plain request as its full URL) and the PC's address
// for myIpAddress(). The engine keeps a short cache of decisions, so the
// request path runs no JavaScript for a host it saw moments ago.

// maxPACResult bounds the PAC's answer in an event.
const maxPACResult = 256

// routePAC applies the PAC's decision to ex, whose route classify chose
// from parent.url and parent.bypass. Those stay when there is no engine,
// for hosts in parent.bypass, for probes sent direct by probes.direct, and
// when the evaluation fails or its first hop cannot be used (HTTPS, SOCKS):
// then the tap does what a browser does without a usable PAC, and the
// event says why.
func (s *Server) routePAC(ctx context.Context, ex *exchange, u *url.URL) {
	eng := s.opts.PAC
	if eng == nil || s.bypass.match(ex.host) || (s.opts.ProbesDirect && ex.probe) {
		return
	}
	t := pac.Target{Scheme: "http", Host: ex.host, Port: uint16(ex.port), Client: ex.clientIP()}
	if ex.connecting {
		t.Scheme = "https"
	} else {
		t.URL = u
		if u != nil && u.Scheme == "https" {
			t.Scheme = "https"
		}
	}
	d, err := eng.FindProxy(ctx, t)
	ex.pac = true
	ex.pacResult = d.Answer
	if len(ex.pacResult) > maxPACResult {
		ex.pacResult = ex.pacResult[:maxPACResult]
	}
	if !d.Cached {
		ex.pacElapsed, ex.pacEvaluated = d.Elapsed, true
	}
	if err != nil {
		ex.pacErr = err.Error() + "; routed as configured without the PAC"
		return
	}
	if len(d.Hops) == 0 {
		if d.AnswerErr != nil {
			ex.pacErr = d.AnswerErr.Error()
		}
		return
	}
	ex.pacHops = d.Hops
	switch h := d.Hops[0]; h.Kind {
	case pac.Direct:
		ex.route, ex.parent = RouteDirect, nil
	case pac.Proxy:
		ex.route, ex.parent = RouteParent, s.parentFor(h)
	default:
		ex.pacErr = "the PAC's first hop " + strconv.Quote(h.String()) + " is not supported by the tap (only DIRECT and PROXY); routed as configured without the PAC"
	}
}

// parentFor returns the parent for a PAC's PROXY hop, made once per
// host and port, so that a cached decision allocates nothing (a hop's
// host:port text is only made the first time).
func (s *Server) parentFor(h pac.Hop) *parentProxy {
	k := pacHopKey{h.Host, h.Port}
	if p, ok := s.pacParents.Load(k); ok {
		return p.(*parentProxy)
	}
	addr := h.Addr()
	if s.parent != nil && s.parent.addr == addr {
		s.pacParents.Store(k, s.parent)
		return s.parent
	}
	p := newParent(&url.URL{Scheme: "http", Host: addr})
	if old, loaded := s.pacParents.LoadOrStore(k, p); loaded {
		return old.(*parentProxy)
	}
	return p
}

type pacHopKey struct {
	host string
	port uint16
}

// failover is the PAC's next PROXY hop after the one that could not be
// reached, when pac.failover is on (WinHTTP itself uses the first hop
// only). nil: none left.
func (s *Server) failover(ex *exchange) *parentProxy {
	if !s.opts.PACFailover || len(ex.pacHops) < 2 {
		return nil
	}
	for i, h := range ex.pacHops {
		if h.Kind == pac.Proxy && ex.parent != nil && s.parentFor(h) == ex.parent {
			for _, next := range ex.pacHops[i+1:] {
				if next.Kind == pac.Proxy {
					return s.parentFor(next)
				}
			}
			return nil
		}
	}
	return nil
}

// clientIP is the PC's address, for myIpAddress().
func (ex *exchange) clientIP() netip.Addr {
	if ex.cc != nil {
		return ex.cc.ip
	}
	if ap, err := netip.ParseAddrPort(ex.client); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// errPACLoop: a PAC that names the tap itself would send every exchange
// round in circles.
var errPACLoop = errors.New("the PAC names the tap itself as the proxy")

// pacLoops reports a PAC decision that points at one of the tap's own
// listeners.
func (s *Server) pacLoops(ex *exchange) bool {
	if ex.parent == nil || ex.parent == s.parent {
		return false
	}
	host, port, err := splitTarget(ex.parent.addr, 0)
	return err == nil && s.isSelf(host, port)
}
