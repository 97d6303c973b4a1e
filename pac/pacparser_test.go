package pac

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The comparison test evaluates every PAC of testdata/corpus for a list of
// URLs with this package and with pacparser (Debian's python3-pacparser,
// the Mozilla script library on SpiderMonkey), and requires the same
// answer, or a failure on both sides, for each. Where the two differ by
// design the test says so instead of comparing:
//   - myIpAddress(): pacparser resolves its own host name; it is given the
//     client address the tap passes (setmyip), so both answer the same.
//   - DNS: pacparser uses the C library's resolver. It runs in a private
//     mount namespace where /etc/hosts is testdata/hosts and DNS is off;
//     the engine gets the same names from a resolver reading that file.
//   - FindProxyForURLEx: pacparser calls FindProxyForURL only; the runner
//     points FindProxyForURL at FindProxyForURLEx when the script has it,
//     as Windows prefers the Ex function.
//   - alert(): pacparser has none; the runner defines one that does nothing.
//   - size: pacparser has no size limit; the engine refuses more than
//     1 MiB as WinHTTP does (TestCompareOversized).
//   - an endless loop: pacparser never returns; the runner is killed after
//     a few seconds and that counts as a failure, as the engine's time
//     limit does.
//   - isResolvableEx: pacparser 1.3 answers true for a name that does not
//     resolve (it tests dnsResolveEx's "" against null); Microsoft
//     documents false, and so does the engine (TestHelpers). The corpus
//     asks it only about names that resolve.
//   - weekdayRange with a wrapping range (FRI..MON) is left out of the
//     corpus: pacparser 1.3 does not wrap, browsers do, and so does the
//     engine (TestTimeHelpers).

const pacparserPython = "/usr/bin/python3"

func needPacparser(t *testing.T) {
	t.Helper()
	missing := ""
	if _, err := os.Stat(pacparserPython); err != nil {
		missing = "python3 is not installed"
	} else if err := exec.Command(pacparserPython, "-c", "import pacparser").Run(); err != nil {
		missing = "the python3-pacparser module is not installed"
	} else if _, err := exec.LookPath("unshare"); err != nil {
		missing = "unshare (util-linux) is not installed"
	}
	if missing != "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s; .ci/run installs python3-pacparser", missing)
		}
		t.Skipf("%s (apt-get install python3-pacparser); with CI set this fails instead", missing)
	}
}

// hostsResolver answers from an /etc/hosts-style file, as the C library
// does when the hosts file is its only source.
type hostsResolver map[string][]netip.Addr

func loadHosts(t *testing.T, path string) hostsResolver {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := hostsResolver{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		a := netip.MustParseAddr(fields[0])
		for _, name := range fields[1:] {
			r[strings.ToLower(name)] = append(r[strings.ToLower(name)], a)
		}
	}
	return r
}

func (h hostsResolver) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, a := range h[strings.ToLower(host)] {
		if inFamily(network, a) {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no such host")
	}
	return out, nil
}

