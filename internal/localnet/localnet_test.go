package localnet

import (
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"testing"
)

// TestNetworksAgreeWithIP compares Networks with an independent reading of
// the same kernel state: iproute2's `ip -o addr show up` (Debian package
// iproute2). Every network it lists is in Networks, and Networks holds
// nothing but those and the loopback networks.
func TestNetworksAgreeWithIP(t *testing.T) {
	path, err := exec.LookPath("ip")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("ip (Debian package iproute2) is not installed")
		}
		t.Skip("ip (Debian package iproute2) is not installed")
	}
	out, err := exec.Command(path, "-o", "addr", "show", "up").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(Loopback)
	for _, m := range regexp.MustCompile(`\binet6? ([0-9a-f.:]+/\d+)`).FindAllStringSubmatch(string(out), -1) {
		p, err := netip.ParsePrefix(m[1])
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, p.Masked())
	}
	got, err := Networks()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range want {
		if !slices.Contains(got, p) {
			t.Errorf("ip lists %s, Networks does not: %v", p, got)
		}
	}
	for _, p := range got {
		if !slices.Contains(want, p) {
			t.Errorf("Networks has %s, which ip does not list: %v", p, want)
		}
	}
	for _, p := range Loopback {
		if !slices.Contains(got, p) {
			t.Errorf("no %s in %v", p, got)
		}
	}
}
