package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/m365tap/m365tap/config"
	"github.com/m365tap/m365tap/internal/testnet"
	"github.com/m365tap/m365tap/proxy"
)

var record = flag.Bool("record", false, "write the logs of TestRecordedSessions to ../report/testdata")

// countLines counts the lines of path that contain all of subs.
func countLines(path string, subs ...string) int {
	data, _ := os.ReadFile(path)
	n := 0
	for _, l := range strings.Split(string(data), "\n") {
		ok := l != ""
		for _, s := range subs {
			ok = ok && strings.Contains(l, s)
		}
		if ok {
			n++
		}
	}
	return n
}

// TestSessionReport is the repro a support engineer runs: the tap in front
// of a corporate proxy that blocks everything, NCSI probes sent direct, the
// active probe at start; a PC's probe and sign-in traffic through it; then
// Ctrl-C. The summary printed at shutdown, the "report" record, and
// `m365tap report` on the log must all name the same causes.
func TestSessionReport(t *testing.T) {
	pn := newProbeNet(t)
	pn.dns.SetA(proxy.NCSIDNSHost, proxy.NCSIDNSv4, proxy.NCSIDNSv6)
	parent := testnet.NewParent(t, testnet.ParentOptions{Mode: testnet.ParentDeny403})
	logFile := filepath.Join(pn.dir, "events.log")
	cfgFile := pn.config(t, "listen: 127.0.0.1:0\nparent:\n  url: "+parent.URL().String()+
		"\nprobes:\n  direct: true\n  interval: 1h\n  ca_file: "+pn.caFile+"\naccess:\n  ports: [80, 443]\n")
	cfg, err := config.Load(config.LoadOptions{File: cfgFile, Env: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	stderr := runSession(t, cfg, logFile, 174, []string{
		"http://www.msftconnecttest.com/connecttest.txt", // probes.direct: ok
		"https://login.microsoftonline.com/common/oauth2/authorize",
		"https://graph.microsoft.com/v1.0/me",
		"https://graph.microsoft.com/v1.0/me",
		"http://www.example.test/", // no rule
	})
	// The summary on stderr.
	summary := stderr
	for _, want := range []string{
		"m365tap session report\nExchanges: 179 (174 by the active probe), failed: 91, PCs: 1, NCSI probe requests from PCs: 1;",
		"Tap settings: listen 127.0.0.1:",
		// The blocking parent fails the NCSI probe: Windows would say no
		// internet. Only the active probe saw it: the PC's probe went direct.
		"1. ncsi-no-internet (article section 2)",
		"Where: seen only by the tap's active probe",
		"Seen: exchanges 4 (through the parent proxy 4; 4 by the active probe)",
		// graph.microsoft.com's origin has a certificate nobody trusts: the
		// probe refused it directly, as a PC refuses an inspecting
		// device's certificate.
		"2. tls-inspection (article section 1)",
		"Seen: exchanges 1 (direct 1; 1 by the active probe); hosts: graph.microsoft.com; sets: 56",
		// And every required endpoint through the parent. What the PC
		// tried and what only the probe tried are separate findings.
		"3. required-endpoint-unreachable (article section 1)",
		"Where: seen on the only PC that tried it (127.0.0.1)",
		"Seen: exchanges 5 (through the parent proxy 5; 2 by the active probe); hosts: graph.microsoft.com, login.microsoftonline.com; sets: 56",
		"4. required-endpoint-unreachable (article section 1)",
		"Seen: exchanges 80 (through the parent proxy 80; 80 by the active probe)",
		"- 81 required endpoints failed only through the parent proxy, while direct connections to them worked (account.activedirectory.windowsazure.com, ",
	} {
		if !strings.Contains(summary, want) {
			t.Errorf("summary lacks %q:\n%s", want, summary)
		}
	}
	for _, bad := range []string{"no_ncsi_probe", "No NCSI probe passed"} {
		if strings.Contains(summary, bad) {
			t.Errorf("summary says %q though a probe passed:\n%s", bad, summary)
		}
	}

	// The report record, and `m365tap report` on the same log.
	data, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	recs := testnet.JSONRecords(t, strings.Split(strings.TrimSpace(string(data)), "\n"), "report")
	if len(recs) != 1 || recs[0]["exchanges"] != float64(179) || recs[0]["ncsi_probes"] != float64(1) {
		t.Fatalf("report records %v", recs)
	}
	var out, errOut bytes.Buffer
	if code := Main([]string{"--config", cfgFile, "report", logFile}, &out, &errOut); code != 0 {
		t.Fatalf("report: %d %s", code, errOut.String())
	}
	// The collector on the live stream and the reader of the file agree.
	live := summary[strings.Index(summary, "m365tap session report\n"):]
	if out.String() != live {
		t.Errorf("report from the log differs from the summary at shutdown:\n--- log\n%s\n--- shutdown\n%s", out.String(), live)
	}
}

// runSession runs the tap with cfg until the active probe logged probes
// events and requests (made through the tap) logged theirs, then stops it as
// Ctrl-C does, and returns what it wrote to stderr.
func runSession(t *testing.T, cfg *config.Config, logFile string, probes int, requests []string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr testnet.Lines
	done := make(chan error, 1)
	go func() { done <- runTap(ctx, cfg, &stderr) }()
	testnet.WaitFor(t, func() bool { return strings.Contains(stderr.String(), "listening on ") }, 10*time.Second)
	addr := strings.TrimSpace(strings.SplitN(stderr.String(), "listening on ", 2)[1])
	// The active probe's first run: 4 web probes and 82 endpoints on each
	// route, the DNS probe direct only.
	testnet.WaitFor(t, func() bool { return countLines(logFile, `"probe_check"`) >= probes }, 30*time.Second)

	client := &http.Client{
		Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: addr}), DisableKeepAlives: true,
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		Timeout: 10 * time.Second,
	}
	const office = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0)"
	for _, u := range requests {
		if strings.HasPrefix(u, "https://") {
			fetchTLS(t, addr, u, office)
			continue
		}
		req, _ := http.NewRequest("GET", u, nil)
		req.Header.Set("User-Agent", office)
		if strings.Contains(u, "msftconnecttest") || strings.Contains(u, "msftncsi") {
			req.Header.Set("User-Agent", "Microsoft NCSI")
		}
		if resp, err := client.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	testnet.WaitFor(t, func() bool { return countLines(logFile, `"msg":"exchange"`) >= probes+len(requests) }, 10*time.Second)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return stderr.String()
}