// pacparserRun evaluates src for cases with pacparser. A nil result with
// a nil error means the run was stopped after timeout.
func pacparserRun(t *testing.T, src, myIP string, cases [][2]string, timeout time.Duration) ([]map[string]string, error) {
	t.Helper()
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	dir := t.TempDir()
	nss := filepath.Join(dir, "nsswitch.conf")
	if err := os.WriteFile(nss, []byte("hosts: files\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	in, err := json.Marshal(map[string]any{"pac": src, "myip": myIP, "cases": cases})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	script := `mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/nsswitch.conf && exec "$3" "$4"`
	cmd := exec.CommandContext(ctx, "unshare", "--mount", "sh", "-c", script, "sh",
		abs("testdata/hosts"), nss, pacparserPython, abs("testdata/run_pacparser.py"))
	cmd.Stdin = bytes.NewReader(in)
	cmd.Env = append(os.Environ(), "TZ="+compareZone)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if ctx.Err() != nil {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pacparser: %v: %s", err, stderr.String())
	}
	var res []map[string]string
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, fmt.Errorf("pacparser output %q: %v", out, err)
	}
	return res, nil
}

const compareZone = "Asia/Tokyo"

// compareURLs are the URLs every PAC of the corpus is asked about: CONNECT
// targets as Windows gives them (https://host/) and plain requests with
// their full URL.
var compareURLs = []string{
	"https://login.microsoftonline.com/",
	"https://login.microsoft.com/",
	"https://outlook.office365.com/",
	"https://outlook.office.com/",
	"https://www.office.com/",
	"https://contoso.sharepoint.com/",
	"https://contoso-my.sharepoint.com/",
	"https://teams.microsoft.com/",
	"https://eu.teams.microsoft.com/",
	"https://word-edit.officeapps.live.com/",
	"https://res.cdn.office.net/",
	"https://autologon.microsoftazuread-sso.com/",
	"http://www.msftconnecttest.com/connecttest.txt",
	"http://ipv6.msftconnecttest.com/connecttest.txt",
	"http://www.msftncsi.com/ncsi.txt",
	"http://intranet/",
	"http://intranet.corp.example/home",
	"https://app.corp.example:8443/",
	"http://wiki.corp.example/a/b/c/d.html",
	"http://a.b.c.d.example.org/",
	"http://files.example.org/downloads/tool.zip",
	"http://partner.example/",
	"https://partner.example/",
	"https://nowhere.invalid/",
	"https://v6only.corp.example/",
	"http://10.1.2.3/",
	"https://192.0.2.80/",
	"http://www.example.com/",
	"https://list.example/", "https://https.example/", "https://socks.example/",
	"https://spacing.example/", "https://noport.example/", "https://throws.example/",
	"https://weekday.example/", "https://hours.example/", "https://minutes.example/",
	"https://seconds.example/", "https://hour-gmt.example/", "https://month-half.example/",
	"https://season.example/", "https://span.example/", "https://years.example/",
	"https://full.example/", "https://single.example/",
}

// compareClients are client PC addresses: a VPN pool, a branch office, an
// address above 128.0.0.0 (convert_addr goes negative) and an ordinary one.
var compareClients = map[string][]string{
	"network-branches.pac": {"10.50.1.2", "10.60.3.4", "192.168.1.10", "10.1.1.1"},
}

func TestCompareWithPacparser(t *testing.T) {
	needPacparser(t)
	zone, err := time.LoadLocation(compareZone)
	if err != nil {
		t.Fatal(err)
	}
	dns := loadHosts(t, "testdata/hosts")
	files, err := filepath.Glob("testdata/corpus/*.pac")
	if err != nil || len(files) < 9 {
		t.Fatalf("corpus: %v %v", files, err)
	}
	var cases [][2]string
	var targets []Target
	for _, raw := range compareURLs {
		tg := targetFor(t, raw)
		targets = append(targets, tg)
		cases = append(cases, [2]string{URLFor(tg), strings.ToLower(tg.Host)})
	}
	compared := 0
	distinct := map[string]bool{}
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			clients := compareClients[name]
			if clients == nil {
				clients = []string{"10.1.1.1"}
			}
			for _, client := range clients {
				ourCases, ourTargets := cases, targets
				endless := strings.Contains(name, "endless")
				if endless {
					// One loop case alone, so the others are answered by a
					// pacparser run that ends.
					ourCases, ourTargets = cases[:len(cases)-1], targets[:len(targets)-1]
				}
				if strings.Contains(name, "date-time") {
					waitOutsideMinuteEdge()
				}
				start := time.Now()
				theirs, err := pacparserRun(t, string(src), client, ourCases, 20*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				if theirs == nil {
					t.Fatal("pacparser did not finish")
				}
				ours := evalAll(t, src, client, zone, dns, start, ourTargets)
				for i := range ourCases {
					if got, want := ours[i], render(theirs[i]); got != want {
						t.Errorf("client %s, %s: engine %s, pacparser %s", client, ourCases[i][0], got, want)
					}
					compared++
					distinct[ours[i]] = true
				}
				if endless {
					loop := []Target{targetFor(t, "https://loop.example/")}
					res, err := pacparserRun(t, string(src), client, [][2]string{{"https://loop.example/", "loop.example"}}, 2*time.Second)
					if err != nil || res != nil {
						t.Errorf("pacparser answered an endless loop: %v %v", res, err)
					}
					if got := evalAll(t, src, client, zone, dns, time.Now(), loop)[0]; got != "error" {
						t.Errorf("engine answered an endless loop: %s", got)
					}
					compared++
				}
			}
		})
	}
	// A corpus whose every answer were DIRECT would compare nothing.
	if len(distinct) < 25 {
		t.Errorf("only %d distinct answers in %d decisions: %v", len(distinct), compared, distinct)
	}
	t.Logf("%d decisions compared, %d distinct answers", compared, len(distinct))
}

