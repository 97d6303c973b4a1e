package proxy_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/m365tap/m365tap/internal/testsquid"
	"github.com/m365tap/m365tap/proxy"
)

// testRelayIdentity: two users and an anonymous client at once through
// one tap, many requests each over several connections: Squid logs every
// request under its own sender's name (or none), never another's. A shared
// pool of parent connections fails this (an anonymous client served as a
// user, one user's requests logged as the other's).
//
// With credentials of the tap's own in parent.url (used for its own
// traffic only, not for clients) nothing changes for the clients.
func testRelayIdentity(t *testing.T, e *arEnv) {
	for _, tc := range []struct {
		name string
		mod  func(*proxy.Options)
		anon string // the user the anonymous client is served as; "": 407
	}{
		{"tap without credentials", nil, ""},
		{"tap with credentials in parent URL", func(o *proxy.Options) {
			o.Parent.User = url.UserPassword("mallory", arMallory.Password)
		}, ""},
		// With parent.auth.clients the anonymous client is served as the
		// tap's user, and only it: a request on a connection the client
		// authenticated itself (NTLM, no header on later requests) stays
		// the client's.
		{"tap credentials for clients", func(o *proxy.Options) {
			o.Parent.User = url.UserPassword("mallory", arMallory.Password)
			o.ParentAuthClients = true
		}, "mallory"},
	} {
		t.Run(tc.name, func(t *testing.T) { relayIdentity(t, e, tc.mod, tc.anon) })
	}
}

func relayIdentity(t *testing.T, e *arEnv, mod func(*proxy.Options), anonUser string) {
	h := e.tap(t, mod)
	mark := e.squid.Mark(t)
	const (
		workers = 2  // goroutines (connections at a time) per client
		per     = 40 // requests per goroutine
	)
	type result struct {
		who   string
		codes []int
		err   error
	}
	results := make(chan result, 3*workers)
	var wg sync.WaitGroup
	// alice: NTLM on her own connections, a new one every 5 requests.
	for w := range workers {
		wg.Go(func() {
			r := result{who: "alice"}
			defer func() { results <- r }()
			var c *testsquid.Conn
			cr := &testsquid.Credentials{Scheme: "NTLM", User: "alice", Password: arAlice.Password}
			for i := range per {
				if i%5 == 0 {
					if c != nil {
						c.Close()
					}
					if c, r.err = testsquid.Dial(h.addr); r.err != nil {
						return
					}
				}
				u := fmt.Sprintf("%s/id-alice/%d-%d", e.plain.URL, w, i)
				resp, _, err := c.Authenticate(func() *http.Request { return testsquid.Get(u) }, cr)
				if err != nil {
					r.err = err
					return
				}
				r.codes = append(r.codes, resp.StatusCode)
			}
			c.Close()
		})
	}
	// bob (Basic) and the anonymous client: net/http with keep-alive.
	for _, who := range []string{"bob", "anon"} {
		var user *url.Userinfo
		if who == "bob" {
			user = url.UserPassword("bob", arBob.Password)
		}
		tr := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: h.addr, User: user}),
			MaxIdleConnsPerHost: workers, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
		t.Cleanup(tr.CloseIdleConnections)
		c := &http.Client{Transport: tr, Timeout: 15 * time.Second}
		for w := range workers {
			wg.Go(func() {
				r := result{who: who}
				defer func() { results <- r }()
				for i := range per {
					resp, err := c.Get(fmt.Sprintf("%s/id-%s/%d-%d", e.plain.URL, who, w, i))
					if err != nil {
						r.err = err
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					r.codes = append(r.codes, resp.StatusCode)
				}
			})
		}
	}
	wg.Wait()
	close(results)
	wantCode := map[string]int{"alice": 200, "bob": 200, "anon": 407}
	wantUser := map[string]string{"alice": "alice", "bob": "bob", "anon": anonUser}
	if anonUser != "" {
		wantCode["anon"] = 200
	}
	for r := range results {
		if r.err != nil {
			t.Errorf("%s: %v after %d requests", r.who, r.err, len(r.codes))
		}
		for i, c := range r.codes {
			if c != wantCode[r.who] {
				t.Errorf("%s request %d: %d, want %d", r.who, i, c, wantCode[r.who])
			}
		}
	}

	entries := e.squid.Settle(t, mark)
	served := map[string]int{}
	for _, en := range entries {
		who := ""
		for _, w := range []string{"alice", "bob", "anon"} {
			if strings.Contains(en.URL, "/id-"+w+"/") {
				who = w
			}
		}
		switch {
		case who == "":
			t.Errorf("entry of no client: %v", en)
		case en.Status == 200 && who == "anon" && anonUser == "":
			t.Errorf("the anonymous client was served: %v", en)
		case en.Status == 200 && en.User != wantUser[who]:
			t.Errorf("%s's request logged as %q: %v", who, en.User, en)
		case en.Status == 200:
			served[who]++
		case en.Status == 407 && who != "bob" && en.User == "":
		default:
			t.Errorf("unexpected entry for %s: %v", who, en)
		}
	}
	servedUsers := []string{"alice", "bob"}
	if anonUser != "" {
		servedUsers = append(servedUsers, "anon")
	}
	for _, who := range servedUsers {
		if served[who] != workers*per {
			t.Errorf("Squid served %d of %s's %d requests", served[who], who, workers*per)
		}
	}
	// Every event says whose credentials went: the anonymous client's
	// are the tap's only when the tap lends them.
	for _, ev := range h.log.events(t) {
		wantAuth := "relay"
		if anonUser != "" && strings.Contains(str(ev, "url"), "/id-anon/") {
			wantAuth = "tap"
		}
		if str(ev, "parent_auth") != wantAuth || str(ev, "proxy_auth_user") != "" {
			t.Errorf("parent_auth %q (want %q), proxy_auth_user %q (want none): %v",
				str(ev, "parent_auth"), wantAuth, str(ev, "proxy_auth_user"), ev)
		}
	}
}
