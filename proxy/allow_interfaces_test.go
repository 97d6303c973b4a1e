package proxy_test

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"testing"
	"time"

	"github.com/m365tap/m365tap/internal/localnet"
	"github.com/m365tap/m365tap/internal/testnet"
	"github.com/m365tap/m365tap/proxy"
)

// TestAllowInterfaces: with access.allow's "interfaces" (localnet.Networks,
// what the container image sets), a tap on a wildcard listener serves
// clients from loopback of both families and from every address of the
// machine's own networks, as a published port's connections arrive from
// the bridge gateway; the image's former list (127.0.0.0/8,
// 172.16.0.0/12) refused ::1 and any other network.
func TestAllowInterfaces(t *testing.T) {
	nets, err := localnet.Networks()
	if err != nil {
		t.Fatal(err)
	}
	origin := testnet.NewHTTPOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	sources := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}
	ifaces, _ := net.InterfaceAddrs()
	for _, a := range ifaces {
		if ipn, ok := a.(*net.IPNet); ok {
			ip, _ := netip.AddrFromSlice(ipn.IP)
			if ip = ip.Unmap(); !ip.IsLoopback() && !ip.IsLinkLocalUnicast() {
				sources = append(sources, ip)
			}
		}
	}
	for _, tc := range []struct {
		name  string
		allow []netip.Prefix
		want  func(netip.Addr) int
	}{
		{"interfaces", nets, func(netip.Addr) int { return 200 }},
		{"the former image list", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12")},
			func(a netip.Addr) int {
				if a.Is4() && (a.IsLoopback() || netip.MustParsePrefix("172.16.0.0/12").Contains(a)) {
					return 200
				}
				return 403
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, proxy.Options{Allow: tc.allow, AllowPorts: []int{mustPort(origin.Listener.Addr().String())}})
			// A wildcard listener besides the harness's, as in the image.
			ln, err := net.Listen("tcp", "[::]:0")
			if err != nil {
				t.Fatal(err)
			}
			go h.srv.Serve(ln)
			port := ln.Addr().(*net.TCPAddr).Port
			for _, src := range sources {
				tr := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: netip.AddrPortFrom(src, uint16(port)).String()}),
					DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}).DialContext, DisableKeepAlives: true}
				resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(origin.URL)
				if err != nil {
					t.Fatalf("from %s: %v", src, err)
				}
				resp.Body.Close()
				if got := resp.StatusCode; got != tc.want(src) {
					t.Errorf("from %s: status %d, want %d", src, got, tc.want(src))
				}
			}
		})
	}
}