// TestCompareOversized: a valid PAC just over 1 MiB. pacparser evaluates
// it; the engine refuses it, as WinHTTP does, so the tap reports what the
// PC will do with it rather than what a browser on Linux would.
func TestCompareOversized(t *testing.T) {
	needPacparser(t)
	src := "function FindProxyForURL(url, host) { return \"PROXY p.corp.example:8080\"; }\n//" + strings.Repeat("x", MaxScriptSize)
	theirs, err := pacparserRun(t, src, "10.1.1.1", [][2]string{{"https://a.example/", "a.example"}}, 20*time.Second)
	if err != nil || theirs == nil {
		t.Fatalf("pacparser: %v", err)
	}
	if got := render(theirs[0]); got != "PROXY p.corp.example:8080" {
		t.Errorf("pacparser answered %s", got)
	}
	if _, err := Compile("big.pac", []byte(src)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("engine: %v, want ErrTooLarge", err)
	}
}

func targetFor(t *testing.T, raw string) Target {
	t.Helper()
	scheme, rest, _ := strings.Cut(raw, "://")
	hostport, _, _ := strings.Cut(rest, "/")
	tg := Target{Scheme: scheme, Host: hostport}
	if h, p, ok := strings.Cut(hostport, ":"); ok {
		var port int
		fmt.Sscan(p, &port)
		tg.Host, tg.Port = h, uint16(port)
	}
	if scheme == "http" {
		u, err := parseURL(raw)
		if err != nil {
			t.Fatal(err)
		}
		tg.URL = u
	}
	return tg
}

func evalAll(t *testing.T, src []byte, client string, zone *time.Location, dns Resolver, now time.Time, targets []Target) []string {
	t.Helper()
	out := make([]string, len(targets))
	s, err := Compile("corpus.pac", src)
	if err != nil {
		for i := range out {
			out[i] = "error"
		}
		return out
	}
	e, err := New(s, Options{Resolver: dns, Location: zone, Now: func() time.Time { return now },
		EvalTimeout: 500 * time.Millisecond, CacheTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	for i, tg := range targets {
		tg.Client = netip.MustParseAddr(client)
		d, err := e.FindProxy(context.Background(), tg)
		if err != nil {
			out[i] = "error"
			continue
		}
		out[i] = d.Answer
	}
	return out
}

func render(r map[string]string) string {
	if _, failed := r["error"]; failed {
		return "error"
	}
	return r["answer"]
}

// waitOutsideMinuteEdge keeps both engines' clocks in one minute: the
// corpus has rules to the minute and pacparser reads its own clock.
func waitOutsideMinuteEdge() {
	if s := time.Now().Second(); s >= 50 {
		time.Sleep(time.Duration(61-s) * time.Second)
	}
}

func parseURL(raw string) (*url.URL, error) { return url.Parse(raw) }
