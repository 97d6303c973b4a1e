package proxy

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/m365tap/m365tap/rules"
)

// parentProxy is the configured corporate proxy, parsed once.
type parentProxy struct {
	// url is for http.Transport's Proxy func, without credentials: the
	// Transport would add them to every request, the NCSI probe's
	// included, and hide the 407 the PC gets without the tap.
	url  *url.URL
	addr string // host:port, safe to log
	spn  string // HTTP/<host>, the service a client's Kerberos ticket must name
}

func newParent(u *url.URL) *parentProxy {
	if u == nil {
		return nil
	}
	c := *u
	c.User = nil
	return &parentProxy{url: &c, addr: u.Host, spn: parentSPNOf(u.Host)}
}

// dialer is the one way out of the tap, shared by plain HTTP (as the
// Transport's DialContext) and CONNECT: it resolves names itself so that DNS
// and TCP failures can never blur, dials the resolved address, and records
// each phase's duration in the exchange.
type dialer struct {
	resolver       *net.Resolver
	servers        []string // dns.servers; empty: the system's resolver
	hosts          map[string]netip.Addr
	dnsTimeout     time.Duration
	connectTimeout time.Duration
	headerTimeout  time.Duration
	parent         *parentProxy
	now            func() time.Time
	dests          destCache
	// self reports an address that is one of the tap's own listeners: a
	// name that resolves to the tap would loop through it (issue 15).
	self func(netip.Addr, int) bool
}

// destCache remembers the address each destination was last dialled at, so
// an exchange served on a pooled upstream connection still logs dest_ip
// (which the ExpressRoute comparison needs). Keys are value types, so a
// lookup allocates nothing.
type destCache struct {
	mu sync.RWMutex
	m  map[destKey]netip.Addr
}

type destKey struct {
	host string
	port int
}

func (c *destCache) remember(host string, port int, ip netip.Addr) {
	k := destKey{host, port}
	c.mu.RLock()
	old, ok := c.m[k]
	c.mu.RUnlock()
	if ok && old == ip {
		return
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) > 4096 {
		c.m = make(map[destKey]netip.Addr)
	}
	c.m[k] = ip
	c.mu.Unlock()
}

func (c *destCache) lookup(host string, port int) (netip.Addr, bool) {
	c.mu.RLock()
	ip, ok := c.m[destKey{host, port}]
	c.mu.RUnlock()
	return ip, ok
}

func newResolver(servers []string) *net.Resolver {
	if len(servers) == 0 {
		return net.DefaultResolver
	}
	var next atomic.Uint32
	return &net.Resolver{
		PreferGo: true,
		// Each query attempt goes to the next configured server, so a retry
		// after a timeout reaches a different one. The address Go passes in
		// is resolv.conf's, which is never asked; the lookup's dnsAsked
		// notes the server that is.
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			srv := servers[int(next.Add(1)-1)%len(servers)]
			if a, ok := ctx.Value(dnsAskedKey{}).(*dnsAsked); ok {
				a.note(srv)
			}
			var d net.Dialer
			return d.DialContext(ctx, network, srv)
		},
	}
}

// dnsAsked collects the configured DNS servers one lookup dialled. Go's resolver names a resolv.conf server in its errors whatever
// Dial connected to, so the tap puts these in its place (see
// namedServers). A lookup that joined an identical one already under way
// (the resolver merges them) dials nothing itself and sees none.
type dnsAsked struct {
	mu      sync.Mutex
	servers []string
}

type dnsAskedKey struct{}

func (a *dnsAsked) note(srv string) {
	a.mu.Lock()
	if !slices.Contains(a.servers, srv) {
		a.servers = append(a.servers, srv)
	}
	a.mu.Unlock()
}

// namedServers puts the configured servers the lookup asked in a resolver
// error, in place of the resolv.conf address Go names there, which was
// never asked; or of none, when the lookup ran out of time. A lookup that
// saw no dial of its own names every configured server when Go named one.
func (d *dialer) namedServers(err error, asked *dnsAsked) error {
	var de *net.DNSError
	if len(d.servers) == 0 || !errors.As(err, &de) {
		return err
	}
	// In the configured order: the A and AAAA queries dial concurrently.
	var servers []string
	asked.mu.Lock()
	for _, s := range d.servers {
		if slices.Contains(asked.servers, s) && !slices.Contains(servers, s) {
			servers = append(servers, s)
		}
	}
	asked.mu.Unlock()
	if len(servers) == 0 {
		if de.Server == "" {
			return err
		}
		servers = d.servers
	}
	// A copy: the resolver hands one error to every lookup it merged.
	c := *de
	c.Server = strings.Join(servers, ", ")
	return &c
}

