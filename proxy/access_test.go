package proxy_test

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/m365tap/m365tap/internal/testnet"
	"github.com/m365tap/m365tap/proxy"
)

// TestClientAuthentication: with access.users, clients must authenticate;
// refusals are 407 with a Basic challenge and one denied event each, and the
// credentials never reach the log or the origin.
func TestClientAuthentication(t *testing.T) {
	var sawAuth string
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawAuth = r.Header.Get("Proxy-Authorization")
		io.WriteString(w, "ok")
	}))
	t.Cleanup(origin.Close)
	hash, _ := bcrypt.GenerateFromPassword([]byte("pa55word"), bcrypt.MinCost)
	h := newHarness(t, proxy.Options{Users: map[string][]byte{"engineer": hash}})
	cases := []struct {
		name, user, pass string
		status           int
		outcome          string
	}{
		{"no credentials", "", "", 407, "denied"},
		{"wrong password", "engineer", "nope", 407, "denied"},
		{"unknown user", "mallory", "pa55word", 407, "denied"},
		{"good", "engineer", "pa55word", 200, "ok"},
		{"good again (cached)", "engineer", "pa55word", 200, "ok"},
	}
	for i, tc := range cases {
		u := &url.URL{Scheme: "http", Host: h.addr}
		if tc.user != "" {
			u.User = url.UserPassword(tc.user, tc.pass)
		}
		c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(u)}, Timeout: 10 * time.Second}
		resp, err := c.Get(origin.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.status)
		}
		if tc.status == 407 && resp.Header.Get("Proxy-Authenticate") != `Basic realm="m365tap"` {
			t.Errorf("%s: challenge %q", tc.name, resp.Header.Get("Proxy-Authenticate"))
		}
		ev := h.waitEvents(i + 1)
		want(t, ev[i], map[string]any{"outcome": tc.outcome, "status": tc.status})
	}
	if sawAuth != "" {
		t.Errorf("client credentials forwarded to the origin: %q", sawAuth)
	}
	for _, line := range h.log.Writes() {
		if string(line) != "" && (contains(line, "pa55word") || contains(line, "ZW5naW5lZXI6")) {
			t.Fatalf("credentials in the log: %s", line)
		}
	}
}

// TestConnectionLimits: connections beyond the per-client bound are
// answered 429 and logged as denied; the slot is released on close.
func TestConnectionLimits(t *testing.T) {
	h := newHarness(t, proxy.Options{MaxConnsPerClient: 2})
	var held []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, _ := io.ReadAll(c)
	c.Close()
	if !contains(got, " 429 ") || !contains(got, "X-M365tap-Outcome: denied") {
		t.Fatalf("third connection got %q", got)
	}
	ev := h.waitEvents(1)[0]
	want(t, ev, map[string]any{"outcome": "denied", "status": 429})
	for _, c := range held {
		c.Close()
	}
	// The slots come back: a new exchange goes through.
	testnet.WaitFor(t, func() bool {
		resp, err := h.client().Get("http://" + h.addr + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 403 // the self-loop refusal: served, not limited
	}, 5*time.Second)
}

func contains(b []byte, s string) bool { return bytes.Contains(b, []byte(s)) }
