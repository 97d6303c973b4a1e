package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/m365tap/m365tap/config"
	"github.com/m365tap/m365tap/internal/testnet"
)

// multiPCs are the PCs of the multi-PC session: three source addresses on
// loopback, as three PCs of one office sending through one tap.
var multiPCs = []string{"127.0.0.11", "127.0.0.12", "127.0.0.13"}

// TestMultiPCSession records what a tap in front of three PCs sees, with
// network.express_route on: every PC's NCSI probe and graph.microsoft.com
// fail (the shared path), and one PC, which lacks the inspection CA the
// others trust, rejects the certificate of login.microsoftonline.com and
// of officeclient.microsoft.com (an ExpressRoute "No" set). The report
// must tell the shared failures from the PC's own. go test ./cli -run
// TestMultiPCSession -record writes the log to ../report/testdata, where
// the report's golden tests read it.
func TestMultiPCSession(t *testing.T) {
	pn := newProbeNet(t)
	closed := testnet.ListenWellKnown(t, 443)
	closedIP := strings.Split(closed.Addr().String(), ":")[0]
	closed.Close()
	saved := pn.hosts
	pn.hosts = nil
	for _, h := range saved {
		name := strings.SplitN(h, "=", 2)[0]
		if name == "www.msftconnecttest.com" || name == "graph.microsoft.com" {
			h = name + "=" + closedIP
		}
		pn.hosts = append(pn.hosts, h)
	}
	t.Cleanup(func() { pn.hosts = saved })
	for _, pc := range multiPCs {
		ln, err := net.Listen("tcp", pc+":0")
		if err != nil {
			t.Skipf("no loopback address %s: %v", pc, err)
		}
		ln.Close()
	}
	caPEM, err := os.ReadFile(pn.caFile)
	if err != nil {
		t.Fatal(err)
	}
	inspection := x509.NewCertPool()
	inspection.AppendCertsFromPEM(caPEM)

	dir := t.TempDir()
	logFile := filepath.Join(dir, "multi-pc.log")
	cfgFile := pn.config(t, "listen: 127.0.0.1:0\nnetwork:\n  express_route: true\n")
	cfg, err := config.Load(config.LoadOptions{File: cfgFile, Env: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Log.File = logFile

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr testnet.Lines
	done := make(chan error, 1)
	go func() { done <- runTap(ctx, cfg, &stderr) }()
	testnet.WaitFor(t, func() bool { return strings.Contains(stderr.String(), "listening on ") }, 10*time.Second)
	addr := strings.TrimSpace(strings.SplitN(stderr.String(), "listening on ", 2)[1])

	requests := 0
	for i, pc := range multiPCs {
		// The third PC lacks the inspection CA: it rejects the certificate.
		roots := inspection
		if i == 2 {
			roots = x509.NewCertPool()
		}
		ncsiGet(t, addr, pc)
		for _, host := range []string{"graph.microsoft.com", "login.microsoftonline.com", "officeclient.microsoft.com"} {
			tlsGet(t, addr, pc, host, roots)
		}
		requests += 4
	}
	testnet.WaitFor(t, func() bool { return countLines(logFile, `"msg":"exchange"`) >= requests }, 10*time.Second)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if *record {
		data, err := os.ReadFile(logFile)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("..", "report", "testdata", "multi-pc.log"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	var out, errOut bytes.Buffer
	if code := Main([]string{"--config", cfgFile, "report", "--format", "json", "--client-name", "127.0.0.13=PC-SALES-07", logFile}, &out, &errOut); code != 0 {
		t.Fatalf("report: %d %s", code, errOut.String())
	}
	var doc struct {
		PCs     int `json:"pcs"`
		Verdict []struct {
			CauseID   string   `json:"cause_id"`
			Scope     string   `json:"scope"`
			PCs       []string `json:"pcs"`
			PCsTried  int      `json:"pcs_tried"`
			Hosts     []string `json:"hosts"`
			Where     string   `json:"where"`
			Reference string   `json:"reference"`
		}
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range doc.Verdict {
		got = append(got, fmt.Sprintf("%s %s %s %d %s", v.CauseID, v.Scope, strings.Join(v.PCs, ","), v.PCsTried, strings.Join(v.Hosts, ",")))
	}
	want := []string{
		"ncsi-no-internet all_pcs 127.0.0.11,127.0.0.12,127.0.0.13 3 www.msftconnecttest.com",
		// The PC refused the inspection certificate: TLS inspection, not
		// the ExpressRoute routing its event blames for officeclient.
		"tls-inspection single_pc 127.0.0.13 3 login.microsoftonline.com,officeclient.microsoft.com",
		"required-endpoint-unreachable all_pcs 127.0.0.11,127.0.0.12,127.0.0.13 3 graph.microsoft.com",
	}
	if doc.PCs != 3 || !slices.Equal(got, want) {
		t.Errorf("pcs %d, verdict:\n%s\nwant:\n%s", doc.PCs, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(doc.Verdict) > 1 && !strings.Contains(doc.Verdict[1].Where, "fails only on PC-SALES-07 (127.0.0.13)") {
		t.Errorf("the single PC's finding does not name it: %s", doc.Verdict[1].Where)
	}
}

// ncsiGet is a PC's NCSI web probe through the tap, from source address pc.
func ncsiGet(t *testing.T, proxyAddr, pc string) {
	t.Helper()
	c := dialFrom(t, proxyAddr, pc)
	defer c.Close()
	fmt.Fprintf(c, "GET http://www.msftconnecttest.com/connecttest.txt HTTP/1.1\r\nHost: www.msftconnecttest.com\r\nUser-Agent: Microsoft NCSI\r\nConnection: close\r\n\r\n")
	io.Copy(io.Discard, c)
}

// tlsGet is Office's CONNECT and TLS handshake from source address pc,
// verifying the certificate against roots, as a PC does. TLS 1.2, so the
// certificate crosses the tap in clear.
func tlsGet(t *testing.T, proxyAddr, pc, host string, roots *x509.CertPool) {
	t.Helper()
	c := dialFrom(t, proxyAddr, pc)
	defer c.Close()
	target := host + ":443"
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: Microsoft Office/16.0\r\n\r\n", target, target)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != http.StatusOK {
		return // the tap answered for the dial; the event says why
	}
	tc := tls.Client(c, &tls.Config{ServerName: host, RootCAs: roots, MaxVersion: tls.VersionTLS12})
	if tc.Handshake() != nil {
		return // rejected: the client sent its alert
	}
	fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: %s\r\nUser-Agent: Microsoft Office/16.0\r\nConnection: close\r\n\r\n", host)
	io.Copy(io.Discard, tc)
}

func dialFrom(t *testing.T, proxyAddr, pc string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(pc)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}
