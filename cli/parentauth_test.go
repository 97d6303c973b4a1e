package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/m365tap/m365tap/config"
	"github.com/m365tap/m365tap/internal/testsquid"
	"github.com/m365tap/m365tap/proxyauth"
)

func TestParentAuth(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("Tap-pw-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	load := func(t *testing.T, yaml string, env ...string) *config.Config {
		t.Helper()
		f := filepath.Join(t.TempDir(), "m365tap.yaml")
		if err := os.WriteFile(f, []byte("parent:\n  url: http://proxy.corp.example:3128\n  auth:\n"+yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(config.LoadOptions{File: f, Env: append([]string{}, env...)})
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	first := func(t *testing.T, c proxyauth.Client) proxyauth.Credential {
		t.Helper()
		h, err := c.Start()
		if err != nil {
			t.Fatal(err)
		}
		v, err := h.Step(nil)
		if err != nil {
			t.Fatal(err)
		}
		return proxyauth.Inspect(v)
	}

	if c, err := parentAuth(load(t, "    clients: false\n")); c != nil || err != nil {
		t.Errorf("no scheme: %v, %v; want nil, nil", c, err)
	}
	c, err := parentAuth(load(t, "    scheme: basic\n    user: tap\n    password_file: "+pwFile+"\n"))
	if err != nil || c.Scheme() != proxyauth.SchemeBasic || first(t, c).User != "tap" {
		t.Errorf("basic: %v, %v", c, err)
	}
	h, _ := c.Start()
	if v, _ := h.Step(nil); v != "Basic dGFwOlRhcC1wdy0x" { // tap:Tap-pw-1
		t.Errorf("basic header %q", v)
	}
	c, err = parentAuth(load(t, "    scheme: ntlm\n    user: tap\n    domain: CORP\n    password_env: TAP_PW\n", "TAP_PW=x"))
	if err != nil || c.Scheme() != proxyauth.SchemeNTLM || first(t, c).NTLM != 1 {
		t.Errorf("ntlm: %v, %v", c, err)
	}
	c, err = parentAuth(load(t, "    scheme: negotiate\n    user: tap\n    password_file: "+pwFile+"\n"))
	if err != nil || c.Scheme() != proxyauth.SchemeNegotiate || first(t, c) != (proxyauth.Credential{Scheme: proxyauth.SchemeNegotiate, NTLM: 1}) {
		t.Errorf("negotiate with NTLM only: %v, %v", c, err)
	}
	_, err = parentAuth(load(t, "    scheme: negotiate\n    keytab: "+filepath.Join(dir, "missing.keytab")+"\n    krb5_conf: "+pwFile+"\n"))
	if err == nil || !strings.Contains(err.Error(), "parent.auth.scheme negotiate") || !strings.Contains(err.Error(), "missing.keytab") {
		t.Errorf("missing keytab: %v", err)
	}

	// The password file and variable are read at start: run and probe stop.
	_, err = parentAuth(load(t, "    scheme: basic\n    user: tap\n    password_file: "+filepath.Join(dir, "none")+"\n"))
	if err == nil || !strings.Contains(err.Error(), "parent.auth.password_file") {
		t.Errorf("missing password file: %v", err)
	}
	_, err = parentAuth(load(t, "    scheme: ntlm\n    user: tap\n    password_env: TAP_PW\n"))
	if err == nil || !strings.Contains(err.Error(), `parent.auth.password_env = "TAP_PW"`) {
		t.Errorf("unset password variable: %v", err)
	}
	var out, errOut bytes.Buffer
	f := filepath.Join(t.TempDir(), "m365tap.yaml")
	if err := os.WriteFile(f, []byte("listen: 127.0.0.1:0\nparent:\n  url: http://127.0.0.1:9\n  auth:\n    scheme: basic\n    user: tap\n    password_file: "+filepath.Join(dir, "none")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code := Main([]string{"--config", f, "run"}, &out, &errOut); code == 0 || !strings.Contains(errOut.String(), "parent.auth.password_file") {
		t.Errorf("run with a missing password file: exit %d, stderr %q", code, errOut.String())
	}

	// sspi is refused by Validate off Windows; built by hand it still fails cleanly.
	cfg := load(t, "    clients: false\n")
	cfg.Parent.Auth.Scheme = "sspi"
	if _, err := parentAuth(cfg); err == nil || (!errors.Is(err, errors.ErrUnsupported) && !strings.Contains(err.Error(), "sspi")) {
		t.Errorf("sspi: %v", err)
	}
}

// TestProbeWithParentAuth runs `m365tap probe` through Debian's Squid
// demanding NTLM (testsquid's verifying NTLMv2 helper): without
// parent.auth every check through the parent gets 407; with the tap's own
// NTLM credentials the required hosts pass through it and Squid logs
// the tap's user; with a wrong password they fail again.
func TestProbeWithParentAuth(t *testing.T) {
	pn := newProbeNet(t)
	hosts := pn.hostMap()
	squid := testsquid.Start(t, testsquid.Options{Auth: testsquid.AuthNTLM, Hosts: hosts,
		Users: []testsquid.User{{Name: "alice", Password: "Alice-pw-1"}}})
	dir := t.TempDir()
	right, wrong := filepath.Join(dir, "right"), filepath.Join(dir, "wrong")
	if err := os.WriteFile(right, []byte("Alice-pw-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wrong, []byte("not-Alice\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const target = "login.microsoftonline.com:443"
	requests := map[string]int{} // Squid's log lines per case
	for _, tc := range []struct {
		name   string
		auth   string
		passed bool
		user   string
	}{
		{"no credentials", "", false, ""},
		{"ntlm", "  auth:\n    scheme: ntlm\n    domain: TESTDOM\n    user: alice\n    password_file: " + right + "\n", true, "alice"},
		{"ntlm wrong password", "  auth:\n    scheme: ntlm\n    user: alice\n    password_file: " + wrong + "\n", false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := pn.config(t, "parent:\n  url: "+squid.URL().String()+"\n"+tc.auth)
			mark := squid.Mark(t)
			var out, errOut bytes.Buffer
			Main([]string{"--config", cfg, "probe", "--ca-file", pn.caFile, "--format", "json"}, &out, &errOut)
			var doc probeDoc
			if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
				t.Fatalf("%v\n%s\n%s", err, out.String(), errOut.String())
			}
			found := false
			for _, r := range doc.Rows {
				if r.Check != "tls" || r.Target != target || r.Parent == nil {
					continue
				}
				found = true
				if ok := r.Parent.Outcome == "ok"; ok != tc.passed {
					t.Errorf("%s through the parent: %+v; want passed %v", target, *r.Parent, tc.passed)
				}
				if !tc.passed && r.Parent.Outcome != "parent_auth_required" {
					t.Errorf("%s through the parent: %+v; want parent_auth_required", target, *r.Parent)
				}
			}
			if !found {
				t.Fatalf("no check of %s through the parent:\n%s", target, out.String())
			}
			var users []string
			entries := squid.Settle(t, mark)
			t.Logf("%d checks, %d requests in Squid's log", doc.Checks, len(entries))
			requests[tc.name] = len(entries)
			for _, e := range entries {
				if e.Status == http.StatusOK && e.User != "-" && e.User != "" {
					users = append(users, e.User)
				}
			}
			if tc.user == "" && len(users) > 0 {
				t.Errorf("Squid served users %q; want none", users)
			}
			if tc.user != "" && (len(users) == 0 || users[0] != tc.user) {
				t.Errorf("Squid served users %q; want %q", users, tc.user)
			}
		})
	}
	// A refused credential is not offered again on every new connection
	// (an account lockout in the making): only the handshakes already
	// under way when the first refusal came reach Squid.
	if none, wrong := requests["no credentials"], requests["ntlm wrong password"]; wrong*2 >= none {
		t.Errorf("wrong password: %d requests reached Squid, against %d without credentials; the refused credential was retried", wrong, none)
	}
}

// TestProbeWithKerberos runs `m365tap probe` with the tap's own Kerberos
// key (a keytab) through Squid accepting only Kerberos tickets for
// HTTP/proxy.corp.test, the SPN the tap derives from parent.url's host.
func TestProbeWithKerberos(t *testing.T) {
	const parentName = "proxy.corp.test"
	pn := newProbeNet(t)
	hosts := pn.hostMap()
	kdc := testsquid.StartKDC(t)
	keytab := kdc.AddService("m365tap")
	squid := testsquid.Start(t, testsquid.Options{Auth: testsquid.AuthNegotiate, KDC: kdc, SPN: "HTTP/" + parentName, Hosts: hosts})
	cfg := pn.config(t, "parent:\n  url: http://"+parentName+":"+squid.Port()+"\n"+
		"  auth:\n    scheme: negotiate\n    krb5_conf: "+kdc.Conf+"\n    keytab: "+keytab+"\n")
	// The tap reaches the parent's name through its hosts overrides.
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, bytes.Replace(b, []byte("hosts:\n"), []byte("hosts:\n  - "+parentName+"=127.0.0.1\n"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	mark := squid.Mark(t)
	var out, errOut bytes.Buffer
	Main([]string{"--config", cfg, "probe", "--ca-file", pn.caFile, "--format", "json"}, &out, &errOut)
	var doc probeDoc
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("%v\n%s\n%s", err, out.String(), errOut.String())
	}
	for _, r := range doc.Rows {
		if r.Check == "tls" && r.Target == "login.microsoftonline.com:443" && (r.Parent == nil || r.Parent.Outcome != "ok") {
			t.Errorf("through the parent: %+v\n%s", r.Parent, errOut.String())
		}
	}
	served := 0
	for _, e := range squid.Settle(t, mark) {
		if e.Status == http.StatusOK {
			served++
			if e.User != "m365tap@"+kdc.Realm {
				t.Errorf("Squid served %v; want the tap's principal", e)
			}
		}
	}
	if served == 0 {
		t.Errorf("Squid served nothing")
	}
}

// hostMap is the fixture's names as Squid's hosts file wants them.
func (pn *probeNet) hostMap() map[string]string {
	m := make(map[string]string, len(pn.hosts))
	for _, h := range pn.hosts {
		name, ip, _ := strings.Cut(h, "=")
		m[name] = ip
	}
	return m
}
