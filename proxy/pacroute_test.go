package proxy_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/m365tap/m365tap/internal/testnet"
	"github.com/m365tap/m365tap/pac"
	"github.com/m365tap/m365tap/proxy"
)

func pacEngine(t testing.TB, src string) *pac.Engine {
	t.Helper()
	s, err := pac.Compile("test.pac", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	e, err := pac.New(s, pac.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestPACRoutes: the tap takes the way out the PC's PAC names for each
// destination, Microsoft 365 direct and the rest through a proxy, sends the
// NCSI probe where the PAC sends it (here an authenticating proxy, which
// the probe cannot pass: ncsi-no-internet), and says in each event what the
// PAC answered.
func TestPACRoutes(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "origin") }))
	t.Cleanup(origin.Close)
	oaddr := origin.Listener.Addr().String()
	lo := netip.MustParseAddr("127.0.0.1")
	hosts := map[string]netip.Addr{"login.microsoftonline.com": lo, "www.msftconnecttest.com": lo, "intranet.example": lo}
	dial := hostsDial(hosts)
	general := testnet.NewParent(t, testnet.ParentOptions{Dial: dial})
	authing := testnet.NewParent(t, testnet.ParentOptions{Mode: testnet.ParentAuth407, User: "u", Pass: "p", Dial: dial})
	script := `function FindProxyForURL(url, host) {
		if (dnsDomainIs(host, ".microsoftonline.com")) return "DIRECT";
		if (host == "www.msftconnecttest.com") return "PROXY ` + authing.Addr() + `";
		return "PROXY ` + general.Addr() + `; DIRECT";
	}`
	fallback, _ := url.Parse("http://" + testnet.Closed(t))
	h := newHarness(t, proxy.Options{Parent: fallback, PAC: pacEngine(t, script), Hosts: hosts})
	c := h.client()
	port := port(oaddr)
	for _, u := range []string{
		"http://login.microsoftonline.com:" + port + "/",
		"http://intranet.example:" + port + "/",
		"http://www.msftconnecttest.com/connecttest.txt",
	} {
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	ev := h.waitEvents(3)
	want(t, ev[0], map[string]any{"host": "login.microsoftonline.com", "route": "direct", "pac_result": "DIRECT", "outcome": "ok"})
	want(t, ev[1], map[string]any{"host": "intranet.example", "route": "parent", "parent": general.Addr(), "outcome": "ok"})
	want(t, ev[2], map[string]any{"host": "www.msftconnecttest.com", "route": "parent", "parent": authing.Addr(),
		"outcome": "parent_auth_required", "cause_id": "ncsi-no-internet"})
	if _, ok := ev[0]["pac_ms"]; !ok {
		t.Errorf("first evaluation has no pac_ms: %v", ev[0])
	}
}

