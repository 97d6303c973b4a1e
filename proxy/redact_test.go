package proxy_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/m365tap/m365tap/internal/redact"
	"github.com/m365tap/m365tap/internal/redact/redacttest"
	"github.com/m365tap/m365tap/proxy"
)

// TestQuerySecretsEveryFormat is the property through the tap: for every
// sensitive key (built in, and one from access.redact_query) and every way
// of writing it that a server still reads as that key, sent in the query
// after '&' and after ';', and as a path parameter, and in a probe
// redirect's Location, the value never appears in any format (json, ecs,
// cef), written locally or shipped over syslog, while REDACTED does.
func TestQuerySecretsEveryFormat(t *testing.T) {
	out := newFormatOutputs(t)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(origin.Close)
	var location atomic.Value
	probe := probeOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, location.Load().(string), http.StatusFound)
	})
	h := newHarness(t, proxy.Options{RedactQuery: []string{"Extra_Key"}, Log: out.log,
		Hosts:      map[string]netip.Addr{"www.msftconnecttest.com": addrOf(t, probe.Listener.Addr().String())},
		AllowPorts: []int{80, portOf(t, origin.Listener.Addr().String())}})

	client := clientVia(t, h.addr, nil)
	exchanges := 0
	var planted []string
	for _, key := range append(append([]string(nil), redact.Builtin...), "Extra_Key") {
		var amp, semi, path, loc []string
		for i, sp := range redacttest.Spellings(key) {
			if strings.ContainsAny(sp, " ") {
				// A raw space ends the request target: net/http refuses
				// the line as a whole (the secrets test covers that path).
				continue
			}
			v := fmt.Sprintf("PLANTED-%s-%d", strings.ToUpper(key), i)
			planted = append(planted, v+"-A", v+"-S", v+"-P", v+"-L")
			amp = append(amp, sp+"="+v+"-A")
			semi = append(semi, sp+"="+v+"-S")
			path = append(path, sp+"="+v+"-P")
			loc = append(loc, sp+"="+v+"-L")
		}
		// Redirects carrying the spellings in their path parameters, query
		// and fragment, as many per redirect as fit the 256 bytes the tap
		// logs of a Location once redacted; for a few keys only, since
		// Location goes through the same redaction (internal/redact tests
		// every key there) and each redirect is a probe exchange.
		if key != "code" && key != "access_token" && key != "Extra_Key" {
			loc = nil
		}
		for len(loc) > 0 {
			n, size := 0, 0
			for n < len(loc) && (n == 0 || size+len(loc[n]) < 100) {
				k, _, _ := strings.Cut(loc[n], "=")
				size += len(k + "=REDACTED;")
				n++
			}
			part := loc[:n]
			loc = loc[n:]
			location.Store("http://p.test/l;" + strings.Join(part, ";") + "?a=1;" + strings.Join(part, "&") + "#" + strings.Join(part, "&"))
			get(t, client, "http://www.msftconnecttest.com/connecttest.txt")
			exchanges++
		}
		for _, target := range []string{
			origin.URL + "/cb?keep=1&" + strings.Join(amp, "&"),
			origin.URL + "/cb?keep=1;" + strings.Join(semi, ";"),
			origin.URL + "/cb;" + strings.Join(path, ";") + "?keep=1",
		} {
			rawExchange(t, h.addr, "GET "+target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			exchanges++
		}
	}
	out.local["json"].Wait(t, exchanges, 20*time.Second)
	h.shutdown(time.Second)

	for name, list := range out.records(t) {
		if len(list) != exchanges {
			t.Errorf("%s: %d records, want %d", name, len(list), exchanges)
		}
		var all strings.Builder
		for _, rec := range list {
			text := rec + "\n" + readable(t, name, rec)
			all.WriteString(text)
			if i := strings.Index(text, "PLANTED-"); i >= 0 {
				t.Errorf("%s: a value in the log (%q): %s", name, text[i:min(len(text), i+40)], rec)
			}
		}
		for _, s := range []string{"keep=1", "=REDACTED", "probe_redirect"} {
			if !strings.Contains(all.String(), s) {
				t.Errorf("%s: %q never logged", name, s)
			}
		}
	}
	if len(planted) < 4*len(redact.Builtin)*10 {
		t.Fatalf("only %d values planted", len(planted))
	}
}
