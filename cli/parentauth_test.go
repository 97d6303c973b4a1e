package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/m365tap/m365tap/config"
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

	// sspi is refused by Validate off Windows; built by hand it still fails cleanly.
	cfg := load(t, "    clients: false\n")
	cfg.Parent.Auth.Scheme = "sspi"
	if _, err := parentAuth(cfg); err == nil || (!errors.Is(err, errors.ErrUnsupported) && !strings.Contains(err.Error(), "sspi")) {
		t.Errorf("sspi: %v", err)
	}
}