// lookup is the tap's timed DNS lookup of host for network ("ip", "ip4",
// "ip6"), classified; callers answer hosts overrides and IP literals first.
func (d *dialer) lookup(ctx context.Context, ex *exchange, host, network string) ([]netip.Addr, error) {
	start := d.now()
	ctx, cancel := context.WithTimeout(ctx, d.dnsTimeout)
	asked := new(dnsAsked)
	if len(d.servers) > 0 {
		ctx = context.WithValue(ctx, dnsAskedKey{}, asked)
	}
	ips, err := d.resolver.LookupNetIP(ctx, network, host)
	cancel()
	if ex != nil {
		ex.noteDNS(d.now().Sub(start))
	}
	if err != nil {
		err = d.namedServers(err, asked)
		if f := tapFailure(rules.DNSFailure, "looking up "+host, err); f != nil {
			return nil, f
		}
		return nil, newFailure(classifyDNS(err), err)
	}
	if len(ips) == 0 {
		return nil, newFailure(rules.DNSNXDomain, errors.New("lookup "+host+": no addresses"))
	}
	return ips, nil
}

// resolve returns the addresses for host, honouring hosts overrides first.
func (d *dialer) resolve(ctx context.Context, ex *exchange, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip.Unmap()}, nil
	}
	if ip, ok := d.hosts[host]; ok {
		return []netip.Addr{ip}, nil
	}
	return d.lookup(ctx, ex, host, "ip")
}

// dialAddrs connects to the first address that answers within the connect
// timeout, trying at most a few so a dead AAAA record cannot eat the budget.
func (d *dialer) dialAddrs(ctx context.Context, ex *exchange, ips []netip.Addr, port int) (*net.TCPConn, error) {
	start := d.now()
	ctx, cancel := context.WithTimeout(ctx, d.connectTimeout)
	defer cancel()
	var (
		last  error
		tried netip.Addr // the address whose failure is reported
	)
	for i, ip := range ips {
		ip = ip.Unmap()
		if i == 4 {
			break
		}
		if d.self != nil && d.self(ip, port) {
			if ex != nil {
				ex.noteConnect(d.now().Sub(start), netip.Addr{})
			}
			return nil, newFailure(rules.Denied, errors.New("request targets the tap itself: "+
				netip.AddrPortFrom(ip, uint16(port)).String()+" is one of its own listeners"))
		}
		var nd net.Dialer
		c, err := nd.DialContext(ctx, "tcp", netip.AddrPortFrom(ip, uint16(port)).String())
		if err == nil {
			if ex != nil {
				var dest netip.Addr
				if ex.route != RouteParent {
					// dest_ip is the destination's address; through a
					// parent the tap never learns it.
					dest = ip
					d.dests.remember(ex.host, port, ip)
				}
				ex.noteConnect(d.now().Sub(start), dest)
			}
			return c.(*net.TCPConn), nil
		}
		last, tried = err, ip
		if ctx.Err() != nil {
			break
		}
		if f := tapFailure(rules.ConnectUnreachable, "dialing "+netip.AddrPortFrom(ip, uint16(port)).String(), err); f != nil {
			// Another address would fail the same way.
			if ex != nil {
				ex.noteConnect(d.now().Sub(start), netip.Addr{})
			}
			return nil, f
		}
	}
	if ex != nil {
		// A failed connect names the address it tried: the ExpressRoute
		// remedy compares it with the circuit's routes (issue 13).
		// Through a parent, the address is the parent's, not the
		// destination's, and is not dest_ip.
		var dest netip.Addr
		if ex.route != RouteParent {
			dest = tried
		}
		ex.noteConnect(d.now().Sub(start), dest)
	}
	return nil, newFailure(classifyDial(last), last)
}

// dialDirect resolves and connects to host:port.
func (d *dialer) dialDirect(ctx context.Context, ex *exchange, host string, port int) (*net.TCPConn, error) {
	ips, err := d.resolve(ctx, ex, host)
	if err != nil {
		return nil, err
	}
	return d.dialAddrs(ctx, ex, ips, port)
}

