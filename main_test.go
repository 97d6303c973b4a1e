package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/m365tap/m365tap/internal/testnet"
)

// buildTap builds the binary the README's first command runs.
func buildTap(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "m365tap")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func needCurl(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("curl is missing: .ci/run installs it")
		}
		t.Skip("curl not installed")
	}
	return p
}

// TestBinaryWithEmbeddedDefaults runs the binary with no config file, the
// way a support engineer first starts it, and pushes a plain request and an
// HTTPS tunnel through it with curl. Only the listen port (so parallel runs
// do not collide) and a hosts override (so the Microsoft name resolves to a
// loopback origin) come from the environment.
func TestBinaryWithEmbeddedDefaults(t *testing.T) {
	curl := needCurl(t)
	bin := buildTap(t)
	dir := t.TempDir()

	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "plain hello") }))
	t.Cleanup(plain.Close)
	ca := testnet.NewCA(t)
	caFile := filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, ca.PEM(), 0o600)
	tlsLn := listen443(t)
	secure := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "secure hello") }))
	secure.Listener.Close()
	secure.Listener = tlsLn
	secure.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Leaf(t, "login.microsoftonline.com")}}
	secure.StartTLS()
	t.Cleanup(secure.Close)
	originIP := netip.MustParseAddrPort(tlsLn.Addr().String()).Addr()

	cmd := exec.Command(bin)
	cmd.Dir = dir
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"M365TAP_LISTEN=127.0.0.1:0",
		"M365TAP_HOSTS=login.microsoftonline.com=" + originIP.String(),
	}
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	addr := waitListening(t, stderr)

	for _, tc := range []struct{ url, body string }{
		{plain.URL + "/", "plain hello"},
		{"https://login.microsoftonline.com/", "secure hello"},
	} {
		out, err := exec.Command(curl, "-sS", "--max-time", "10", "-x", "http://"+addr, "--cacert", caFile, tc.url).CombinedOutput()
		if err != nil || string(out) != tc.body {
			t.Fatalf("curl %s: %v: %q", tc.url, err, out)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("tap did not exit cleanly on SIGTERM: %v", err)
	}
	var msgs []string
	var exchanges []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("stdout line is not JSON: %q", line)
		}
		msgs = append(msgs, m["msg"].(string))
		if m["msg"] == "exchange" {
			exchanges = append(exchanges, m)
		}
	}
	if strings.Join(msgs, ",") != "start,exchange,exchange,report,stop" {
		t.Fatalf("records %v, want start, two exchanges, the session's report, stop (flushed on exit)", msgs)
	}
	if exchanges[0]["outcome"] != "ok" || exchanges[1]["outcome"] != "ok" || exchanges[1]["rule_id"] != "56" ||
		exchanges[1]["tls_sni"] != "login.microsoftonline.com" {
		t.Fatalf("unexpected events: %v", exchanges)
	}
}

func waitListening(t *testing.T, r io.Reader) string {
	t.Helper()
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if _, after, ok := strings.Cut(sc.Text(), " listening on "); ok {
				found <- after
			}
		}
	}()
	select {
	case a := <-found:
		return a
	case <-time.After(20 * time.Second):
		t.Fatal("tap did not report its listen address")
	}
	return ""
}

// listen443 listens on port 443 of a random 127/8 address (needs root).
func listen443(t *testing.T) net.Listener {
	for i := 0; i < 20; i++ {
		ip := netip.AddrFrom4([4]byte{127, byte(1 + rand.IntN(250)), byte(rand.IntN(256)), byte(2 + rand.IntN(250))})
		ln, err := net.Listen("tcp", netip.AddrPortFrom(ip, 443).String())
		if err == nil {
			return ln
		}
		if errors.Is(err, syscall.EACCES) {
			t.Skip("binding port 443 needs root")
		}
	}
	t.Fatal("no free address")
	return nil
}
