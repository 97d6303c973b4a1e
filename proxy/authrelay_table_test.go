package proxy_test

import (
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/m365tap/m365tap/internal/testsquid"
	"github.com/m365tap/m365tap/proxy"
)

// testRelayTable: scheme × plain GET / CONNECT × right, wrong or no
// credentials, several requests on one keep-alive connection, with curl
// and Go clients; straight to Squid and through the tap alike.
func testRelayTable(t *testing.T, e *arEnv) {
	type row struct {
		name   string
		scheme string // proxy_auth_scheme the events must carry; "" for none
		client func(urls []string) arClient
	}
	const n = 3
	curl := func(env []string, named bool, args ...string) func([]string) arClient {
		return func(urls []string) arClient { return curlClient(env, named, args, urls) }
	}
	rows := []row{
		{"curl basic right", "basic", curl(nil, false, "--proxy-basic", "-U", "alice:"+arAlice.Password)},
		{"curl basic wrong", "basic", curl(nil, false, "--proxy-basic", "-U", "alice:not-"+arAlice.Password)},
		{"curl ntlm right", "ntlm", curl(nil, false, "--proxy-ntlm", "-U", `TESTDOM\alice:`+arAlice.Password)},
		// curl asks first without credentials and picks from what the 407
		// offers (Negotiate), as browsers do: the 407 is a handshake step.
		{"curl anyauth kerberos right", "negotiate", curl(e.kdc.ClientEnv(e.aliceCC), true, "--proxy-anyauth", "-U", ":")},
		// HTTP/1.0 with Proxy-Connection: keep-alive, as older clients send
		// (plain requests only: curl --http1.0 offers TLS ALPN "http/1.0",
		// which no origin speaks).
		{"curl ntlm right http1.0", "ntlm", curl(nil, false, "--http1.0", "--proxy-ntlm", "-U", `TESTDOM\alice:`+arAlice.Password)},
		{"curl ntlm wrong", "ntlm", curl(nil, false, "--proxy-ntlm", "-U", `TESTDOM\alice:`+arBob.Password)},
		{"curl negotiate-kerberos right", "negotiate", curl(e.kdc.ClientEnv(e.aliceCC), true, "--proxy-negotiate", "-U", ":")},
		{"curl negotiate-kerberos refused account", "negotiate", curl(e.kdc.ClientEnv(e.malloryCC), true, "--proxy-negotiate", "-U", ":")},
		{"curl negotiate-kerberos no ticket", "", curl(e.kdc.ClientEnv(""), true, "--proxy-negotiate", "-U", ":")},
		{"curl none", "", curl(nil, false)},
		{"go basic right", "basic", func(urls []string) arClient { return goBasicClient(url.UserPassword("bob", arBob.Password), urls) }},
		{"go basic wrong", "basic", func(urls []string) arClient {
			return goBasicClient(url.UserPassword("bob", "not-"+arBob.Password), urls)
		}},
		{"go none", "", func(urls []string) arClient { return goBasicClient(nil, urls) }},
	}
	for _, conn := range []struct {
		name, scheme, wire, user, password string
	}{
		{"go ntlm right", "ntlm", "NTLM", "bob", arBob.Password},
		{"go ntlm wrong", "ntlm", "NTLM", "bob", arAlice.Password},
		{"go negotiate-ntlm right", "negotiate", "Negotiate", "alice", arAlice.Password},
		{"go negotiate-ntlm wrong", "negotiate", "Negotiate", "alice", arBob.Password},
	} {
		cr := &testsquid.Credentials{Scheme: conn.wire, User: conn.user, Domain: "TESTDOM", Password: conn.password}
		rows = append(rows, row{conn.name, conn.scheme, func(urls []string) arClient {
			return goConnClient(cr, strings.HasPrefix(urls[0], "https:"), urls)
		}})
	}
	// The cases run in parallel: each tells its entries in Squid's shared
	// log apart by its own URL path, and its CONNECTs by an https origin
	// of its own (Squid logs a CONNECT as host:port only).
	for _, r := range rows {
		for _, connect := range []bool{false, true} {
			mode := "GET"
			if connect {
				mode = "CONNECT"
			}
			if connect && strings.HasSuffix(r.name, "http1.0") {
				continue
			}
			name := r.name + " " + mode
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				tag := strings.ReplaceAll(name, " ", "-")
				urls := e.plainURLs(tag, n)
				var mod func(*proxy.Options)
				keep := func(en testsquid.Entry) bool { return strings.Contains(en.URL, "/"+tag+"/") }
				if connect {
					origin := httptest.NewTLSServer(e.handler)
					t.Cleanup(origin.Close)
					hostport := origin.Listener.Addr().String()
					urls = secureURLsOf(origin, tag, n)
					mod = func(o *proxy.Options) { o.AllowPorts = append(o.AllowPorts, mustPort(hostport)) }
					keep = func(en testsquid.Entry) bool { return en.URL == hostport }
				}
				h, codes := e.sameThroughTapMatching(t, r.client(urls), mod, keep)
				evs := checkRelayEvents(t, h, r.scheme, arOffered, connect, codes)
				if strings.Contains(r.name, "negotiate-ntlm wrong") {
					// Windows answers Negotiate with NTLM when it gets no
					// ticket: the event must say so, naming the parent's SPN.
					for _, ev := range evs {
						if msg := str(ev, "error"); !strings.Contains(msg, "NTLM") || !strings.Contains(msg, arSPN) {
							t.Errorf("error %q should say the client answered Negotiate with NTLM, having no ticket for %s", msg, arSPN)
						}
					}
				}
				if len(evs) == 0 || codes[0] != 200 || r.scheme == "" {
					return
				}
				// The first exchange carried the client's credentials: its
				// parent connection is the client's alone from then on, and
				// a connection-bound handshake shows its one 407 round.
				first := evs[0]
				if !connect && first["pinned"] != true {
					t.Errorf("pinned = %v, want true: %v", first["pinned"], first)
				}
				if strings.Contains(r.name, "ntlm") {
					want(t, first, map[string]any{"proxy_auth_legs": 1})
				}
			})
		}
	}
}