// dialParent connects to the parent proxy itself. Any failure to reach it is
// parent_unreachable: from the client's side the proxy path is what broke.
func (d *dialer) dialParent(ctx context.Context, ex *exchange) (*net.TCPConn, error) {
	p := d.parent
	if ex != nil && ex.parent != nil {
		p = ex.parent // the PAC's choice
	}
	host, portStr, _ := net.SplitHostPort(p.addr)
	port, _ := strconv.Atoi(portStr)
	c, err := d.dialDirect(ctx, ex, strings.ToLower(host), port)
	if err != nil && ex != nil && ctx.Err() == nil {
		if next := ex.srv.failover(ex); next != nil {
			// pac.failover: the PAC's next proxy, as a browser tries it.
			ex.parent, ex.pacFailedOver = next, true
			return d.dialParent(ctx, ex)
		}
	}
	if err != nil {
		var f *failure
		if errors.As(err, &f) {
			f.outcome = rules.ParentUnreachable
			if !isTapFault(f.err) {
				f.status = clientStatus(rules.ParentUnreachable)
			}
		}
		return nil, err
	}
	return c, nil
}

// connectViaParent opens a tunnel to target through the parent proxy. It is
// written here rather than taken from goproxy because goproxy's version loses
// the parent's status code and waits for the answer without a deadline.
// Bytes the parent sent right behind its 200 belong to the tunnel and are
// returned as early.
func (d *dialer) connectViaParent(ctx context.Context, ex *exchange, target string) (c *net.TCPConn, early []byte, err error) {
	c, err = d.dialParent(ctx, ex)
	if err != nil {
		return nil, nil, err
	}
	start := d.now()
	deadline := start.Add(d.headerTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = c.SetDeadline(deadline)
	var b strings.Builder
	b.Grow(128)
	b.WriteString("CONNECT ")
	b.WriteString(target)
	b.WriteString(" HTTP/1.1\r\nHost: ")
	b.WriteString(target)
	b.WriteString("\r\n\r\n")
	if _, err := c.Write([]byte(b.String())); err != nil {
		c.Close()
		return nil, nil, newFailure(classifyParentIO(err), err)
	}
	br := bufio.NewReaderSize(c, 1024)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		c.Close()
		return nil, nil, newFailure(classifyParentIO(err), errors.New("parent proxy: reading CONNECT answer: "+err.Error()))
	}
	if ex != nil {
		ex.upstreamStatus = resp.StatusCode
	}
	if resp.StatusCode != http.StatusOK {
		c.Close()
		f := &failure{
			upstream: resp.StatusCode,
			err:      errors.New("parent proxy answered CONNECT with " + resp.Status),
		}
		if resp.StatusCode == http.StatusProxyAuthRequired {
			f.outcome, f.status = rules.ParentAuthRequired, http.StatusProxyAuthRequired
			f.proxyAuthenticate = resp.Header.Values("Proxy-Authenticate")
		} else {
			// A parent's own refusal (403 by policy, 502 when it cannot reach
			// the origin) is passed on as it was given.
			f.outcome, f.status = rules.HTTPError, resp.StatusCode
		}
		return nil, nil, f
	}
	_ = c.SetDeadline(time.Time{})
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		early = append([]byte(nil), b...)
	}
	return c, early, nil
}

// classifyParentIO maps an I/O error while talking to the parent after the
// TCP connection was up.
func classifyParentIO(err error) rules.Outcome {
	switch {
	case isTimeout(err):
		return rules.ResponseTimeout
	case isReset(err):
		return rules.ConnectionReset
	}
	return rules.ParentUnreachable
}

// Resolver answers lookups as the tap's dialer resolves: hosts overrides
// first, then dns.servers (or the system's resolver). The PAC's DNS
// helpers use it, so a PAC sees the names the tap sees.
type Resolver struct {
	r     *net.Resolver
	hosts map[string]netip.Addr
}

// NewResolver builds a Resolver from Options' DNSServers and Hosts.
func NewResolver(servers []string, hosts map[string]netip.Addr) *Resolver {
	return &Resolver{r: newResolver(servers), hosts: hosts}
}

// LookupNetIP is net.Resolver's, after the hosts overrides. network is
// "ip", "ip4" or "ip6".
func (r *Resolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if ip, ok := r.hosts[strings.TrimSuffix(strings.ToLower(host), ".")]; ok {
		if network == "ip" || ip.Is4() == (network == "ip4") {
			return []netip.Addr{ip}, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return r.r.LookupNetIP(ctx, network, host)
}
