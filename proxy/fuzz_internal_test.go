package proxy

import (
	"bufio"
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

// Target modes of FuzzSplitTarget: how the fuzzed host[:port] reaches
// splitTarget, the way each kind of request hands it over.
const (
	targetConnect    = iota // splitTarget(s, 0), as for a CONNECT target
	targetDefault           // splitTarget(s, 80), as for an http:// URL's host
	targetConnectReq        // s as the target of a CONNECT request line
	targetURLReq            // s as the host of an absolute http:// request target
	targetModes
)

// FuzzSplitTarget feeds CONNECT targets and URL hosts through splitTarget,
// directly and through net/http's request parser as the tap receives them.
// Whatever it accepts must be normalised: a non-empty lower-case host
// without a trailing dot, spaces, controls, '/' or '@', a colon only in an
// IPv6 literal, a port in 1..65535; and normalising again changes nothing.
func FuzzSplitTarget(f *testing.F) {
	f.Add("login.microsoftonline.com:443", uint8(targetConnect))
	f.Add("LOGIN.MicrosoftOnline.COM.:443", uint8(targetConnect))
	f.Add("[::1]:443", uint8(targetConnect))
	f.Add("[fe80::1%25eth0]:443", uint8(targetURLReq))
	f.Add("www.msftconnecttest.com", uint8(targetDefault))
	f.Add("example.test:0", uint8(targetConnectReq))
	f.Add("a]b:80", uint8(targetDefault))
	f.Add("user@host:443", uint8(targetURLReq))
	f.Fuzz(func(t *testing.T, target string, mode uint8) {
		var (
			host string
			port int
			err  error
		)
		switch mode % targetModes {
		case targetConnect:
			host, port, err = splitTarget(target, 0)
		case targetDefault:
			host, port, err = splitTarget(target, 80)
		case targetConnectReq:
			r, rerr := http.ReadRequest(bufio.NewReader(strings.NewReader("CONNECT " + target + " HTTP/1.1\r\nHost: x\r\n\r\n")))
			if rerr != nil {
				return
			}
			host, port, err = splitTarget(r.URL.Host, 0)
		case targetURLReq:
			r, rerr := http.ReadRequest(bufio.NewReader(strings.NewReader("GET http://" + target + "/ HTTP/1.1\r\nHost: x\r\n\r\n")))
			if rerr != nil || !r.URL.IsAbs() || r.URL.Host == "" {
				return
			}
			host, port, err = splitTarget(r.URL.Host, 80)
		}
		if err != nil {
			return
		}
		if port < 1 || port > 65535 {
			t.Fatalf("%q: port %d", target, port)
		}
		if host == "" || host != strings.ToLower(host) || strings.HasSuffix(host, ".") {
			t.Fatalf("%q: host %q is not normalised", target, host)
		}
		for i := 0; i < len(host); i++ {
			if c := host[i]; c <= ' ' || c == 0x7f || c == '/' || c == '@' || c == '[' || c == ']' {
				t.Fatalf("%q: host %q has byte %q", target, host, c)
			}
		}
		if strings.Contains(host, ":") {
			if ip, perr := netip.ParseAddr(host); perr != nil || !ip.Is6() {
				t.Fatalf("%q: host %q has a colon but is no IPv6 literal", target, host)
			}
		}
		h2, p2, err := splitTarget(hostPortString(host, port), 0)
		if err != nil || h2 != host || p2 != port {
			t.Fatalf("%q: %q %d normalises again to %q %d (%v)", target, host, port, h2, p2, err)
		}
	})
}
