package cli

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// pacCmdPAC sends Microsoft 365 direct, the NCSI probe to an
// authenticating proxy, the ExpressRoute "No" set of Office Online
// (*.officeapps.live.com and friends) to a proxy, breaks for one host and
// names a SOCKS hop for another.
const pacCmdPAC = `function FindProxyForURL(url, host) {
	if (host == "www.msftconnecttest.com" || host == "ipv6.msftconnecttest.com") return "PROXY auth-proxy.corp.example:3128";
	if (host == "broken.example") return undefinedHelper();
	if (host == "socks.example") return "SOCKS5 s.corp.example:1080";
	if (host == "odd.example") return "PROXY p.corp.example:8080; FTP x";
	if (dnsDomainIs(host, ".live.com") || dnsDomainIs(host, ".office.net")) return "PROXY proxy.corp.example:8080";
	if (dnsDomainIs(host, ".microsoftonline.com") || dnsDomainIs(host, ".microsoft.com") || dnsDomainIs(host, ".office.com")
		|| dnsDomainIs(host, ".office365.com") || dnsDomainIs(host, ".windows.net")) return "DIRECT";
	if (url.indexOf("/downloads/") > 0) return "PROXY files.corp.example:8080";
	return "PROXY proxy.corp.example:8080";
}`

func pacCmdConfig(t *testing.T, pacLocation, extra string) string {
	t.Helper()
	dir := t.TempDir()
	if pacLocation == "" {
		pacLocation = filepath.Join(dir, "proxy.pac")
		if err := os.WriteFile(pacLocation, []byte(pacCmdPAC), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// DNS goes to a closed loopback port: the test never asks a real resolver.
	cfg := "parent:\n  pac: " + pacLocation + "\ndns:\n  servers: [127.0.0.1:9]\n" + extra
	file := filepath.Join(dir, "m365tap.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

func runPACCmd(t *testing.T, file string, args ...string) (string, error) {
	t.Helper()
	cmd := NewPACCommand(loadFile(file))
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&bytes.Buffer{})
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.Execute()
	return out.String(), err
}

func TestPACTestURLs(t *testing.T) {
	file := pacCmdConfig(t, "", "")
	out, err := runPACCmd(t, file, "test", "--format", "json", "--client", "10.1.2.3",
		"login.microsoftonline.com", "http://files.example.org/downloads/x.zip", "https://socks.example:8443/", "broken.example", "odd.example")
	if err != nil {
		t.Fatal(err)
	}
	var rep pacTestReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := []struct{ url, route, proxy, answer string }{
		{"https://login.microsoftonline.com/", "direct", "", "DIRECT"},
		{"http://files.example.org/downloads/x.zip", "proxy", "files.corp.example:8080", "PROXY files.corp.example:8080"},
		{"https://socks.example:8443/", "unsupported", "SOCKS5 s.corp.example:1080", "SOCKS5 s.corp.example:1080"},
		{"https://broken.example/", "failed", "", ""},
		{"https://odd.example/", "proxy", "p.corp.example:8080", "PROXY p.corp.example:8080; FTP x"},
	}
	if len(rep.Rows) != len(want) {
		t.Fatalf("%d rows, want %d:\n%s", len(rep.Rows), len(want), out)
	}
	for i, w := range want {
		r := rep.Rows[i]
		if r.URL != w.url || r.Route != w.route || r.Proxy != w.proxy || r.Answer != w.answer {
			t.Errorf("row %d: %+v, want %+v", i, r, w)
		}
	}
	if !strings.Contains(rep.Rows[3].Error, "ReferenceError") || rep.Rows[4].AnswerError == "" {
		t.Errorf("errors not reported: %+v / %+v", rep.Rows[3], rep.Rows[4])
	}
	if rep.Func != "FindProxyForURL" || rep.MyIP != "10.1.2.3" || len(rep.SHA256) != 64 {
		t.Errorf("header: %+v", rep)
	}
}

func TestPACTestRequiredFindings(t *testing.T) {
	// The PAC is served over HTTP, as a WPAD server would.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(pacCmdPAC)) }))
	defer srv.Close()
	file := pacCmdConfig(t, srv.URL+"/proxy.pac", "network:\n  express_route: true\n")
	out, err := runPACCmd(t, file, "test", "--required", "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	var rep pacTestReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	var ncsi, required int
	for _, r := range rep.Rows {
		switch r.What {
		case "ncsi":
			ncsi++
			if strings.Contains(r.URL, "msftconnecttest.com/connecttest.txt") && r.Proxy != "auth-proxy.corp.example:3128" {
				t.Errorf("probe row %+v", r)
			}
		case "required":
			required++
			if strings.Contains(r.URL, "*") {
				t.Errorf("a wildcard was evaluated: %s", r.URL)
			}
		}
	}
	if ncsi < 2 || required < 20 {
		t.Errorf("%d NCSI rows, %d required rows", ncsi, required)
	}
	ids := map[string]string{}
	for _, f := range rep.Findings {
		ids[f.ID] = f.Cause
	}
	if ids["ncsi-proxy-office-direct"] != "ncsi-no-internet" || ids["expressroute-no-to-proxy"] != "expressroute-path" {
		t.Errorf("findings %v:\n%s", ids, out)
	}
	if _, ok := ids["evaluation-failed"]; ok {
		t.Errorf("no required host fails this PAC, yet: %v", rep.Findings)
	}
}

func TestPACTestTextInBothLanguages(t *testing.T) {
	for _, tc := range []struct {
		lang string
		want []string
	}{
		{"en", []string{"WAY OUT", "direct", "proxy auth-proxy.corp.example:3128", "Findings:", "ncsi-no-internet: 2 NCSI probes", "evaluation failed"}},
		{"ja", []string{"経路", "直接", "プロキシ auth-proxy.corp.example:3128", "検出事項:", "ncsi-no-internet: NCSI のプローブ 2 件", "評価に失敗", "件の URL を評価し"}},
	} {
		file := pacCmdConfig(t, "", "log:\n  language: "+tc.lang+"\n")
		out, err := runPACCmd(t, file, "test", "--required", "broken.example")
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output lacks %q:\n%s", tc.lang, w, out)
			}
		}
	}
}

func TestPACTestErrors(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.pac")
	if err := os.WriteFile(broken, []byte("function FindProxyForURL(u, h) {"), 0o600); err != nil {
		t.Fatal(err)
	}
	noPAC := filepath.Join(dir, "none.yaml")
	if err := os.WriteFile(noPAC, []byte("log:\n  language: ja\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file string
		args []string
		want string
	}{
		{noPAC, []string{"test", "a.example"}, "評価する PAC がありません"},
		{pacCmdConfig(t, broken, ""), []string{"test", "a.example"}, "PAC does not compile"},
		{pacCmdConfig(t, filepath.Join(dir, "missing.pac"), ""), []string{"test", "a.example"}, "PAC could not be fetched"},
		{pacCmdConfig(t, "", ""), []string{"test"}, "give one or more URLs"},
		{pacCmdConfig(t, "", ""), []string{"test", "ftp://a.example/"}, "want an http or https URL"},
		{pacCmdConfig(t, "", ""), []string{"test", "--client", "x", "a.example"}, "--client"},
	} {
		_, err := runPACCmd(t, tc.file, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
}
