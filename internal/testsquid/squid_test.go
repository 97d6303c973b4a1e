package testsquid_test

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/m365tap/m365tap/internal/testsquid"
)

const (
	parentName = "proxy.corp.test"
	spn        = "HTTP/" + parentName
)

var (
	alice   = testsquid.User{Name: "alice", Password: "Alice-pw-1"}
	bob     = testsquid.User{Name: "bob", Password: "Bob-pw-2"}
	mallory = testsquid.User{Name: "mallory", Password: "Mallory-pw-3"}
)

type origins struct {
	plain, secure *httptest.Server
}

func startOrigins(t *testing.T) origins {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello from "+r.URL.Path) })
	o := origins{plain: httptest.NewServer(h), secure: httptest.NewTLSServer(h)}
	t.Cleanup(o.plain.Close)
	t.Cleanup(o.secure.Close)
	return o
}

// users returns the user of each entry Squid answered 2xx, and checks
// that every other entry is a 407.
func users(t *testing.T, entries []testsquid.Entry) []string {
	t.Helper()
	var u []string
	for _, e := range entries {
		switch {
		case e.Status/100 == 2:
			u = append(u, e.User)
		case e.Status != http.StatusProxyAuthRequired:
			t.Errorf("unexpected entry %v", e)
		}
	}
	return u
}

func repeat[T any](v T, n int) []T {
	s := make([]T, n)
	for i := range s {
		s[i] = v
	}
	return s
}