// TestPACFallbackAndFailover: an evaluation that fails routes as
// configured and says why; with pac.failover the next PROXY is tried when
// the first is down; a PAC that names the tap itself is refused, not looped.
func TestPACFallbackAndFailover(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "origin") }))
	t.Cleanup(origin.Close)
	good := testnet.NewParent(t, testnet.ParentOptions{})
	down := testnet.Closed(t)

	t.Run("broken script", func(t *testing.T) {
		h := newHarness(t, proxy.Options{PAC: pacEngine(t, `function FindProxyForURL(url, host) { return undefinedThing(); }`)})
		resp, err := h.client().Get(origin.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		ev := h.waitEvents(1)[0]
		want(t, ev, map[string]any{"route": "direct", "outcome": "ok"})
		if e, _ := ev["pac_error"].(string); !strings.Contains(e, "routed as configured") {
			t.Errorf("pac_error %q", e)
		}
	})
	t.Run("failover", func(t *testing.T) {
		h := newHarness(t, proxy.Options{PACFailover: true,
			PAC: pacEngine(t, `function FindProxyForURL(url, host) { return "PROXY `+down+`; PROXY `+good.Addr()+`"; }`)})
		resp, err := h.client().Get(origin.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("status %d", resp.StatusCode)
		}
		want(t, h.waitEvents(1)[0], map[string]any{"route": "parent", "parent": good.Addr(), "pac_failover": true, "outcome": "ok"})
	})
	t.Run("no failover", func(t *testing.T) {
		h := newHarness(t, proxy.Options{
			PAC: pacEngine(t, `function FindProxyForURL(url, host) { return "PROXY `+down+`; PROXY `+good.Addr()+`"; }`)})
		resp, err := h.client().Get(origin.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want(t, h.waitEvents(1)[0], map[string]any{"route": "parent", "parent": down, "outcome": "parent_unreachable"})
	})
	t.Run("names the tap", func(t *testing.T) {
		eng := &selfPAC{}
		h := newHarness(t, proxy.Options{PAC: eng})
		eng.addr = h.addr
		resp, err := h.client().Get(origin.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want(t, h.waitEvents(1)[0], map[string]any{"outcome": "denied"})
	})
}

// selfPAC answers PROXY with the tap's own address, known only once the
// tap listens.
type selfPAC struct{ addr string }

func (p *selfPAC) FindProxy(_ context.Context, t pac.Target) (pac.Decision, error) {
	hops, err := pac.ParseAnswer("PROXY " + p.addr)
	return pac.Decision{Answer: "PROXY " + p.addr, Hops: hops, Elapsed: time.Microsecond}, err
}

// BenchmarkPlainSmallPAC is BenchmarkPlainSmallParent with the route
// chosen by a PAC that names the same parent: the cost of a cached PAC
// decision on the request path.
func BenchmarkPlainSmallPAC(b *testing.B) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }))
	b.Cleanup(origin.Close)
	parent := testnet.NewParent(b, testnet.ParentOptions{})
	eng := pacEngine(b, `function FindProxyForURL(url, host) {
		if (dnsDomainIs(host, ".microsoftonline.com") || shExpMatch(host, "*.office.com")) return "DIRECT";
		return "PROXY `+parent.Addr()+`";
	}`)
	plainSmall(b, newHarness(b, proxy.Options{PAC: eng, Log: benchLog()}), origin.URL)
}

// TestPACProbeTargets: the active probe checks each target on the route
// the PAC names for it, through the PAC's own proxy.
func TestPACProbeTargets(t *testing.T) {
	other := testnet.NewParent(t, testnet.ParentOptions{})
	h := newHarness(t, proxy.Options{PAC: pacEngine(t, `function FindProxyForURL(url, host) {
		if (host == "www.msftconnecttest.com") return "PROXY `+other.Addr()+`";
		return "DIRECT";
	}`)})
	var ncsi, login *proxy.ProbeTarget
	targets := h.srv.ProbeTargets()
	for i := range targets {
		switch t := &targets[i]; {
		case t.Kind == proxy.CheckWeb && t.Host == "www.msftconnecttest.com" && ncsi == nil:
			ncsi = t
		case t.Kind == proxy.CheckTLS && t.Host == "login.microsoftonline.com":
			login = t
		}
	}
	if ncsi == nil || login == nil {
		t.Fatal("probe targets missing")
	}
	if ncsi.Route != proxy.RouteParent || ncsi.Parent != other.Addr() || ncsi.PACResult != "PROXY "+other.Addr() {
		t.Errorf("NCSI target: route %s parent %q pac %q", ncsi.Route, ncsi.Parent, ncsi.PACResult)
	}
	if len(ncsi.Routes) != 2 {
		t.Errorf("NCSI target routes %v, want direct and the PAC's proxy", ncsi.Routes)
	}
	if login.Route != proxy.RouteDirect || login.PACResult != "DIRECT" {
		t.Errorf("login target: route %s pac %q", login.Route, login.PACResult)
	}
	// The check through the PAC's proxy reaches it: the parent forwards
	// and the probe host (unresolvable here) fails behind it, not at the tap.
	r := h.srv.Check(context.Background(), ncsi.Check(proxy.RouteParent, nil))
	ev := h.waitEvents(1)[0]
	want(t, ev, map[string]any{"route": "parent", "parent": other.Addr()})
	_ = r
}
