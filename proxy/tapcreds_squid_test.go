package proxy_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/m365tap/m365tap/internal/testnet"
	"github.com/m365tap/m365tap/internal/testsquid"
	"github.com/m365tap/m365tap/proxy"
	"github.com/m365tap/m365tap/proxyauth"
)

// TestTapCredentialsSquid: the tap's own credentials (parent.auth) against
// a real Squid that offers Negotiate (Kerberos, from a real KDC), NTLM
// (verified NTLMv2) and Basic. The active probe's TLS check goes through
// with each; its NCSI web check is asked first without credentials, as
// NCSI does, and says that it passes only with them; and a credential Squid
// refuses is sent once, never again.
func TestTapCredentialsSquid(t *testing.T) {
	svc := testsquid.User{Name: "svc-tap", Password: "Svc-pw-9"}
	kdc := testsquid.StartKDC(t)
	kdc.AddUser(svc.Name, svc.Password)
	probe := probeOrigin(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "Microsoft Connect Test") })
	probeIP := netip.MustParseAddrPort(probe.Listener.Addr().String()).Addr()
	ca := testnet.NewCA(t)
	origin := tlsOrigin443(t, ca, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), 0, "login.microsoftonline.com")
	originIP := netip.MustParseAddrPort(origin.Listener.Addr().String()).Addr()
	const parentName = "proxy.corp.test"
	squid := testsquid.Start(t, testsquid.Options{
		Auth: testsquid.AuthAll, Users: []testsquid.User{svc}, KDC: kdc, SPN: "HTTP/" + parentName,
		Hosts: map[string]string{"www.msftconnecttest.com": probeIP.String(), "login.microsoftonline.com": originIP.String()},
	})
	ccache := kdc.Kinit(svc.Name, svc.Password)
	parent, _ := url.Parse("http://" + net.JoinHostPort(parentName, squid.Port()))

	kerberos, err := proxyauth.NewNegotiate(proxyauth.NegotiateOptions{SPN: "HTTP/" + parentName, Krb5Conf: kdc.Conf, CCache: ccache})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		client proxyauth.Client
		scheme string
	}{
		{"ntlm", proxyauth.NewNTLM("CORP", svc.Name, svc.Password, ""), "ntlm"},
		{"kerberos", kerberos, "negotiate"},
		{"basic", proxyauth.NewBasic(svc.Name, svc.Password), "basic"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mark := squid.Mark(t)
			h := newHarness(t, proxy.Options{Parent: parent, ParentAuth: tc.client,
				Hosts: map[string]netip.Addr{parentName: netip.MustParseAddr("127.0.0.1")}})
			web := h.srv.Check(context.Background(), proxy.Check{Kind: proxy.CheckWeb, Host: "www.msftconnecttest.com", Port: 80, Path: "/connecttest.txt", Route: proxy.RouteParent})
			if web.Outcome.String() != "parent_auth_required" || web.Cause == nil || web.Cause.ID.String() != "ncsi-no-internet" {
				t.Errorf("NCSI check: %s %v %q", web.Outcome, web.Cause, web.Err)
			}
			if !strings.Contains(web.Err, "passes") || !strings.Contains(web.Err, "cannot answer a 407") {
				t.Errorf("NCSI check error does not say it passes only with credentials: %q", web.Err)
			}
			tlsc := h.srv.Check(context.Background(), proxy.Check{Kind: proxy.CheckTLS, Host: "login.microsoftonline.com", Port: 443, Route: proxy.RouteParent, RootCAs: ca.Pool()})
			if tlsc.UpstreamStatus != http.StatusOK {
				t.Errorf("TLS check through the parent with %s: %s upstream %d %q", tc.name, tlsc.Outcome, tlsc.UpstreamStatus, tlsc.Err)
			}
			ev := h.waitEvents(2)
			want(t, ev[1], map[string]any{"parent_auth": "tap", "proxy_auth_scheme": tc.scheme})
			// Squid saw the CONNECT as the tap's account.
			var users []string
			for _, e := range squid.Settle(t, mark) {
				if e.Method == http.MethodConnect && e.Status == 200 {
					users = append(users, e.User)
				}
			}
			if len(users) != 1 || !strings.HasPrefix(users[0], svc.Name) {
				t.Errorf("Squid logged the tunnel as %q, want %s", users, svc.Name)
			}
		})
	}

	t.Run("refused once", func(t *testing.T) {
		mark := squid.Mark(t)
		h := newHarness(t, proxy.Options{Parent: parent, ParentAuth: proxyauth.NewNTLM("CORP", svc.Name, "wrong-password", ""),
			Hosts: map[string]netip.Addr{parentName: netip.MustParseAddr("127.0.0.1")}})
		for range 3 {
			r := h.srv.Check(context.Background(), proxy.Check{Kind: proxy.CheckTLS, Host: "login.microsoftonline.com", Port: 443, Route: proxy.RouteParent})
			if r.Outcome.String() != "parent_auth_required" {
				t.Errorf("outcome %s %q", r.Outcome, r.Err)
			}
		}
		// One handshake reached Squid (its two CONNECT legs); the next
		// checks did not offer the refused credential again.
		legs := 0
		for _, e := range squid.Settle(t, mark) {
			if e.Method == http.MethodConnect {
				legs++
			}
		}
		if legs > 2 {
			t.Errorf("Squid saw %d CONNECTs with the refused credential, want the one handshake (2 legs)", legs)
		}
	})
}