// TestSquid starts one KDC and one Squid per authentication mode and
// checks each straight from curl and Go clients: right credentials 200
// and the right user in Squid's log, a wrong password or none 407.
func TestSquid(t *testing.T) {
	start := time.Now()
	o := startOrigins(t)
	kdc := testsquid.StartKDC(t)
	kdc.AddUser(alice.Name, alice.Password)
	kdc.AddUser(mallory.Name, mallory.Password)
	accounts := []testsquid.User{alice, bob, mallory}
	squids := map[testsquid.Auth]*testsquid.Squid{}
	for _, mode := range []testsquid.Auth{testsquid.AuthNone, testsquid.AuthBasic, testsquid.AuthNTLM, testsquid.AuthNegotiate, testsquid.AuthDigest, testsquid.AuthAll} {
		squids[mode] = testsquid.Start(t, testsquid.Options{Auth: mode, Users: accounts, KDC: kdc, SPN: spn,
			Deny: []string{"mallory@" + kdc.Realm}})
	}
	t.Logf("KDC and 6 Squids ready in %v", time.Since(start).Round(time.Millisecond))
	aliceCC := kdc.Kinit(alice.Name, alice.Password)
	malloryCC := kdc.Kinit(mallory.Name, mallory.Password)

	plainURLs := func(n int) []string {
		u := make([]string, n)
		for i := range u {
			u[i] = o.plain.URL + "/" + strings.Repeat("x", i+1)
		}
		return u
	}
	secureURLs := func(n int) []string {
		u := make([]string, n)
		for i := range u {
			u[i] = o.secure.URL + "/" + strings.Repeat("y", i+1)
		}
		return u
	}

	type curlCase struct {
		name  string
		mode  testsquid.Auth
		args  []string
		env   []string
		named string // proxy host name to use instead of 127.0.0.1
		urls  []string
		codes []int
		users []string // of the 2xx entries
		// entries Squid logs, when not one per URL: a tunnel carries
		// several requests in one entry.
		entries int
	}
	cases := []curlCase{
		{name: "none", mode: testsquid.AuthNone, urls: plainURLs(2), codes: []int{200, 200}, users: []string{"", ""}},
		{name: "basic right", mode: testsquid.AuthBasic, args: []string{"--proxy-basic", "-U", "alice:" + alice.Password},
			urls: plainURLs(3), codes: repeat(200, 3), users: repeat("alice", 3)},
		{name: "basic right CONNECT", mode: testsquid.AuthBasic, args: []string{"-k", "--proxy-basic", "-U", "alice:" + alice.Password},
			urls: secureURLs(3), codes: repeat(200, 3), users: []string{"alice"}, entries: 1},
		{name: "basic wrong", mode: testsquid.AuthBasic, args: []string{"--proxy-basic", "-U", "alice:wrong"},
			urls: plainURLs(2), codes: []int{407, 407}},
		{name: "basic none", mode: testsquid.AuthBasic, urls: plainURLs(1), codes: []int{407}},
		{name: "ntlm right", mode: testsquid.AuthNTLM, args: []string{"--proxy-ntlm", "-U", "TESTDOM\\alice:" + alice.Password},
			urls: plainURLs(3), codes: repeat(200, 3), users: repeat("alice", 3)},
		{name: "ntlm right CONNECT", mode: testsquid.AuthNTLM, args: []string{"-k", "--proxy-ntlm", "-U", "bob:" + bob.Password},
			urls: secureURLs(3), codes: repeat(200, 3), users: []string{"bob"}, entries: 2},
		{name: "ntlm wrong", mode: testsquid.AuthNTLM, args: []string{"--proxy-ntlm", "-U", "alice:" + bob.Password},
			urls: plainURLs(1), codes: []int{407}},
		{name: "ntlm none", mode: testsquid.AuthNTLM, urls: plainURLs(1), codes: []int{407}},
		{name: "kerberos right", mode: testsquid.AuthNegotiate, args: []string{"--proxy-negotiate", "-U", ":"}, env: kdc.ClientEnv(aliceCC),
			named: parentName, urls: plainURLs(3), codes: repeat(200, 3), users: repeat("alice@"+kdc.Realm, 3)},
		{name: "kerberos right CONNECT", mode: testsquid.AuthNegotiate, args: []string{"-k", "--proxy-negotiate", "-U", ":"}, env: kdc.ClientEnv(aliceCC),
			named: parentName, urls: secureURLs(2), codes: repeat(200, 2), users: []string{"alice@" + kdc.Realm}, entries: 1},
		{name: "kerberos refused account", mode: testsquid.AuthNegotiate, args: []string{"--proxy-negotiate", "-U", ":"}, env: kdc.ClientEnv(malloryCC),
			named: parentName, urls: plainURLs(1), codes: []int{407}},
		{name: "kerberos no ticket", mode: testsquid.AuthNegotiate, args: []string{"--proxy-negotiate", "-U", ":"}, env: kdc.ClientEnv(""),
			named: parentName, urls: plainURLs(1), codes: []int{407}},
		{name: "kerberos proxy named 127.0.0.1", mode: testsquid.AuthNegotiate, args: []string{"--proxy-negotiate", "-U", ":"}, env: kdc.ClientEnv(aliceCC),
			urls: plainURLs(1), codes: []int{407}},
		{name: "digest right", mode: testsquid.AuthDigest, args: []string{"--proxy-digest", "-U", "alice:" + alice.Password},
			urls: plainURLs(2), codes: repeat(200, 2), users: repeat("alice", 2), entries: 3},
		{name: "digest wrong", mode: testsquid.AuthDigest, args: []string{"--proxy-digest", "-U", "alice:" + bob.Password},
			urls: plainURLs(1), codes: []int{407}, entries: 2},
		{name: "all kerberos", mode: testsquid.AuthAll, args: []string{"--proxy-negotiate", "-U", ":"}, env: kdc.ClientEnv(aliceCC),
			named: parentName, urls: plainURLs(2), codes: repeat(200, 2), users: repeat("alice@"+kdc.Realm, 2)},
		{name: "all ntlm", mode: testsquid.AuthAll, args: []string{"--proxy-ntlm", "-U", "alice:" + alice.Password},
			urls: plainURLs(2), codes: repeat(200, 2), users: repeat("alice", 2)},
		{name: "all basic", mode: testsquid.AuthAll, args: []string{"--proxy-basic", "-U", "bob:" + bob.Password},
			urls: plainURLs(2), codes: repeat(200, 2), users: repeat("bob", 2)},
		{name: "all basic wrong", mode: testsquid.AuthAll, args: []string{"--proxy-basic", "-U", "bob:wrong"},
			urls: plainURLs(1), codes: []int{407}},
	}
	for _, tc := range cases {
		t.Run("curl/"+tc.name, func(t *testing.T) {
			s := squids[tc.mode]
			host := "127.0.0.1"
			args := append([]string(nil), tc.args...)
			if tc.named != "" {
				host = tc.named
				args = append(args, "--resolve", tc.named+":"+s.Port()+":127.0.0.1")
			}
			args = append(args, "-x", "http://"+net.JoinHostPort(host, s.Port()))
			mark := s.Mark(t)
			r := testsquid.Curl(t, tc.env, args, tc.urls...)
			if !slices.Equal(r.Codes, tc.codes) {
				t.Fatalf("curl: %v, want codes %v\n%s", r, tc.codes, r.Stderr)
			}
			n := tc.entries
			if n == 0 {
				n = len(tc.codes)
			}
			entries := s.WaitEntries(t, mark, n)
			if got := users(t, entries); !slices.Equal(got, tc.users) {
				t.Errorf("users of the 2xx entries %q, want %q; log: %v", got, tc.users, entries)
			}
		})
	}

	t.Run("curl/ntlm one connection", func(t *testing.T) {
		s := squids[testsquid.AuthNTLM]
		r := testsquid.Curl(t, nil, []string{"-v", "--proxy-ntlm", "-U", "alice:" + alice.Password, "-x", s.URL().String()}, plainURLs(3)...)
		if !slices.Equal(r.Codes, repeat(200, 3)) {
			t.Fatalf("curl: %v", r)
		}
		if n := strings.Count(r.Stderr, "Connected to "); n != 1 {
			t.Errorf("curl made %d connections for 3 requests, want 1:\n%s", n, r.Stderr)
		}
	})

	t.Run("go/basic net/http", func(t *testing.T) {
		s := squids[testsquid.AuthBasic]
		for _, tc := range []struct {
			user *url.Userinfo
			want int
			who  string
		}{
			{url.UserPassword("bob", bob.Password), 200, "bob"},
			{url.UserPassword("bob", "wrong"), 407, ""},
			{nil, 407, ""},
		} {
			pu := s.URL()
			pu.User = tc.user
			tr := &http.Transport{Proxy: http.ProxyURL(pu), TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
			c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			mark := s.Mark(t)
			resp, err := c.Get(o.plain.URL + "/go")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("plain GET with %v: %d, want %d", tc.user, resp.StatusCode, tc.want)
			}
			resp, err = c.Get(o.secure.URL + "/go")
			switch {
			case tc.want == 200 && err != nil:
				t.Errorf("CONNECT with %v: %v", tc.user, err)
			case tc.want == 200:
				resp.Body.Close()
			case err == nil || !strings.Contains(err.Error(), "Proxy Authentication Required"):
				t.Errorf("CONNECT with %v: %v, want a 407", tc.user, err)
			}
			tr.CloseIdleConnections()
			entries := s.WaitEntries(t, mark, 2)
			for _, e := range entries {
				// Squid logs the name a rejected Basic request gave, too.
				if e.Status/100 != tc.want/100 || tc.want == 200 && e.User != tc.who {
					t.Errorf("with %v: entry %v, want status %d user %q", tc.user, e, tc.want, tc.who)
				}
			}
		}
	})

	goNTLM := func(t *testing.T, s *testsquid.Squid, cr *testsquid.Credentials, connect bool, n, want int, who string) {
		t.Helper()
		c, err := testsquid.Dial(s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		mark := s.Mark(t)
		if connect {
			host := strings.TrimPrefix(o.secure.URL, "https://")
			resp, legs, err := c.Authenticate(func() *http.Request { return testsquid.Connect(host) }, cr)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != want {
				t.Fatalf("CONNECT: %d after legs %v, want %d", resp.StatusCode, legs, want)
			}
			if want != 200 {
				s.WaitEntries(t, mark, len(legs))
				return
			}
			tc := c.TLS(&tls.Config{InsecureSkipVerify: true})
			br := bufio.NewReader(tc)
			for i := range n {
				req := testsquid.Get(o.secure.URL + "/tls/" + strings.Repeat("z", i+1))
				req.URL.Host = ""
				if err := req.Write(tc); err != nil {
					t.Fatal(err)
				}
				resp, err := http.ReadResponse(br, req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "hello") {
					t.Fatalf("request %d in the tunnel: %d %q", i, resp.StatusCode, body)
				}
			}
			_ = tc.Close()
			entries := s.WaitEntries(t, mark, len(legs))
			if got := users(t, entries); !slices.Equal(got, []string{who}) {
				t.Errorf("users %q, want %q; log %v", got, who, entries)
			}
			return
		}
		var legs []int
		for i := range n {
			resp, l, err := c.Authenticate(func() *http.Request { return testsquid.Get(o.plain.URL + "/go/" + strings.Repeat("n", i+1)) }, cr)
			if err != nil {
				t.Fatal(err)
			}
			legs = append(legs, l...)
			if resp.StatusCode != want {
				t.Fatalf("request %d: %d after legs %v, want %d", i, resp.StatusCode, l, want)
			}
		}
		entries := s.WaitEntries(t, mark, len(legs))
		wantUsers := []string(nil)
		if want == 200 {
			wantUsers = repeat(who, n)
		}
		if got := users(t, entries); !slices.Equal(got, wantUsers) {
			t.Errorf("users %q, want %q; log %v", got, wantUsers, entries)
		}
		if want == 200 && len(legs) != n+1 {
			t.Errorf("legs %v: want one handshake (2 legs) then %d requests without one", legs, n-1)
		}
	}
	for _, tc := range []struct {
		name    string
		mode    testsquid.Auth
		cr      *testsquid.Credentials
		connect bool
		want    int
		who     string
	}{
		{"ntlm right", testsquid.AuthNTLM, &testsquid.Credentials{Scheme: "NTLM", User: "alice", Domain: "TESTDOM", Password: alice.Password}, false, 200, "alice"},
		{"ntlm right CONNECT", testsquid.AuthNTLM, &testsquid.Credentials{Scheme: "NTLM", User: "bob", Password: bob.Password}, true, 200, "bob"},
		{"ntlm wrong", testsquid.AuthNTLM, &testsquid.Credentials{Scheme: "NTLM", User: "alice", Password: bob.Password}, false, 407, ""},
		{"ntlm unknown user", testsquid.AuthNTLM, &testsquid.Credentials{Scheme: "NTLM", User: "eve", Password: "x"}, false, 407, ""},
		{"negotiate carrying ntlm", testsquid.AuthAll, &testsquid.Credentials{Scheme: "Negotiate", User: "alice", Password: alice.Password}, false, 200, "alice"},
		{"negotiate carrying ntlm CONNECT", testsquid.AuthAll, &testsquid.Credentials{Scheme: "Negotiate", User: "bob", Password: bob.Password}, true, 200, "bob"},
		{"negotiate carrying ntlm wrong", testsquid.AuthAll, &testsquid.Credentials{Scheme: "Negotiate", User: "bob", Password: alice.Password}, false, 407, ""},
		{"ntlm in all", testsquid.AuthAll, &testsquid.Credentials{Scheme: "NTLM", User: "alice", Password: alice.Password}, false, 200, "alice"},
	} {
		t.Run("go/"+tc.name, func(t *testing.T) {
			goNTLM(t, squids[tc.mode], tc.cr, tc.connect, 3, tc.want, tc.who)
		})
	}
	t.Logf("TestSquid took %v", time.Since(start).Round(time.Millisecond))
}
