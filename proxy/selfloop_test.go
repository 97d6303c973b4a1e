package proxy_test

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"testing"
	"time"

	"github.com/m365tap/m365tap/internal/testnet"
	"github.com/m365tap/m365tap/proxy"
)

// TestLoopByResolvedAddress: a name that DNS resolves to one of the tap's
// own listeners is refused (denied) for plain requests and CONNECT, not
// forwarded to the tap itself; a wildcard listener makes every local
// address the tap's own.
func TestLoopByResolvedAddress(t *testing.T) {
	dns := testnet.NewDNS(t)
	for _, tc := range []struct {
		name, listen string
		resolves     netip.Addr
	}{
		{"named listener", "127.0.0.1:0", netip.MustParseAddr("127.0.0.1")},
		{"wildcard listener", "0.0.0.0:0", netip.MustParseAddr("127.0.0.3")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", tc.listen)
			if err != nil {
				t.Fatal(err)
			}
			port := ln.Addr().(*net.TCPAddr).Port
			dns.SetA("tap-host.test", tc.resolves)
			h := newHarnessOn(t, ln, proxy.Options{DNSServers: []string{dns.Addr()}, AllowPorts: []int{port}})
			addr := "127.0.0.1:" + portString(port)

			c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: addr})}, Timeout: 5 * time.Second}
			resp, err := c.Get("http://tap-host.test:" + portString(port) + "/")
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("plain: status %d, want 403", resp.StatusCode)
			}
			conn, cresp, _ := rawConnect(t, addr, "tap-host.test:"+portString(port), nil)
			conn.Close()
			if cresp.StatusCode != http.StatusForbidden {
				t.Errorf("CONNECT: status %d, want 403", cresp.StatusCode)
			}
			for _, ev := range h.waitEvents(2) {
				want(t, ev, map[string]any{"outcome": "denied", "host": "tap-host.test"})
			}
		})
	}
}

func portString(p int) string {
	return netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(p)).String()[len("0.0.0.0:"):]
}
