package pac

import (
	"cmp"
	"context"
	"net/netip"
	"slices"
	"strings"

	"github.com/dop251/goja"
)

// The helpers are written from the descriptions of the Netscape PAC
// format (MDN, "Proxy Auto-Configuration (PAC) file") and Microsoft's
// "IPv6-aware proxy helper API definitions". Where the descriptions leave a
// case open, the behaviour of the script library that browsers and
// pacparser share was measured (see the pacparser comparison test) and
// followed, so one PAC gives one answer everywhere; each such case says so.

// install defines every helper on rt's global object. Nothing else is added
// to the runtime: no console, timers, require or I/O.
func (rt *jsrt) install() {
	vm := rt.vm
	set := func(name string, fn func(goja.FunctionCall) goja.Value) {
		if err := vm.Set(name, fn); err != nil {
			panic(err) // Set fails only for a frozen global, which a fresh runtime has not.
		}
	}
	set("isPlainHostName", rt.isPlainHostName)
	set("dnsDomainIs", rt.dnsDomainIs)
	set("localHostOrDomainIs", rt.localHostOrDomainIs)
	set("isResolvable", rt.isResolvable)
	set("isInNet", rt.isInNet)
	set("dnsResolve", rt.dnsResolve)
	set("convert_addr", rt.convertAddr)
	set("myIpAddress", rt.myIPAddress)
	set("dnsDomainLevels", rt.dnsDomainLevels)
	set("shExpMatch", rt.shExpMatch)
	set("weekdayRange", rt.weekdayRange)
	set("dateRange", rt.dateRange)
	set("timeRange", rt.timeRange)
	set("alert", rt.alert)
	set("isResolvableEx", rt.isResolvableEx)
	set("isInNetEx", rt.isInNetEx)
	set("dnsResolveEx", rt.dnsResolveEx)
	set("myIpAddressEx", rt.myIPAddressEx)
	set("sortIpAddressList", rt.sortIPAddressList)
	set("getClientVersion", rt.getClientVersion)
}

// str is argument i as JavaScript's String() would give it, "undefined"
// for a missing one, as in a script library written in JavaScript.
func str(c goja.FunctionCall, i int) string {
	return c.Argument(i).String()
}

func (rt *jsrt) bool(b bool) goja.Value { return rt.vm.ToValue(b) }

// isPlainHostName: true when host has no domain part. A colon counts as a
// domain part too, so an IPv6 literal is not a plain name.
func (rt *jsrt) isPlainHostName(c goja.FunctionCall) goja.Value {
	return rt.bool(!strings.ContainsAny(str(c, 0), ".:"))
}

// dnsDomainIs: true when host ends with domain. A plain suffix test, as
// described ("www.netscape.com" is in ".netscape.com"); ASCII case is
// ignored because DNS names are case-insensitive.
func (rt *jsrt) dnsDomainIs(c goja.FunctionCall) goja.Value {
	host, domain := str(c, 0), str(c, 1)
	return rt.bool(len(host) >= len(domain) && strings.EqualFold(host[len(host)-len(domain):], domain))
}

// localHostOrDomainIs: true when host equals hostdom exactly, or host has
// no domain part and hostdom starts with host and a dot.
func (rt *jsrt) localHostOrDomainIs(c goja.FunctionCall) goja.Value {
	host, hostdom := str(c, 0), str(c, 1)
	if strings.EqualFold(host, hostdom) {
		return rt.bool(true)
	}
	return rt.bool(!strings.Contains(host, ".") && len(hostdom) > len(host) &&
		strings.EqualFold(hostdom[:len(host)], host) && hostdom[len(host)] == '.')
}

func (rt *jsrt) isResolvable(c goja.FunctionCall) goja.Value {
	_, ok := rt.resolve4(str(c, 0))
	return rt.bool(ok)
}

// isInNet(host, pattern, mask): host (resolved when it is not an IPv4
// literal) masked with mask equals pattern masked with mask. Every
// argument that is not an IPv4 address makes it false.
func (rt *jsrt) isInNet(c goja.FunctionCall) goja.Value {
	ip, ok := rt.resolve4(str(c, 0))
	if !ok {
		return rt.bool(false)
	}
	pattern, err1 := netip.ParseAddr(str(c, 1))
	mask, err2 := netip.ParseAddr(str(c, 2))
	if err1 != nil || err2 != nil || !pattern.Is4() || !mask.Is4() {
		return rt.bool(false)
	}
	a, p, m := ip.As4(), pattern.As4(), mask.As4()
	for i := range a {
		if a[i]&m[i] != p[i]&m[i] {
			return rt.bool(false)
		}
	}
	return rt.bool(true)
}

