// Package localnet reads the networks of the machine's own interfaces, for
// access.allow's "interfaces" entry: in a container those are the networks
// a published port's connections arrive from (Docker's and podman's bridge
// gateway is an address of the container's own network, and rootless
// podman's slirp4netns or pasta gateway likewise), so an image can admit
// them without knowing the runtime's addresses in advance.
//
// It is a leaf (standard library only).
package localnet

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
)

// Loopback are the loopback networks of both address families, always part
// of Networks: a client on the tap's own machine (or in its own container).
var Loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// Networks returns the networks of the addresses of every interface that is
// up, masked (192.0.2.2/24 gives 192.0.2.0/24; IPv6 link-local networks
// included), plus Loopback, sorted and without duplicates. It is read once,
// when the tap starts: an address added later is not in it.
func Networks() ([]netip.Prefix, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("reading the network interfaces: %w", err)
	}
	out := slices.Clone(Loopback)
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			return nil, fmt.Errorf("reading the addresses of %s: %w", ifc.Name, err)
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			ones, _ := ipn.Mask.Size()
			ip = ip.Unmap()
			if ip.Is4() && ones > 32 {
				ones -= 96 // a 16-byte mask of an IPv4 address
			}
			out = append(out, netip.PrefixFrom(ip.WithZone(""), ones).Masked())
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return slices.Compact(out), nil
}
