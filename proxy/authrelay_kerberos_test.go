package proxy_test

import (
	"slices"
	"strings"
	"testing"
)

// testRelayKerberosNaming: a Kerberos client names the service after the
// proxy it was given. Pointed at the tap by the parent's host name (mapped
// to the tap's address on the client, as a hosts entry on the PC does), it
// gets the same answer as straight to Squid; pointed at 127.0.0.1 it asks
// for HTTP/127.0.0.1, which Squid cannot accept: 407 both ways, and the
// tap's event says which service the ticket named.
func testRelayKerberosNaming(t *testing.T, e *arEnv) {
	negotiate := []string{"--proxy-negotiate", "-U", ":"}
	t.Run("named like the parent", func(t *testing.T) {
		c := curlClient(e.kdc.ClientEnv(e.aliceCC), true, negotiate, e.plainURLs("krb-named", 2))
		h, codes := e.sameThroughTap(t, c, nil)
		if !slices.Equal(codes, []int{200, 200}) {
			t.Errorf("straight to Squid: %v, want 200 200 (the fixture is broken)", codes)
		}
		for _, ev := range relayEvents(t, h, len(codes)) {
			want(t, ev, map[string]any{"outcome": "ok", "parent_auth": "relay"})
			if spn := str(ev, "proxy_auth_spn"); spn != "" && spn != arSPN {
				t.Errorf("proxy_auth_spn = %q, want %q: %v", spn, arSPN, ev)
			}
		}
	})
	t.Run("named 127.0.0.1", func(t *testing.T) {
		c := curlClient(e.kdc.ClientEnv(e.aliceCC), false, negotiate, e.plainURLs("krb-address", 1))
		h, codes := e.sameThroughTap(t, c, nil)
		if !slices.Equal(codes, []int{407}) {
			t.Errorf("straight to Squid: %v, want 407", codes)
		}
		evs := relayEvents(t, h, 1)
		ev := evs[0]
		want(t, ev, map[string]any{"outcome": "parent_auth_required", "parent_auth": "relay",
			"proxy_auth_scheme": "negotiate", "proxy_auth_spn": "HTTP/127.0.0.1"})
		if msg := str(ev, "error"); !strings.Contains(msg, "HTTP/127.0.0.1") || !strings.Contains(msg, arSPN) {
			t.Errorf("error %q should name both the ticket's service and the parent's (%s)", msg, arSPN)
		}
	})
}
