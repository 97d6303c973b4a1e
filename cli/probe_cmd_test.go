package cli

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/m365tap/m365tap/internal/testnet"
	"github.com/m365tap/m365tap/proxy"
	"github.com/m365tap/m365tap/rules"
)

func serveOn(t testing.TB, ln net.Listener, h http.Handler, cfg *tls.Config) {
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes fail on purpose
	if cfg != nil {
		srv.TLS = cfg
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })
}

// probeNet is a loopback stand-in for the internet the probe checks: the
// NCSI probe hosts on port 80, every required host on 443 (one of them
// with a certificate from a CA nobody trusts), and a DNS server for the DNS
// probe. Every name the probe uses is mapped, so nothing reaches the
// system resolver.
type probeNet struct {
	dir    string
	caFile string
	dns    *testnet.DNS
	hosts  []string // NAME=IP
	// untrusted is the host whose origin presents an unknown CA's leaf.
	untrusted string
}

func newProbeNet(t *testing.T) *probeNet {
	t.Helper()
	pn := &probeNet{dir: t.TempDir(), dns: testnet.NewDNS(t), untrusted: "graph.microsoft.com"}
	ca := testnet.NewCA(t)
	pn.caFile = filepath.Join(pn.dir, "ca.pem")
	if err := os.WriteFile(pn.caFile, ca.PEM(), 0o600); err != nil {
		t.Fatal(err)
	}

	webHandler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/connecttest.txt":
			io.WriteString(w, "Microsoft Connect Test")
		case "/ncsi.txt":
			io.WriteString(w, "Microsoft NCSI")
		default:
			io.WriteString(w, "origin")
		}
	})
	web := testnet.ListenWellKnown(t, 80)
	serveOn(t, web, webHandler, nil)
	webIP := netip.MustParseAddrPort(web.Addr().String()).Addr()

	// The names the probe will check, from the same rules it uses.
	cat, err := rules.EmbeddedCatalogue()
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.Compile(cat, nil)
	if err != nil {
		t.Fatal(err)
	}
	var current atomic.Pointer[rules.Set]
	current.Store(set)
	var names []string
	for _, tg := range proxy.New(proxy.Options{Rules: &current}).ProbeTargets() {
		switch tg.Kind {
		case proxy.CheckWeb:
			pn.hosts = append(pn.hosts, tg.Host+"="+webIP.String())
		case proxy.CheckTLS:
			if tg.Host != pn.untrusted {
				names = append(names, tg.Host)
			}
		}
	}
	// And the well-known sign-in hosts the probe adds, once each: the
	// hosts config takes a name once.
	for _, h := range rules.SignInHosts() {
		if h != pn.untrusted && !slices.Contains(names, h) {
			names = append(names, h)
		}
	}
	good := testnet.ListenWellKnown(t, 443)
	serveOn(t, good, http.NotFoundHandler(), &tls.Config{Certificates: []tls.Certificate{ca.Leaf(t, names...)}})
	bad := testnet.ListenWellKnown(t, 443)
	serveOn(t, bad, http.NotFoundHandler(), &tls.Config{Certificates: []tls.Certificate{testnet.NewCA(t).Leaf(t, pn.untrusted)}})
	goodIP := netip.MustParseAddrPort(good.Addr().String()).Addr()
	// The required hosts answer plain HTTP too (CRL downloads are port 80).
	plain, err := net.Listen("tcp", netip.AddrPortFrom(goodIP, 80).String())
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, plain, webHandler, nil)
	for _, n := range names {
		pn.hosts = append(pn.hosts, n+"="+goodIP.String())
	}
	pn.hosts = append(pn.hosts, pn.untrusted+"="+netip.MustParseAddrPort(bad.Addr().String()).Addr().String())
	return pn
}