// testRelayDigest: Digest, a scheme the tap gives no special treatment,
// relayed like the others (its 407 carries the nonce the client answers),
// against a Squid that offers only Digest.
func testRelayDigest(t *testing.T, e *arEnv) {
	d := *e
	d.squid = testsquid.Start(t, testsquid.Options{Auth: testsquid.AuthDigest, Users: []testsquid.User{arAlice, arBob}})
	for _, tc := range []struct {
		name     string
		password string
	}{{"right", arAlice.Password}, {"wrong", arBob.Password}} {
		for _, connect := range []bool{false, true} {
			name := tc.name + " GET"
			urls := d.plainURLs("digest-"+tc.name, 3)
			if connect {
				name = tc.name + " CONNECT"
				urls = d.secureURLs("digest-"+tc.name, 3)
			}
			t.Run(name, func(t *testing.T) {
				c := curlClient(nil, false, []string{"--proxy-digest", "-U", "alice:" + tc.password}, urls)
				h, codes := d.sameThroughTap(t, c, nil)
				checkRelayEvents(t, h, "digest", "digest", connect, codes)
			})
		}
	}
}

// checkRelayEvents checks the tap's events for one client run: one event
// per exchange the client saw end (a 407 leg of a handshake is part of the
// exchange that follows), every one relayed, and a final 407 logged as
// parent_auth_required with what the parent offered.
func checkRelayEvents(t *testing.T, h *harness, scheme, offered string, connect bool, codes []int) []map[string]any {
	t.Helper()
	want := len(codes)
	if connect && len(codes) > 0 && codes[0] == 200 {
		want = 1 // one tunnel carried every request
	}
	evs := relayEvents(t, h, want)
	sawScheme := false
	for _, ev := range evs {
		if got := str(ev, "parent_auth"); got != "relay" {
			t.Errorf("parent_auth = %q, want relay: %v", got, ev)
		}
		if s := str(ev, "proxy_auth_scheme"); s != "" {
			if s != scheme {
				t.Errorf("proxy_auth_scheme = %q, want %q: %v", s, scheme, ev)
			}
			sawScheme = true
		}
		if str(ev, "proxy_auth_user") != "" {
			t.Errorf("proxy_auth_user logged without log.users: %v", ev)
		}
		switch str(ev, "outcome") {
		case "ok":
		case "parent_auth_required":
			if got := str(ev, "proxy_auth_offered"); got != offered {
				t.Errorf("proxy_auth_offered = %q, want %q: %v", got, offered, ev)
			}
		default:
			t.Errorf("outcome %q, want ok or parent_auth_required: %v", str(ev, "outcome"), ev)
		}
	}
	if scheme != "" && !sawScheme {
		t.Errorf("no event names the scheme %q: %v", scheme, evs)
	}
	return evs
}

// testRelayLogUsers: with log.users the event names the user of a relayed
// Basic credential or NTLM AUTHENTICATE message (never a Kerberos one: the
// ticket's client name is encrypted); the tests above check that it is
// absent by default.
func testRelayLogUsers(t *testing.T, e *arEnv) {
	for _, tc := range []struct {
		name string
		args []string
		user string
	}{
		{"basic", []string{"--proxy-basic", "-U", "alice:" + arAlice.Password}, "alice"},
		{"ntlm", []string{"--proxy-ntlm", "-U", "bob:" + arBob.Password}, "bob"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Only this case's requests: a tunnel of an earlier case that
			// ends late is logged by Squid at its end, in this window.
			h, codes := e.sameThroughTapMatching(t, curlClient(nil, false, tc.args, e.plainURLs("users", 2)),
				func(o *proxy.Options) { o.LogUsers = true },
				func(en testsquid.Entry) bool { return strings.Contains(en.URL, "/users/") })
			if !slices.Equal(codes, []int{200, 200}) {
				t.Fatalf("straight to Squid: %v, want 200 200", codes)
			}
			evs := relayEvents(t, h, 2)
			if got := str(evs[0], "proxy_auth_user"); got != tc.user {
				t.Errorf("proxy_auth_user = %q, want %q: %v", got, tc.user, evs[0])
			}
		})
	}
}
