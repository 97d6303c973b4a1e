package pac

import (
	"context"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestChromiumTakesTheEnginesRoute gives headless Chromium a PAC served on
// loopback and two parent proxies on loopback, loads a page whose images
// are the URLs under test, and checks that each request reached the hop
// the engine decides for it: parent A, parent B, or (DIRECT) the origin,
// to which --host-resolver-rules maps the direct names. The PAC uses no
// DNS helper and no myIpAddress(): Chromium would answer those from its
// own resolver and address, not the ones the engine is given.
func TestChromiumTakesTheEnginesRoute(t *testing.T) {
	bin := needChromium(t)
	parentA, parentB, origin := newRecorder("parent-a"), newRecorder("parent-b"), newRecorder("origin")
	for _, r := range []*recorder{parentA, parentB, origin} {
		defer r.srv.Close()
	}
	pacSrc := fmt.Sprintf(`function FindProxyForURL(url, host) {
		var a = "PROXY %s", b = "PROXY %s";
		if (host == "start.test") return a;
		if (dnsDomainIs(host, ".office.com") || localHostOrDomainIs(host, "direct.test")) return "DIRECT";
		if (shExpMatch(host, "*.msftconnecttest.com")) return b;
		if (shExpMatch(url, "http://*/b-path/*")) return b;
		if (url.substring(0, 6) == "https:" && dnsDomainIs(host, ".office365.com")) return b;
		if (isPlainHostName(host)) return "DIRECT";
		return a;
	}`, parentA.addr, parentB.addr)
	pacServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/x-ns-proxy-autoconfig")
		_, _ = w.Write([]byte(pacSrc))
	}))
	defer pacServer.Close()

	urls := []string{
		"http://www.office.com/img.gif",
		"http://direct.test/img.gif",
		"http://www.msftconnecttest.com/connecttest.txt",
		"http://files.example.org/b-path/img.gif",
		"http://files.example.org/a-path/img.gif",
		"https://outlook.office365.com/img.gif",
		"https://login.microsoftonline.com/img.gif",
		"http://other.example/img.gif",
	}
	var page strings.Builder
	page.WriteString("<!doctype html><title>pac</title>")
	for _, u := range urls {
		fmt.Fprintf(&page, `<img src="%s">`, html.EscapeString(u))
	}
	parentA.mu.Lock()
	parentA.page = page.String()
	parentA.mu.Unlock()

	s, err := Compile("chromium.pac", []byte(pacSrc))
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(s, Options{CacheTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	// What a hop sees: host and path of a plain request, the host alone of
	// a tunnel.
	key := func(tg Target) string {
		if tg.URL != nil {
			return tg.Host + tg.URL.Path
		}
		return tg.Host
	}
	want := map[string]string{} // key -> recorder name
	for _, raw := range urls {
		tg := targetFor(t, raw)
		tg.Client = netip.MustParseAddr("127.0.0.1")
		d, err := e.FindProxy(context.Background(), tg)
		if err != nil || len(d.Hops) == 0 {
			t.Fatalf("%s: %+v %v", raw, d, err)
		}
		switch d.Hops[0].Addr() {
		case "":
			want[key(tg)] = origin.name
		case parentA.addr:
			want[key(tg)] = parentA.name
		case parentB.addr:
			want[key(tg)] = parentB.name
		default:
			t.Fatalf("%s: engine chose %s", raw, d.Hops[0])
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync", "--user-data-dir="+t.TempDir(),
		"--proxy-pac-url="+pacServer.URL+"/proxy.pac",
		"--host-resolver-rules=MAP www.office.com "+origin.addr+", MAP direct.test "+origin.addr+", MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
		"--virtual-time-budget=10000", "--dump-dom", "http://start.test/")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "<title>pac</title>") {
		t.Fatalf("chromium did not load the page through parent A:\n%s", out)
	}
	got := map[string][]string{}
	for _, r := range []*recorder{parentA, parentB, origin} {
		for _, h := range r.hosts() {
			got[h] = append(got[h], r.name)
		}
	}
	for k, name := range want {
		if len(got[k]) != 1 || got[k][0] != name {
			t.Errorf("%s: the engine decides %s, Chromium went to %v", k, name, got[k])
		}
	}
	// Each hop was used: the PAC's branches all ran in Chromium.
	for _, r := range []*recorder{parentA, parentB, origin} {
		if len(r.hosts()) == 0 {
			t.Errorf("%s saw no request", r.name)
		}
	}
}

// recorder is a parent proxy (or origin) that notes the host of every
// request: the CONNECT target, or the Host of a plain request. As a proxy
// it answers plain requests itself and refuses tunnels: what matters is
// where the request arrived, not the answer.
type recorder struct {
	name, addr string
	srv        *httptest.Server
	page       string
	mu         sync.Mutex
	seen       map[string]bool
}

func newRecorder(name string) *recorder {
	r := &recorder{name: name, seen: map[string]bool{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		host := req.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		k := host
		if req.Method != http.MethodConnect {
			k += req.URL.Path
		}
		r.mu.Lock()
		r.seen[k] = true
		r.mu.Unlock()
		switch {
		case req.Method == http.MethodConnect:
			http.Error(w, "no tunnels here", http.StatusForbidden)
		case host == "start.test":
			r.mu.Lock()
			page := r.page
			r.mu.Unlock()
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte(page))
		default:
			w.Header().Set("Content-Type", "image/gif")
			_, _ = w.Write([]byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;"))
		}
	}))
	r.addr = r.srv.Listener.Addr().String()
	return r
}

func (r *recorder) hosts() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for h := range r.seen {
		if !strings.HasPrefix(h, "start.test") {
			out = append(out, h)
		}
	}
	return out
}

func needChromium(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is not installed; .ci/run installs it")
		}
		t.Skip("chromium is not installed (apt-get install chromium); with CI set this fails instead")
	}
	return bin
}