// TestRecordedSessions runs the repros whose logs the report's golden tests
// read (go test ./cli -run TestRecordedSessions -record writes them to
// ../report/testdata), and checks the causes and facts `m365tap report`
// finds in each.
func TestRecordedSessions(t *testing.T) {
	pn := newProbeNet(t)
	blocking := testnet.NewParent(t, testnet.ParentOptions{Mode: testnet.ParentDeny403})
	auth := testnet.NewParent(t, testnet.ParentOptions{Mode: testnet.ParentAuth407, User: "corp\\alice", Pass: "right"})
	authURL := auth.URL()
	authURL.User = url.UserPassword("corp\\alice", "wrong")
	closed := testnet.ListenWellKnown(t, 443)
	closedIP := strings.Split(closed.Addr().String(), ":")[0]
	closed.Close()

	signIn := []string{
		"https://login.microsoftonline.com/common/oauth2/authorize?client_id=d3590ed6&code=secret",
		"https://graph.microsoft.com/v1.0/me",
		"https://graph.microsoft.com/v1.0/me",
		"http://crl.microsoft.com/pki/crl/products/MicRooCerAut2011_2011_03_22.crl",
		"http://www.example.test/",
	}
	probe := "http://www.msftconnecttest.com/connecttest.txt"
	cases := []struct {
		name     string
		yaml     string
		requests []string
		causes   []string
		facts    []string
	}{
		{"blocking-parent", "parent:\n  url: " + blocking.URL().String() + "\nprobes:\n  direct: true\n",
			append([]string{probe}, signIn...), []string{"required-endpoint-unreachable"}, []string{"all_required_failed"}},
		// The same PC after the engineer let the sign-in hosts bypass the
		// parent; with the first log, the report finds them failing only
		// through the parent.
		{"bypass", "parent:\n  url: " + blocking.URL().String() +
			"\n  bypass: [login.microsoftonline.com, graph.microsoft.com, crl.microsoft.com]\nprobes:\n  direct: true\n",
			append([]string{probe}, signIn...), []string{}, []string{}},
		{"no-route", "hosts_extra", signIn[:3], []string{"required-endpoint-unreachable"},
			[]string{"no_ncsi_probe", "all_required_failed"}},
		{"auth-parent", "parent:\n  url: " + authURL.String() + "\n",
			// Every required endpoint failed, but on the parent's 407: that
			// says nothing about the tap's route.
			[]string{probe, signIn[0]}, []string{"ncsi-no-internet", "device-proxy-settings"}, []string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			logFile := filepath.Join(dir, tc.name+".log")
			yaml := tc.yaml
			if yaml == "hosts_extra" {
				// Sign-in hosts at an address where nothing listens, no parent.
				yaml = ""
				saved := pn.hosts
				pn.hosts = nil
				for _, h := range saved {
					if strings.HasPrefix(h, "login.microsoftonline.com=") || strings.HasPrefix(h, "graph.microsoft.com=") {
						h = strings.SplitN(h, "=", 2)[0] + "=" + closedIP
					}
					pn.hosts = append(pn.hosts, h)
				}
				t.Cleanup(func() { pn.hosts = saved })
			}
			cfgFile := pn.config(t, "listen: 127.0.0.1:0\n"+yaml)
			cfg, err := config.Load(config.LoadOptions{File: cfgFile, Env: []string{}})
			if err != nil {
				t.Fatal(err)
			}
			cfg.Log.File = logFile
			if tc.name == "auth-parent" {
				cfg.Log.Language = "ja"
			}
			runSession(t, cfg, logFile, 0, tc.requests)

			var out, errOut bytes.Buffer
			if code := Main([]string{"report", "--format", "json", logFile}, &out, &errOut); code != 0 {
				t.Fatalf("report: %d %s", code, errOut.String())
			}
			var doc struct {
				Verdict []struct {
					CauseID string `json:"cause_id"`
				}
				Facts []struct{ ID string }
			}
			if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
				t.Fatal(err)
			}
			causes, facts := []string{}, []string{}
			for _, v := range doc.Verdict {
				causes = append(causes, v.CauseID)
			}
			for _, f := range doc.Facts {
				facts = append(facts, f.ID)
			}
			if !slices.Equal(causes, tc.causes) || !slices.Equal(facts, tc.facts) {
				t.Errorf("causes %v, facts %v; want %v, %v\n%s", causes, facts, tc.causes, tc.facts, out.String())
			}
			if *record {
				data, err := os.ReadFile(logFile)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join("..", "report", "testdata", tc.name+".log"), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func golden(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "report", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestReportCommand: files, rotated copies found beside log.file, standard
// input, formats, language, and lines that are not records.
func TestReportCommand(t *testing.T) {
	td := filepath.Join("..", "report", "testdata")
	dir := t.TempDir()
	logFile := filepath.Join(dir, "m365tap-events.log")
	data, _ := os.ReadFile(filepath.Join(td, "bypass.log"))
	os.WriteFile(logFile, data, 0o600)
	testnet.GzipFile(t, filepath.Join(td, "blocking-parent.log"), filepath.Join(dir, "m365tap-events-2026-11-24T16-48-46.500.log.gz"))
	os.WriteFile(filepath.Join(dir, "other.log"), []byte("not a record\n"), 0o600)
	cfgFile := filepath.Join(dir, "m365tap.yaml")
	os.WriteFile(cfgFile, []byte("log:\n  file: "+logFile+"\n"), 0o600)
	noCfg := filepath.Join(dir, "empty.yaml")
	os.WriteFile(noCfg, []byte("{}\n"), 0o600)
	garbage := filepath.Join(dir, "garbage.log")
	os.WriteFile(garbage, append([]byte("panic: something\n\tgoroutine 1\n"), golden(t, "no-route.log")...), 0o600)

	cases := []struct {
		name   string
		args   []string
		stdin  string
		out    string // exact output, when set
		errOut string // substring of stderr
		code   int
	}{
		{"markdown", []string{"--config", noCfg, "report", "--format", "markdown", filepath.Join(td, "no-route.log")},
			"", golden(t, "no-route.md.golden"), "", 0},
		{"log.file and its rotated copies", []string{"--config", cfgFile, "report"}, "", golden(t, "parent-then-bypass.txt.golden"), "", 0},
		{"japanese", []string{"--config", noCfg, "--language", "ja", "report", "--format", "json", filepath.Join(td, "auth-parent.log")},
			"", golden(t, "auth-parent-ja.json.golden"), "", 0},
		{"standard input", []string{"--config", noCfg, "report", "-"}, golden(t, "no-route.log"), golden(t, "no-route.txt.golden"), "", 0},
		{"lines that are not records", []string{"--config", noCfg, "report", garbage}, "", golden(t, "no-route.txt.golden"),
			"skipped 2 lines that are not JSON records", 0},
		{"bad format", []string{"--config", noCfg, "report", "--format", "yaml", logFile}, "", "",
			`invalid argument "yaml" for "--format" flag: "yaml" is not one of text, json, markdown`, 1},
		{"no file and no log.file", []string{"--config", noCfg, "report"}, "", "", "log.file is not set", 1},
		{"missing file", []string{"--config", noCfg, "report", filepath.Join(dir, "nope.log")}, "", "", "no such file", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := newRoot()
			var out, errOut bytes.Buffer
			root.SetArgs(tc.args)
			root.SetOut(&out)
			root.SetErr(&errOut)
			root.SetIn(strings.NewReader(tc.stdin))
			code := 0
			if err := root.Execute(); err != nil {
				errOut.WriteString(err.Error())
				code = 1
			}
			if code != tc.code || !strings.Contains(errOut.String(), tc.errOut) {
				t.Errorf("status %d, stderr %q; want %d, %q", code, errOut.String(), tc.code, tc.errOut)
			}
			if tc.out != "" && out.String() != tc.out {
				t.Errorf("output:\n%s\nwant:\n%s", out.String(), tc.out)
			}
		})
	}
}

// fetchTLS GETs an https URL through the tap as a browser would, and reads
// the answer to its end (the server's close_notify included) before
// closing, so the tunnel ends with FINs on both sides.
func fetchTLS(t *testing.T, proxyAddr, rawURL, userAgent string) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	target := u.Hostname() + ":443"
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n\r\n", target, target, userAgent)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != http.StatusOK {
		return // the tap answered for the parent or the dial; the event says why
	}
	tc := tls.Client(c, &tls.Config{ServerName: u.Hostname(), InsecureSkipVerify: true})
	fmt.Fprintf(tc, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\nConnection: close\r\n\r\n", u.RequestURI(), u.Hostname(), userAgent)
	io.Copy(io.Discard, tc)
}

// TestReportCompare: `report --compare A B`, each side one log or several.
func TestReportCompare(t *testing.T) {
	td := filepath.Join("..", "report", "testdata")
	noCfg := filepath.Join(t.TempDir(), "none.yaml")
	os.WriteFile(noCfg, []byte("{}\n"), 0o600)
	blocked, bypass := filepath.Join(td, "blocking-parent.log"), filepath.Join(td, "bypass.log")
	var out, errOut bytes.Buffer
	code := Main([]string{"--config", noCfg, "report", "--compare", "--label-a", "Wi-Fi, VPN", "--label-b", "wired LAN",
		blocked + "," + filepath.Join(td, "auth-parent.log"), bypass}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "Fails in Wi-Fi, VPN, works in wired LAN (4 hosts)") {
		t.Errorf("no conclusion:\n%s", out.String())
	}
	out.Reset()
	errOut.Reset()
	// --format html: one file, in the language asked for.
	if code := Main([]string{"--config", noCfg, "report", "--compare", "--format", "html", "--language", "ja", "--label-a", "Wi-Fi、VPN",
		"--label-b", "有線 LAN", blocked, bypass}, &out, &errOut); code != 0 {
		t.Fatalf("html: exit %d: %s", code, errOut.String())
	}
	if h := out.String(); !strings.HasPrefix(h, "<!DOCTYPE html>") || !strings.Contains(h, `<html lang="ja">`) ||
		!strings.Contains(h, "Wi-Fi、VPN では失敗し、有線 LAN では成功しています") {
		t.Errorf("the comparison's HTML:\n%s", h)
	}
	out.Reset()
	errOut.Reset()
	if code := Main([]string{"--config", noCfg, "report", "--compare", blocked}, &out, &errOut); code == 0 ||
		!strings.Contains(errOut.String(), "--compare needs two sessions, A and B") {
		t.Errorf("one session accepted: %d %s", code, errOut.String())
	}
}

// TestConfigErrorLanguage: a config that does not load is explained in the
// language asked for on the command line.
func TestConfigErrorLanguage(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "m365tap.yaml")
	os.WriteFile(bad, []byte("listen_adress: x\n"), 0o600)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--config", bad, "--language", "ja", "report", "x.log"}, "m365tap: 設定エラー: listen_adress という設定キーはありません。"},
		{[]string{"--config", bad, "report", "x.log"}, "m365tap: config: listen_adress: unknown key"},
	} {
		var out, errOut bytes.Buffer
		if code := Main(tc.args, &out, &errOut); code == 0 || !strings.HasPrefix(errOut.String(), tc.want) {
			t.Errorf("%v: exit %d, %q", tc.args, code, errOut.String())
		}
	}
}
