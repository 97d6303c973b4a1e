package cli

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/m365tap/m365tap/config"
	"github.com/m365tap/m365tap/internal/testnet"
)

// TestRunWithPAC runs the tap with parent.pac: a working PAC routes a
// request through the proxy it names and pac_loaded names the script; a
// PAC that does not compile is pac_failed with the article's cause, and
// the tap goes on with parent.url.
func TestRunWithPAC(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(origin.Close)
	named := testnet.NewParent(t, testnet.ParentOptions{})
	fallback := testnet.NewParent(t, testnet.ParentOptions{})
	for _, tc := range []struct {
		name, script, wantMsg, wantParent string
	}{
		{"loaded", `function FindProxyForURL(url, host) { return "PROXY ` + named.Addr() + `"; }`, "pac_loaded", named.Addr()},
		{"broken", `function FindProxyForURL(url, host) { return "DIRECT"`, "pac_failed", fallback.Addr()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			pacFile := filepath.Join(dir, "proxy.pac")
			if err := os.WriteFile(pacFile, []byte(tc.script), 0o600); err != nil {
				t.Fatal(err)
			}
			logFile := filepath.Join(dir, "events.log")
			cfgFile := filepath.Join(dir, "m365tap.yaml")
			yaml := "listen: 127.0.0.1:0\nparent:\n  url: " + fallback.URL().String() + "\n  pac: " + pacFile +
				"\nlog:\n  file: " + logFile + "\nprobes:\n  interval: 0s\ndns:\n  servers: [" + testnet.Closed(t) + "]\n"
			if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(config.LoadOptions{File: cfgFile, Env: []string{}})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var stderr testnet.Lines
			done := make(chan error, 1)
			go func() { done <- runTap(ctx, cfg, &stderr) }()
			testnet.WaitFor(t, func() bool { return strings.Contains(stderr.String(), "listening on ") }, 10*time.Second)
			addr := strings.TrimSpace(strings.SplitN(stderr.String(), "listening on ", 2)[1])
			client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: addr})}, Timeout: 10 * time.Second}
			resp, err := client.Get(origin.URL)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			testnet.WaitFor(t, func() bool { return countLines(logFile, `"msg":"exchange"`) >= 1 }, 10*time.Second)
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if countLines(logFile, `"msg":"`+tc.wantMsg+`"`) != 1 {
				data, _ := os.ReadFile(logFile)
				t.Fatalf("no %s record:\n%s", tc.wantMsg, data)
			}
			if tc.wantMsg == "pac_failed" && countLines(logFile, `"msg":"pac_failed"`, `"cause_id":"device-proxy-settings"`) != 1 {
				t.Error("pac_failed without its cause")
			}
			if countLines(logFile, `"msg":"exchange"`, `"parent":"`+tc.wantParent+`"`) != 1 {
				data, _ := os.ReadFile(logFile)
				t.Errorf("exchange not through %s:\n%s", tc.wantParent, data)
			}
		})
	}
}