// config writes a config file with the fixture's names and extra YAML.
func (pn *probeNet) config(t *testing.T, extra string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("hosts:\n")
	for _, h := range pn.hosts {
		b.WriteString("  - " + h + "\n")
	}
	b.WriteString("dns:\n  servers: [\"" + pn.dns.Addr() + "\"]\n")
	b.WriteString("rules:\n  catalogue: " + filepath.Join(pn.dir, "no-update.json") + "\n")
	b.WriteString("log:\n  stdout: false\n  file: " + filepath.Join(pn.dir, "events.log") + "\n")
	b.WriteString(extra)
	path := filepath.Join(t.TempDir(), "m365tap.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

type probeDoc struct {
	Parent         bool `json:"parent"`
	Checks         int  `json:"checks"`
	RequiredFailed int  `json:"required_failed"`
	Passed         bool `json:"passed"`
	Rows           []struct {
		Check, Target, Required, Route string
		RuleID                         string `json:"rule_id"`
		Direct                         *struct {
			Outcome, Error string
			Upstream       int `json:"upstream_status"`
		}
		Parent *struct {
			Outcome, Error string
			Upstream       int `json:"upstream_status"`
		}
		Passed  bool
		CauseID string `json:"cause_id"`
	}
}

// TestProbeCommand runs `m365tap probe` against the fixtures as a user
// would, with table and JSON output, and checks the exit status.
func TestProbeCommand(t *testing.T) {
	pn := newProbeNet(t)
	parent := testnet.NewParent(t, testnet.ParentOptions{Mode: testnet.ParentDeny403})
	dnsRight := func() { pn.dns.SetA(proxy.NCSIDNSHost, proxy.NCSIDNSv4, proxy.NCSIDNSv6) }
	cases := []struct {
		name   string
		yaml   string
		dns    func()
		status int
		// failed counts required failures; table lines must match each regexp.
		failed int
		lines  []string
		check  func(t *testing.T, doc probeDoc)
	}{
		{
			name: "direct, one untrusted certificate", dns: dnsRight, status: 1, failed: 1,
			lines: []string{
				`(?m)^web +http://www\.msftconnecttest\.com/connecttest\.txt +ncsi-connecttest-v4 +either +ok +- +-$`,
				`(?m)^dns_a +dns\.msftncsi\.com A +- +either +ok +- +-$`,
				`(?m)^tls +login\.microsoftonline\.com:443 +56 +yes +ok +- +-$`,
				// The probe refused a certificate it was shown: what a
				// device inspecting TLS on the path causes.
				`(?m)^tls +graph\.microsoft\.com:443 +56 +yes +tls_failure +- +tls-inspection$`,
				`(?m)^  tls graph\.microsoft\.com:443, direct: tls_failure: tls: failed to verify certificate: x509: certificate signed by unknown authority`,
				// A well-known sign-in host the list names only by
				// wildcard (set 46, *.officeapps.live.com).
				`(?m)^tls +ocws\.officeapps\.live\.com:443 +46 +yes +ok +- +-$`,
				`(?m)^93 checks: 1 required check failed on the route the tap uses\.$`,
				`(?m)^tls-inspection: A device on the path presented its own certificate \(TLS inspection\), and the PC rejected it$`,
			},
		},
		{
			name: "wrong DNS probe answer without a parent", status: 1, failed: 3,
			dns: func() { pn.dns.SetA(proxy.NCSIDNSHost, netip.MustParseAddr("192.0.2.1")) },
			lines: []string{
				`(?m)^dns_a +dns\.msftncsi\.com A +- +either +probe_content_mismatch +- +ncsi-no-internet$`,
				`(?m)^dns_aaaa +dns\.msftncsi\.com AAAA +- +either +dns_nxdomain +- +ncsi-no-internet$`,
				`(?m)^  dns_a dns\.msftncsi\.com A, direct: probe_content_mismatch: dns\.msftncsi\.com A answered 192\.0\.2\.1, want 131\.107\.255\.255$`,
			},
		},
		{
			name: "blocking parent", dns: dnsRight, status: 1, failed: 89,
			yaml: "parent:\n  url: " + parent.URL().String() + "\n",
			lines: []string{
				`(?m)^web +http://www\.msftconnecttest\.com/connecttest\.txt +ncsi-connecttest-v4 +either +ok +http_error\* +ncsi-no-internet$`,
				`(?m)^web +http://www\.msftncsi\.com/ncsi\.txt +ncsi-msftncsi-v4 +no +ok +http_error\* +ncsi-no-internet$`,
				`(?m)^dns_a +dns\.msftncsi\.com A +- +no +ok\* +- +-$`,
				`(?m)^tls +login\.microsoftonline\.com:443 +56 +yes +ok +http_error\* +required-endpoint-unreachable$`,
				`(?m)^\* the route the tap sends this traffic on$`,
				`(?m)^  tls login\.microsoftonline\.com:443, through the parent proxy: http_error: parent proxy answered CONNECT with 403 Forbidden$`,
				`(?m)^ncsi-no-internet: `,
			},
			check: func(t *testing.T, doc probeDoc) {
				for _, r := range doc.Rows {
					if r.Target == "login.microsoftonline.com:443" && (r.Parent == nil || r.Parent.Upstream != 403 || r.Route != "parent" || r.Passed) {
						t.Errorf("login row %+v", r)
					}
				}
			},
		},
		{
			name: "blocking parent, probes direct", dns: dnsRight, status: 1, failed: 87,
			yaml: "parent:\n  url: " + parent.URL().String() + "\nprobes:\n  direct: true\n",
			lines: []string{
				`(?m)^web +http://www\.msftconnecttest\.com/connecttest\.txt +ncsi-connecttest-v4 +either +ok\* +http_error +ncsi-no-internet$`,
				`(?m)^tls +login\.microsoftonline\.com:443 +56 +yes +ok +http_error\* +required-endpoint-unreachable$`,
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.dns()
			cfg := pn.config(t, tc.yaml)
			events := filepath.Join(pn.dir, "events.log")
			os.Remove(events)

			var out, errOut bytes.Buffer
			code := Main([]string{"--config", cfg, "probe", "--ca-file", pn.caFile}, &out, &errOut)
			if code != tc.status {
				t.Errorf("exit status %d, want %d; stderr: %s", code, tc.status, errOut.String())
			}
			for _, re := range tc.lines {
				if !regexp.MustCompile(re).MatchString(out.String()) {
					t.Errorf("table lacks %s\n%s", re, out.String())
				}
			}
			t.Logf("table:\n%s", out.String())
			if strings.Contains(errOut.String(), "\r") {
				t.Errorf("progress written to a stderr that is not a terminal: %q", errOut.String())
			}

			out.Reset()
			errOut.Reset()
			code = Main([]string{"--config", cfg, "probe", "--ca-file", pn.caFile, "--format", "json"}, &out, &errOut)
			var doc probeDoc
			if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			if code != tc.status || doc.RequiredFailed != tc.failed || doc.Passed != (tc.failed == 0) {
				t.Errorf("json: status %d, required_failed %d, passed %v; want %d, %d", code, doc.RequiredFailed, doc.Passed, tc.status, tc.failed)
			}
			if tc.check != nil {
				tc.check(t, doc)
			}

			// Both runs logged one exchange event per check.
			f, err := os.Open(events)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			n := 0
			for sc := bufio.NewScanner(f); sc.Scan(); n++ {
				var ev map[string]any
				if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev["msg"] != "exchange" || ev["probe_check"] == nil {
					t.Fatalf("event %d: %v %s", n, err, sc.Text())
				}
			}
			if n != 2*doc.Checks {
				t.Errorf("%d events for 2 runs of %d checks", n, doc.Checks)
			}
		})
	}
}

// TestProbeCAFileFromConfig: probes.ca_file verifies the TLS checks as
// --ca-file does; only the host whose certificate another CA issued fails,
// and its event says the chain is not trusted.
func TestProbeCAFileFromConfig(t *testing.T) {
	pn := newProbeNet(t)
	pn.dns.SetA(proxy.NCSIDNSHost, proxy.NCSIDNSv4, proxy.NCSIDNSv6)
	cfg := pn.config(t, "probes:\n  ca_file: "+pn.caFile+"\n")
	var out, errOut bytes.Buffer
	code := Main([]string{"--config", cfg, "probe", "--format", "json"}, &out, &errOut)
	var doc probeDoc
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	if code != 1 || doc.RequiredFailed != 1 {
		t.Errorf("status %d, required_failed %d; want 1 and 1 (%s only)", code, doc.RequiredFailed, pn.untrusted)
	}
	data, err := os.ReadFile(filepath.Join(pn.dir, "events.log"))
	if err != nil {
		t.Fatal(err)
	}
	trusted := map[string]any{}
	for _, ev := range testnet.JSONRecords(t, strings.Split(strings.TrimSpace(string(data)), "\n"), "exchange") {
		if ev["probe_check"] == "tls" {
			trusted[ev["host"].(string)] = ev["tls_trusted"]
		}
	}
	if trusted[pn.untrusted] != false || trusted["login.microsoftonline.com"] != true {
		t.Errorf("tls_trusted: %s %v, login.microsoftonline.com %v; want false and true", pn.untrusted, trusted[pn.untrusted], trusted["login.microsoftonline.com"])
	}
}
