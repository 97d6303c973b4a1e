package proxy_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/m365tap/m365tap/internal/passhash"
	"github.com/m365tap/m365tap/internal/testnet"
	"github.com/m365tap/m365tap/proxy"
)

// TestClientAuthenticationHashes: access.users takes bcrypt, Argon2id and
// Argon2i hashes side by side; each user gets in with its own password
// only, and an unknown name is refused like a wrong password.
func TestClientAuthenticationHashes(t *testing.T) {
	origin := testnet.NewHTTPOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	bc, _ := bcrypt.GenerateFromPassword([]byte("b-pass"), bcrypt.MinCost)
	id, err := passhash.NewArgon2id([]byte("id-pass"), 64, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, proxy.Options{Users: map[string][]byte{
		"bee": bc,
		"ida": []byte(id),
		// The reference argon2 command's output for pa55word (see
		// internal/passhash): Argon2i and Argon2id.
		"ivy":  []byte("$argon2i$v=19$m=4096,t=3,p=1$c2FsdHNhbHQ$GecB3KA8ZRkD2R2h7RTA14GU64u7NVAVQn4aIk8Guwc"),
		"iris": []byte("$argon2id$v=19$m=4096,t=3,p=1$c2FsdHNhbHQ$0WEDi1kOiu5giA0E8MNsva6rInW4jqHqZYoWg/OHIcs"),
		// Not a hash: nobody gets in under this name.
		"broken": []byte("$argon2id$v=19$m=4096,t=3,p=1$c2FsdHNhbHQ$"),
	}})
	cases := []struct {
		user, pass string
		status     int
	}{
		{"bee", "b-pass", 200},
		{"bee", "id-pass", 407},
		{"ida", "id-pass", 200},
		{"ida", "id-pas", 407},
		{"ivy", "pa55word", 200},
		{"ivy", "pa55wor", 407},
		{"iris", "pa55word", 200},
		{"iris", "PA55WORD", 407},
		{"broken", "", 407},
		{"mallory", "pa55word", 407},
	}
	for i, tc := range cases {
		u := &url.URL{Scheme: "http", Host: h.addr, User: url.UserPassword(tc.user, tc.pass)}
		tr := &http.Transport{Proxy: http.ProxyURL(u), DisableKeepAlives: true}
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(origin.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s/%s: status %d, want %d", tc.user, tc.pass, resp.StatusCode, tc.status)
		}
		ev := h.waitEvents(i + 1)[i]
		if tc.status == 407 {
			want(t, ev, map[string]any{"outcome": "denied", "status": 407, "error": "wrong proxy credentials"})
		} else {
			want(t, ev, map[string]any{"outcome": "ok", "status": 200})
		}
	}
	for _, line := range h.log.Writes() {
		if strings.Contains(string(line), "c2FsdHNhbHQ") || strings.Contains(string(line), "pa55word") {
			t.Fatalf("hash or password in the log: %s", line)
		}
	}
}