// dnsResolve: the host's first IPv4 address as a string, or null.
func (rt *jsrt) dnsResolve(c goja.FunctionCall) goja.Value {
	ip, ok := rt.resolve4(str(c, 0))
	if !ok {
		return goja.Null()
	}
	return rt.vm.ToValue(ip.String())
}

// convert_addr: the four bytes of a dotted address as one 32-bit word. The
// word is signed (192.168.1.1 gives a negative number) because the script
// library browsers use builds it with JavaScript's 32-bit | and <<; PACs
// that compare such numbers depend on it.
func (rt *jsrt) convertAddr(c goja.FunctionCall) goja.Value {
	parts := strings.Split(str(c, 0), ".")
	var w uint32
	for i := range 4 {
		var b int64
		if i < len(parts) {
			b = jsParseInt(parts[i])
		}
		w = w<<8 | uint32(b&0xff)
	}
	return rt.vm.ToValue(int32(w))
}

// jsParseInt is parseInt for the byte strings convert_addr sees: leading
// digits, 0 (NaN & 0xff) when there are none.
func jsParseInt(s string) int64 {
	s = strings.TrimSpace(s)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimLeft(s, "+-")
	var n int64
	for i := 0; i < len(s) && s[i] >= '0' && s[i] <= '9' && n < 1<<40; i++ {
		n = n*10 + int64(s[i]-'0')
	}
	if neg {
		n = -n
	}
	return n
}

// myIpAddress: the client PC's IPv4 address (Options.MyIP, else the
// client of this evaluation), or 127.0.0.1 when neither is IPv4, as
// browsers answer when they cannot tell.
func (rt *jsrt) myIPAddress(goja.FunctionCall) goja.Value {
	for _, a := range rt.myAddrs() {
		if a.Is4() {
			return rt.vm.ToValue(a.String())
		}
	}
	return rt.vm.ToValue("127.0.0.1")
}

func (rt *jsrt) myAddrs() []netip.Addr {
	var out []netip.Addr
	if rt.e.opts.MyIP.IsValid() {
		out = append(out, rt.e.opts.MyIP.Unmap())
	}
	if c := rt.st.client; c.IsValid() && c.Unmap() != rt.e.opts.MyIP.Unmap() {
		out = append(out, c.Unmap())
	}
	return out
}

// dnsDomainLevels: the number of dots in host.
func (rt *jsrt) dnsDomainLevels(c goja.FunctionCall) goja.Value {
	return rt.vm.ToValue(strings.Count(str(c, 0), "."))
}

// shExpMatch(str, glob): a shell glob over the whole string, where *
// matches any run of characters, '/' and '.' included (path.Match stops at
// '/'), and ? matches one character. Every other character is literal.
func (rt *jsrt) shExpMatch(c goja.FunctionCall) goja.Value {
	return rt.bool(globMatch(str(c, 0), str(c, 1)))
}

// globMatch is the classic linear backtracking glob: on a mismatch, retry
// from the last star with one more character consumed. It never recurses,
// so a hostile pattern costs O(len(s)*len(p)) at worst.
func globMatch(s, p string) bool {
	si, pi := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case pi < len(p) && (p[pi] == '?' || p[pi] == s[si]):
			if p[pi] == '?' {
				// One character, not one byte: skip a whole UTF-8 sequence.
				si += utf8Len(s[si])
			} else {
				si++
			}
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

func utf8Len(b byte) int {
	switch {
	case b >= 0xf0:
		return 4
	case b >= 0xe0:
		return 3
	case b >= 0xc0:
		return 2
	}
	return 1
}

// alert passes its message to Options.Alert; without one it is dropped.
func (rt *jsrt) alert(c goja.FunctionCall) goja.Value {
	if rt.e.opts.Alert != nil {
		rt.e.opts.Alert(oneLine(str(c, 0)))
	}
	return goja.Undefined()
}

// isResolvableEx: the host resolves to an IPv6 or IPv4 address.
func (rt *jsrt) isResolvableEx(c goja.FunctionCall) goja.Value {
	return rt.bool(len(rt.resolveAll(str(c, 0))) > 0)
}

// isInNetEx(ip, prefix): the IPv6 or IPv4 address ip lies in prefix,
// "198.95.0.0/16" or "3ffe:8311:ffff::/48". ip is an address, not a name
// (a name is not resolved, as in browsers; a PAC passes dnsResolveEx's or
// myIpAddressEx's result). A bad address or prefix makes it false.
func (rt *jsrt) isInNetEx(c goja.FunctionCall) goja.Value {
	prefix, err1 := netip.ParsePrefix(strings.TrimSpace(str(c, 1)))
	ip, err2 := netip.ParseAddr(strings.TrimSpace(str(c, 0)))
	if err1 != nil || err2 != nil {
		return rt.bool(false)
	}
	return rt.bool(prefix.Masked().Contains(ip.Unmap()))
}

// dnsResolveEx: every address of host, IPv6 before IPv4 as Windows orders
// them, joined by ';'; the empty string when host does not resolve.
func (rt *jsrt) dnsResolveEx(c goja.FunctionCall) goja.Value {
	addrs := slices.Clone(rt.resolveAll(str(c, 0)))
	slices.SortStableFunc(addrs, func(a, b netip.Addr) int { return cmp.Compare(b.BitLen(), a.BitLen()) })
	return rt.vm.ToValue(joinAddrs(addrs))
}

// myIpAddressEx: every address known for the client PC, joined by ';'.
func (rt *jsrt) myIPAddressEx(goja.FunctionCall) goja.Value {
	addrs := rt.myAddrs()
	if len(addrs) == 0 {
		return rt.vm.ToValue("127.0.0.1")
	}
	return rt.vm.ToValue(joinAddrs(addrs))
}

// sortIpAddressList: the ';'-separated list sorted, IPv6 addresses first,
// each family in ascending order; false when an entry is not an address.
func (rt *jsrt) sortIPAddressList(c goja.FunctionCall) goja.Value {
	list := str(c, 0)
	if strings.TrimSpace(list) == "" {
		return rt.bool(false)
	}
	var addrs []netip.Addr
	for s := range strings.SplitSeq(list, ";") {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			return rt.bool(false)
		}
		addrs = append(addrs, a)
	}
	slices.SortFunc(addrs, func(a, b netip.Addr) int {
		if c := cmp.Compare(b.BitLen(), a.BitLen()); c != 0 {
			return c
		}
		return a.Compare(b)
	})
	return rt.vm.ToValue(joinAddrs(addrs))
}

