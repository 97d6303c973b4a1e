package proxy_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/m365tap/m365tap/internal/testnet"
	"github.com/m365tap/m365tap/proxy"
)

// probeOrigin serves the NCSI probe host on port 80 of a loopback address.
func probeOrigin(t *testing.T, h http.HandlerFunc) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = testnet.ListenWellKnown(t, 80)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// TestProbeVerdicts checks the NCSI web probe as Windows does, while the
// client still receives exactly what the server sent.
func TestProbeVerdicts(t *testing.T) {
	cases := []struct {
		name    string
		handler http.HandlerFunc
		parent  testnet.ParentMode
		status  int
		body    string
		outcome string
		cause   any
	}{
		{"expected text", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "Microsoft Connect Test") }, -1,
			200, "Microsoft Connect Test", "ok", nil},
		{"captive portal redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://portal.example.test/login", http.StatusFound)
		}, -1, 302, "", "probe_redirect", "ncsi-no-internet"},
		{"block page", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "<html><title>Blocked by policy</title>\x1b[31m</html>")
		}, -1, 200, "<html><title>Blocked by policy</title>\x1b[31m</html>", "probe_content_mismatch", "ncsi-no-internet"},
		{"forbidden", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", 403) }, -1,
			403, "no\n", "http_error", "ncsi-no-internet"},
		{"parent demands auth", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "Microsoft Connect Test") }, testnet.ParentAuth407,
			407, "", "parent_auth_required", "ncsi-no-internet"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			origin := probeOrigin(t, tc.handler)
			opts := proxy.Options{Hosts: hostsFor(origin.Listener.Addr().String(), "www.msftconnecttest.com")}
			if tc.parent >= 0 {
				parent := testnet.NewParent(t, testnet.ParentOptions{Mode: tc.parent, User: "u", Pass: "p",
					Dial: hostsDial(hostsFor(origin.Listener.Addr().String(), "www.msftconnecttest.com"))})
				opts.Parent, _ = url.Parse("http://" + parent.Addr())
			}
			h := newHarness(t, opts)
			req, _ := http.NewRequest("GET", "http://www.msftconnecttest.com/connecttest.txt", nil)
			req.Header.Set("User-Agent", "Microsoft NCSI")
			resp, err := h.client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.body != "" && string(body) != tc.body {
				t.Errorf("client got %q, want the server's %q unmodified", body, tc.body)
			}
			ev := h.waitEvents(1)[0]
			want(t, ev, map[string]any{"outcome": tc.outcome, "rule_id": "ncsi-connecttest-v4", "rule_source": "ncsi",
				"probe": true, "cause_id": tc.cause, "user_agent": "Microsoft NCSI"})
			if tc.outcome == "probe_content_mismatch" && ev["probe_body"] != "<html><title>Blocked by policy</title>.[31m</html>" {
				t.Errorf("probe_body = %q", ev["probe_body"])
			}
		})
	}
}

// TestProbesDirect: with probes.direct, probe traffic bypasses a parent that
// blocks everything, while other traffic still goes through it; one run
// tells a proxy problem from a network problem.
func TestProbesDirect(t *testing.T) {
	origin := probeOrigin(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "Microsoft Connect Test") })
	parent := testnet.NewParent(t, testnet.ParentOptions{Mode: testnet.ParentDeny403})
	pu, _ := url.Parse("http://" + parent.Addr())
	h := newHarness(t, proxy.Options{
		Parent:       pu,
		ProbesDirect: true,
		Hosts:        hostsFor(origin.Listener.Addr().String(), "www.msftconnecttest.com", "login.microsoftonline.com"),
	})
	c := h.client()
	for _, u := range []string{"http://www.msftconnecttest.com/connecttest.txt", "http://login.microsoftonline.com/"} {
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	ev := h.waitEvents(2)
	want(t, ev[0], map[string]any{"outcome": "ok", "route": "direct", "rule_id": "ncsi-connecttest-v4"})
	want(t, ev[1], map[string]any{"outcome": "http_error", "route": "parent", "upstream_status": 403, "rule_id": "56",
		"cause_id": "required-endpoint-unreachable"})
}
