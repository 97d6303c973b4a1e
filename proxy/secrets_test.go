package proxy_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/m365tap/m365tap/internal/testnet"
	"github.com/m365tap/m365tap/proxy"
)

// Credentials planted where a client, an origin or the configuration puts
// them. Every planted secret starts with "SECRET-"; the parent passwords
// hold characters that URL encoding changes.
const (
	tapUser        = "engineer"
	tapPass        = "SECRET-TAPPASS"
	wrongTapPass   = "SECRET-WRONGPASS"
	parentUser     = "corp"
	parentPass     = "SECRET-PARENT/p@ss:w%rd+&="
	parentDownPass = "SECRET-PARENTDOWN/p@ss:w%rd+&="
	parentBadPass  = "SECRET-PARENTWRONG/p@ss:w%rd+&="
)

// sensitiveKeys are the query keys whose values the tap redacts (the
// built-in ones and the test's access.redact_query entry), each sent with a
// secret value.
var sensitiveKeys = []string{"code", "token", "access_token", "id_token", "refresh_token", "client_secret", "password",
	"sig", "assertion", "SAMLResponse", "SAMLRequest", "client_assertion", "extra"}

// TestSecretsNeverLogged pushes credentials and tokens through every path
// that handles them — a plain request with userinfo, sensitive query keys,
// Authorization, Cookie and the tap's own Proxy-Authorization; Set-Cookie
// from the origin; access.users refusals (wrong password, malformed
// credentials); malformed requests carrying secrets; CONNECT through a
// parent with credentials; a probe redirect with a token in Location; a
// parent that is down and one that rejects the tap's credentials; and the
// active probe through each parent — and checks each format (json, ecs,
// cef), written locally and shipped over syslog: no secret, raw, escaped
// or base64-encoded, while the redacted URLs and every outcome do arrive.
func TestSecretsNeverLogged(t *testing.T) {
	out := newFormatOutputs(t)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "s", Value: "SECRET-SETCOOKIE"})
		io.WriteString(w, "ok")
	}))
	t.Cleanup(origin.Close)
	probe := probeOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://u:SECRET-LOCPASS@portal.test/login?token=SECRET-LOCATION#SECRET-LOCFRAG", http.StatusFound)
	})
	// login.microsoftonline.com:443 ends the TLS handshake at once.
	tlsEnd := testnet.Serve(t, func(c *net.TCPConn) { c.Read(make([]byte, 4096)) })
	parent := testnet.NewParent(t, testnet.ParentOptions{Mode: testnet.ParentAuth407, User: parentUser, Pass: parentPass,
		Dial: mapDial(map[string]string{
			"www.msftconnecttest.com:80":    probe.Listener.Addr().String(),
			"login.microsoftonline.com:443": tlsEnd.Addr(),
			origin.Listener.Addr().String(): origin.Listener.Addr().String(),
		})})
	hash, err := bcrypt.GenerateFromPassword([]byte(tapPass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	exchanges := 0

	// The tap with access.users, chained to the parent with its credentials.
	h := newHarness(t, proxy.Options{Parent: parentURL(parent.Addr(), parentPass), ParentAuthClients: true, ParentAuthNCSI: true, Users: map[string][]byte{tapUser: hash},
		RedactQuery: []string{"extra"}, AllowPorts: []int{443, 80, portOf(t, origin.Listener.Addr().String())}, Log: out.log})
	good := "Proxy-Authorization: " + basic(tapUser, tapPass) + "\r\n"
	var q []string
	for _, k := range sensitiveKeys {
		q = append(q, k+"=SECRET-Q-"+strings.ToUpper(k))
	}
	target := strings.Replace(origin.URL, "http://", "http://user:SECRET-USERINFO@", 1) + "/cb?" + strings.Join(q, "&") + "&keep=1#access_token=SECRET-FRAGMENT"
	// Raw requests, so the userinfo and fragment really travel in the request line.
	rawExchange(t, h.addr, "GET "+target+" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer SECRET-AUTHZ\r\nCookie: a=SECRET-COOKIE\r\n"+good+"Connection: close\r\n\r\n")
	// A fragment in the path, where an OAuth implicit grant puts its token.
	rawExchange(t, h.addr, "GET "+origin.URL+"/cb#access_token=SECRET-PATHFRAG?x=1 HTTP/1.1\r\nHost: x\r\n"+good+"Connection: close\r\n\r\n")
	// Refused by access.users: a wrong password, and credentials that are not base64.
	rawExchange(t, h.addr, "GET "+target+" HTTP/1.1\r\nHost: x\r\nProxy-Authorization: "+basic(tapUser, wrongTapPass)+"\r\nConnection: close\r\n\r\n")
	rawExchange(t, h.addr, "GET "+target+" HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Basic SECRET-PROXYAUTH\r\nConnection: close\r\n\r\n")
	exchanges += 4
	// Malformed requests with secrets in the request line: refused by the
	// tap after authentication, and by net/http before it.
	for _, line := range []string{
		"GET http://user:SECRET-BADREQ@h.test:0/?token=SECRET-BADREQ HTTP/1.1",
		"GET /relative?token=SECRET-BADREQ HTTP/1.1",
		"GET ftp://user:SECRET-BADREQ@h.test/?token=SECRET-BADREQ HTTP/1.1",
		"CONNECT user:SECRET-BADREQ@h.test HTTP/1.1",
	} {
		rawExchange(t, h.addr, line+"\r\nHost: x\r\n"+good+"Connection: close\r\n\r\n")
	}
	rawExchange(t, h.addr, "GET http://user:SECRET-BADREQ@h.test/?token=SECRET-BADREQ HTTP/1.1\r\nHost: x\r\nno colon SECRET-BADREQ\r\n\r\n")
	exchanges += 5
	// CONNECT through the parent, which the tap authenticates to; and one
	// with userinfo in its authority, which the parent cannot route.
	rawExchange(t, h.addr, "CONNECT login.microsoftonline.com:443 HTTP/1.1\r\nHost: login.microsoftonline.com:443\r\n"+good+"\r\n")
	rawExchange(t, h.addr, "CONNECT user:SECRET-CONNECTUSER@nowhere.test:443 HTTP/1.1\r\nHost: x\r\n"+good+"\r\n")
	exchanges += 2
	// A probe whose redirect carries a token, through the tap's client auth.
	get(t, clientVia(t, h.addr, url.UserPassword(tapUser, tapPass)), "http://www.msftconnecttest.com/connecttest.txt")
	exchanges++
	// The active probe through the parent.
	for _, c := range []proxy.Check{
		{Kind: proxy.CheckWeb, Host: "www.msftconnecttest.com", Port: 80, Path: "/connecttest.txt", Route: proxy.RouteParent},
		{Kind: proxy.CheckTLS, Host: "login.microsoftonline.com", Port: 443, Route: proxy.RouteParent},
	} {
		h.srv.Check(context.Background(), c)
		exchanges++
	}

	// A parent that is down, and the parent with a wrong password: client
	// traffic and the active probe through each.
	down := testnet.Closed(t)
	for _, pu := range []*url.URL{parentURL(down, parentDownPass), parentURL(parent.Addr(), parentBadPass)} {
		hp := newHarness(t, proxy.Options{Parent: pu, Log: out.log})
		get(t, clientVia(t, hp.addr, nil), "http://www.msftconnecttest.com/connecttest.txt?token=SECRET-TOKEN2")
		rawExchange(t, hp.addr, "CONNECT login.microsoftonline.com:443 HTTP/1.1\r\nHost: x\r\n\r\n")
		for _, c := range []proxy.Check{
			{Kind: proxy.CheckWeb, Host: "www.msftconnecttest.com", Port: 80, Path: "/connecttest.txt", Route: proxy.RouteParent},
			{Kind: proxy.CheckTLS, Host: "login.microsoftonline.com", Port: 443, Route: proxy.RouteParent},
		} {
			hp.srv.Check(context.Background(), c)
		}
		exchanges += 4
		out.local["json"].Wait(t, exchanges, 10*time.Second)
		hp.shutdown(time.Second)
	}
	out.local["json"].Wait(t, exchanges, 10*time.Second)
	h.shutdown(time.Second)

	var secrets []string // every planted value, whole
	for _, k := range sensitiveKeys {
		secrets = append(secrets, "SECRET-Q-"+strings.ToUpper(k))
	}
	secrets = append(secrets, tapPass, wrongTapPass, parentPass, parentDownPass, parentBadPass, "SECRET-USERINFO", "SECRET-FRAGMENT", "SECRET-PATHFRAG",
		"SECRET-AUTHZ", "SECRET-COOKIE", "SECRET-SETCOOKIE", "SECRET-PROXYAUTH", "SECRET-BADREQ", "SECRET-CONNECTUSER",
		"SECRET-LOCATION", "SECRET-LOCPASS", "SECRET-LOCFRAG", "SECRET-TOKEN2")
	var encoded []string // base64 forms: Basic credentials, and any value in any alignment
	for _, s := range secrets {
		encoded = append(encoded, base64Runs(s)...)
	}
	for _, cred := range [][2]string{{tapUser, tapPass}, {tapUser, wrongTapPass}, {parentUser, parentPass},
		{parentUser, parentDownPass}, {parentUser, parentBadPass}, {"user", "SECRET-USERINFO"}} {
		encoded = append(encoded, strings.TrimPrefix(basic(cred[0], cred[1]), "Basic "))
	}

	recs := out.records(t)
	for name, list := range recs {
		if len(list) != exchanges {
			t.Errorf("%s: %d records, want %d", name, len(list), exchanges)
		}
		var seen strings.Builder
		for _, rec := range list {
			text := rec + "\n" + readable(t, name, rec)
			seen.WriteString(text)
			if i := strings.Index(strings.ToUpper(text), "SECRET-"); i >= 0 {
				t.Errorf("%s: a secret in the log (%q): %s", name, text[i:min(len(text), i+40)], rec)
			}
			for _, e := range encoded {
				if strings.Contains(text, e) {
					t.Errorf("%s: a base64-encoded secret (%s) in the log: %s", name, e, rec)
				}
			}
		}
		// What is not secret still arrives: the redacted URLs, the parent,
		// and every outcome.
		all := seen.String()
		for _, k := range sensitiveKeys {
			if !strings.Contains(all, k+"=REDACTED") {
				t.Errorf("%s: no %s=REDACTED", name, k)
			}
		}
		for _, s := range []string{"keep=1", down, parent.Addr(), "ok", "denied", "bad_request", "client_aborted", "probe_redirect",
			"tls_failure", "parent_unreachable", "parent_auth_required"} {
			if !strings.Contains(all, s) {
				t.Errorf("%s: %q never logged", name, s)
			}
		}
	}
}

// parentURL is a parent proxy's URL with credentials.
func parentURL(addr, pass string) *url.URL {
	return &url.URL{Scheme: "http", Host: addr, User: url.UserPassword(parentUser, pass)}
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// base64Runs returns, for each alignment s can have in a longer string
// and for both base64 alphabets, the characters that every encoding of
// such a string holds wherever it holds s.
func base64Runs(s string) []string {
	var out []string
	for pad := range 3 {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
			e := enc.EncodeToString([]byte(strings.Repeat("\x00", pad) + s))
			start := 0
			if pad > 0 {
				start = 4 // the first group mixes in the bytes before s
			}
			if end := len(e) - 4; end > start { // the last group mixes in the bytes after s
				out = append(out, e[start:end])
			}
		}
	}
	return out
}

// readable is a record as a collector reads it: for json and ecs its keys
// and string values with the JSON escapes undone, for cef the record with
// the CEF escapes undone. A secret that an escape split shows here.
func readable(t *testing.T, output, rec string) string {
	t.Helper()
	format := strings.TrimPrefix(output, "syslog ")
	if format != output {
		m := syslogFrame.FindStringSubmatch(rec)
		if m == nil {
			t.Errorf("%s: not an RFC 5424 message: %q", output, rec)
			return ""
		}
		rec = m[1]
	}
	if format == "cef" {
		return strings.NewReplacer(`\\`, `\`, `\=`, `=`, `\|`, `|`, `\n`, "\n", `\r`, "\r").Replace(rec)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(rec), &doc); err != nil {
		t.Errorf("%s: %v: %q", output, err, rec)
	}
	var b strings.Builder
	for k, v := range doc {
		b.WriteString(k + "\n")
		if s, ok := v.(string); ok {
			b.WriteString(s + "\n")
		}
	}
	return b.String()
}

// mapDial is a dial function for a test parent that connects only to the
// addresses m maps host:port to, so nothing a test sends through it
// leaves loopback.
func mapDial(m map[string]string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		to, ok := m[addr]
		if !ok {
			return nil, errors.New("test parent: no route to " + addr)
		}
		var d net.Dialer
		return d.DialContext(ctx, network, to)
	}
}

// clientVia is a net/http client that uses the tap as its proxy, with
// credentials for it when user is set.
func clientVia(t *testing.T, addr string, user *url.Userinfo) *http.Client {
	tr := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: addr, User: user}), DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, u string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}