// getClientVersion: the version of the PAC interface, "1.0" as Windows
// gives it.
func (rt *jsrt) getClientVersion(goja.FunctionCall) goja.Value {
	return rt.vm.ToValue("1.0")
}

func joinAddrs(addrs []netip.Addr) string {
	var b strings.Builder
	for i, a := range addrs {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(a.String())
	}
	return b.String()
}

// resolve4 is host's first IPv4 address: host itself when it is an IPv4
// literal, else a lookup.
func (rt *jsrt) resolve4(host string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap(), a.Unmap().Is4()
	}
	for _, a := range rt.lookup("ip4", host) {
		if a.Is4() {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// resolveAll is every address of host: host itself when it is a literal.
func (rt *jsrt) resolveAll(host string) []netip.Addr {
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")); err == nil {
		return []netip.Addr{a.Unmap()}
	}
	return rt.lookup("ip", host)
}

// lookup asks the resolver, once per (network, host) per evaluation, under
// the per-call deadline. A host that does not resolve, or not in time,
// gives no addresses: that is what the script sees on a PC whose DNS fails.
// Going over MaxLookups interrupts the evaluation (a script cannot catch
// an interrupt), because a PAC that resolves without end would hold the
// request for the whole time limit.
func (rt *jsrt) lookup(network, host string) []netip.Addr {
	if host == "" || len(host) > 253 {
		return nil
	}
	key := network + " " + strings.ToLower(host)
	if addrs, ok := rt.st.dns[key]; ok {
		return addrs
	}
	rt.st.lookups++
	if rt.st.lookups > rt.e.opts.MaxLookups {
		rt.vm.Interrupt(ErrLookups)
		return nil
	}
	addrs := rt.e.lookup(rt.st.ctx, network, host)
	if len(addrs) == 0 {
		rt.st.failedLookups++
	}
	rt.st.dns[key] = addrs
	return addrs
}

// lookup runs one resolver call under the call deadline. The call runs on
// its own goroutine so that a resolver that ignores its context cannot
// hold the evaluation past the deadline; such a goroutine ends when the
// resolver returns.
func (e *Engine) lookup(ctx context.Context, network, host string) []netip.Addr {
	ctx, cancel := context.WithTimeout(ctx, e.opts.CallTimeout)
	defer cancel()
	type result struct{ addrs []netip.Addr }
	done := make(chan result, 1)
	go func() {
		addrs, err := e.opts.Resolver.LookupNetIP(ctx, network, host)
		if err != nil {
			addrs = nil
		}
		done <- result{addrs}
	}()
	select {
	case r := <-done:
		out := r.addrs[:0:0]
		for _, a := range r.addrs {
			if a = a.Unmap(); inFamily(network, a) {
				out = append(out, a)
			}
		}
		return out
	case <-ctx.Done():
		return nil
	}
}

// inFamily reports whether a belongs to network: "ip4", "ip6", or "ip"
// for both.
func inFamily(network string, a netip.Addr) bool {
	switch network {
	case "ip4":
		return a.Is4()
	case "ip6":
		return a.Is6()
	}
	return true
}
