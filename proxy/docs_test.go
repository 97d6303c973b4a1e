package proxy_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"testing"
)

// TestEventKeysDocumented: every key an event carries is documented in
// docs/events.md, so the schema cannot drift from the code unnoticed.
func TestEventKeysDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/events.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_@.]+)` \\|").FindAllSubmatch(doc, -1) {
		documented[string(m[1])] = true
	}
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	}))
	t.Cleanup(origin.Close)
	probe := probeOrigin(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "captive portal") })
	h := newHarness(t, newOptionsWithHosts(probe.Listener.Addr().String(), "www.msftconnecttest.com", "login.microsoftonline.com"))
	c := h.client()
	for _, u := range []string{origin.URL + "/?code=x", "http://www.msftconnecttest.com/connecttest.txt", "http://login.microsoftonline.com/"} {
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	for _, ev := range h.waitEvents(3) {
		for k := range ev {
			if !documented[k] {
				t.Errorf("event key %q is not documented in docs/events.md", k)
			}
		}
	}
}
