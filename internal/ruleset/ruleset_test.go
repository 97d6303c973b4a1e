package ruleset

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/m365tap/m365tap/config"
	"github.com/m365tap/m365tap/internal/testnet"
	"github.com/m365tap/m365tap/rules"
)

const ruleV1 = `rules:
  - id: corp-sso
    urls: ["sso.corp.example"]
    tcp_ports: "443"
    required: true
`

const ruleV2 = `rules:
  - id: corp-sso-v2
    urls: ["sso.corp.example", "*.idp.corp.example"]
    tcp_ports: "443"
    required: true
`

func testConfig(t *testing.T, files ...string) *config.Config {
	cfg := config.Default()
	cfg.Rules.Files = files
	cfg.Rules.Catalogue = filepath.Join(t.TempDir(), "endpoints.json")
	return &cfg
}

func winner(s *rules.Set, host string) string {
	m := s.Match(host, 443)
	if m.Rule == nil {
		return ""
	}
	return m.Rule.ID
}

// TestLoadUserRulesAndCatalogue: user rule files and inline rules join the
// embedded catalogue; a missing updated catalogue falls back to the
// embedded one, a broken one is an error naming the file.
func TestLoadUserRulesAndCatalogue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	os.WriteFile(path, []byte(ruleV1), 0o600)
	cfg := testConfig(t, path)
	cfg.Rules.User = []config.UserRule{{ID: "inline", URLs: []string{"inline.corp.example"}}}
	set, cat, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cat.Version != "2026052900" {
		t.Errorf("catalogue version %q", cat.Version)
	}
	for host, want := range map[string]string{"sso.corp.example": "corp-sso", "inline.corp.example": "inline", "login.microsoftonline.com": "56"} {
		if got := winner(set, host); got != want {
			t.Errorf("%s: winner %q, want %q", host, got, want)
		}
	}
	os.WriteFile(cfg.Rules.Catalogue, []byte("[{\"id\": 1"), 0o600)
	if _, _, err := Load(cfg); err == nil {
		t.Fatal("a broken updated catalogue was accepted")
	}
}

// TestWatchReloads: a changed rule file is picked up without a restart; a
// broken one keeps the old rules and says why.
func TestWatchReloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	os.WriteFile(path, []byte(ruleV1), 0o600)
	cfg := testConfig(t, path)
	set, _, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var cur atomic.Pointer[rules.Set]
	cur.Store(set)
	core, logs := observer.New(zap.InfoLevel)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { Watch(ctx, cfg, &cur, zap.New(core)); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	time.Sleep(100 * time.Millisecond) // let the watch start

	// Replace by rename, as editors and `rules update` do.
	tmp := path + ".tmp"
	os.WriteFile(tmp, []byte(ruleV2), 0o600)
	os.Rename(tmp, path)
	testnet.WaitFor(t, func() bool { return winner(cur.Load(), "a.idp.corp.example") == "corp-sso-v2" }, 5*time.Second)

	os.WriteFile(path, []byte("rules: [ {id: broken, urls: [\"bad host\"]} ]"), 0o600)
	testnet.WaitFor(t, func() bool { return logs.FilterMessage("rules_reload_failed").Len() > 0 }, 5*time.Second)
	if got := winner(cur.Load(), "a.idp.corp.example"); got != "corp-sso-v2" {
		t.Fatalf("broken file replaced good rules: winner %q", got)
	}
}
